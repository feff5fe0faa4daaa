"""The JSON API base: bearer-token authentication for every blueprint under /api/v1."""
from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar

from flask import g, request
from flask_babel import gettext
from flask_smorest import Blueprint

from portal.accounts.exceptions import InvalidToken
from portal.accounts.services import authenticate_token
from portal.db import session as db
from portal.errors import PortalError
from portal.extensions import csrf
from portal.tenancy import current_principal

API_PREFIX = "/api/v1"
F = TypeVar("F", bound=Callable[..., Any])


def authenticate_request() -> None:
    """Every API call carries ``Authorization: Bearer <token>``; the cabinet's cookie is not accepted."""
    header = request.headers.get("Authorization", "")
    scheme, _, secret = header.partition(" ")
    if scheme.lower() != "bearer" or not secret.strip():
        raise InvalidToken(gettext("Send an API token as `Authorization: Bearer <token>`."), code="missing_token")
    g.api_principal = authenticate_token(db, secret.strip())


def api_blueprint(name: str, import_name: str, url_prefix: str = "", **kwargs: Any) -> Blueprint:
    """A flask-smorest blueprint under /api/v1 whose every route needs a valid bearer token."""
    blp = Blueprint(name, import_name, url_prefix=API_PREFIX + url_prefix, **kwargs)
    blp.before_request(authenticate_request)
    csrf.exempt(blp)  # no cookies are trusted here, so there is nothing to forge
    return blp


def operator_only(view: F) -> F:
    """For routes only the marketplace's own systems may call (operator tokens)."""

    @wraps(view)
    def wrapped(*args: Any, **kwargs: Any) -> Any:
        if current_principal().merchant_id is not None:
            raise PortalError(gettext("This call needs an operator token."), status=403, code="operator_token_required")
        return view(*args, **kwargs)

    return wrapped  # type: ignore[return-value]

