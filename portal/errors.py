"""Errors: friendly pages in the cabinet, ``{"error": {code, message, details}}`` under /api/."""
from __future__ import annotations

import logging
from typing import Any

from flask import Flask, Response, jsonify, render_template, request
from flask_babel import gettext
from flask_wtf.csrf import CSRFError
from werkzeug.exceptions import HTTPException

log = logging.getLogger(__name__)

ERROR_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "payload_too_large",
    422: "validation_error",
    429: "rate_limited",
    500: "internal_error",
    503: "unavailable",
}


class PortalError(Exception):
    """A domain error a user can act on; blocks subclass it with their own status and code."""

    status = 400
    code = "bad_request"

    def __init__(self, message: str, *, details: Any = None, status: int | None = None, code: str | None = None):
        super().__init__(message)
        self.message = message
        self.details = details
        if status is not None:
            self.status = status
        if code is not None:
            self.code = code


def wants_json() -> bool:
    return request.path.startswith("/api/") or request.path == "/healthz" or (
        request.accept_mimetypes.best == "application/json"
    )


def _default_message(status: int) -> str:
    messages = {
        400: gettext("The request could not be understood."),
        401: gettext("Authentication is required."),
        403: gettext("You do not have access to this page."),
        404: gettext("We could not find what you asked for."),
        405: gettext("This method is not allowed here."),
        409: gettext("The request conflicts with the current state."),
        413: gettext("The file is larger than the portal accepts."),
        422: gettext("Some of the data is not valid."),
        429: gettext("Too many requests; please wait a minute and try again."),
        500: gettext("Something went wrong on our side. It has been logged."),
        503: gettext("The portal is not available right now."),
    }
    return messages.get(status, gettext("Something went wrong."))


def error_response(status: int, code: str | None = None, message: str | None = None, details: Any = None,
                   headers: dict[str, str] | None = None) -> Response:
    code = code or ERROR_CODES.get(status, "error")
    message = message or _default_message(status)
    if wants_json():
        response = jsonify({"error": {"code": code, "message": message, "details": details}})
    else:
        template = f"errors/{status}.html" if status in (403, 404, 500) else "errors/error.html"
        response = Response(render_template(template, status=status, code=code, message=message))
    response.status_code = status
    if status == 401 and request.path.startswith("/api/"):
        response.headers["WWW-Authenticate"] = 'Bearer realm="portal"'
    for key, value in (headers or {}).items():
        response.headers[key] = value
    return response


def handle_http_exception(error: HTTPException) -> Response:
    status = error.code or 500
    data = getattr(error, "data", None) or {}
    details = data.get("errors") or data.get("messages")
    message = data.get("message")
    if message is None and status == 422 and details:
        message = gettext("Some of the data is not valid; see details.")
    # Flask-Limiter describes the limit ("3 per 1 minute"); the default message says what to do.
    if message is None and status != 429 and error.description and error.description != type(error).description:
        message = str(error.description)
    return error_response(status, message=message, details=details, headers=data.get("headers"))


def handle_csrf_error(error: CSRFError) -> Response:
    return error_response(
        400,
        "csrf_failed",
        gettext("The form was missing its security token or it did not match. Reload the page and try again."),
    )


def handle_portal_error(error: PortalError) -> Response:
    return error_response(error.status, error.code, error.message, error.details)


def handle_unexpected(error: Exception) -> Response:
    log.exception("unhandled error on %s %s", request.method, request.path)
    return error_response(500)


def init_app(app: Flask) -> None:
    app.register_error_handler(CSRFError, handle_csrf_error)
    app.register_error_handler(HTTPException, handle_http_exception)
    app.register_error_handler(PortalError, handle_portal_error)
    app.register_error_handler(Exception, handle_unexpected)
