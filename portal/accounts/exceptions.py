"""Errors of accounts, logins and tokens."""
from portal.errors import PortalError


class AccountError(PortalError):
    status = 422
    code = "invalid_account"


class LoginFailed(PortalError):
    status = 401
    code = "login_failed"


class AccountLocked(LoginFailed):
    code = "account_locked"


class InvalidToken(PortalError):
    status = 401
    code = "invalid_token"


class NotAllowed(PortalError):
    status = 403
    code = "forbidden"
