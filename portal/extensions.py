"""Flask extensions, unbound; ``create_app`` binds them to an app."""
from flask_babel import Babel
from flask_limiter import Limiter
from flask_limiter.util import get_remote_address
from flask_login import LoginManager
from flask_smorest import Api
from flask_talisman import Talisman
from flask_wtf.csrf import CSRFProtect
from marshmallow import Schema, fields


class ErrorBodySchema(Schema):
    code = fields.String(metadata={"description": "stable machine-readable error code"})
    message = fields.String(metadata={"description": "human-readable message"})
    details = fields.Raw(allow_none=True, metadata={"description": "per-field errors or other context"})


class ErrorSchema(Schema):
    error = fields.Nested(ErrorBodySchema)


class PortalApi(Api):
    """flask-smorest's Api, but errors use the portal's format and are handled in portal.errors."""

    ERROR_SCHEMA = ErrorSchema

    def _register_error_handlers(self) -> None:
        # portal.errors renders HTML pages for the cabinet and JSON for /api/; smorest's
        # app-wide handler would turn every error page into JSON.
        pass


login_manager = LoginManager()
csrf = CSRFProtect()
babel = Babel()
limiter = Limiter(key_func=get_remote_address)
talisman = Talisman()
api = PortalApi()
