"""Access rules for pages: who may open what, by role; and safe redirects."""
from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar
from urllib.parse import urlsplit

from flask import abort
from flask_babel import lazy_gettext as _l
from flask_login import current_user, login_required

F = TypeVar("F", bound=Callable[..., Any])

ROLE_LABELS = {
    "merchant_admin": _l("Merchant admin"),
    "merchant_staff": _l("Merchant staff"),
    "category_manager": _l("Category manager"),
    "operator_admin": _l("Operator admin"),
}


def roles_required(*roles: str) -> Callable[[F], F]:
    """Signed-in users of other roles get 403; anonymous users are sent to sign in."""

    def decorator(view: F) -> F:
        @wraps(view)
        @login_required
        def wrapped(*args: Any, **kwargs: Any) -> Any:
            if current_user.role not in roles:
                abort(403)
            return view(*args, **kwargs)

        return wrapped  # type: ignore[return-value]

    return decorator


def safe_next(target: str | None, default: str) -> str:
    """Only same-site paths: a ``next`` pointing elsewhere would make the sign-in an open redirect."""
    if not target:
        return default
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return default
    return target
