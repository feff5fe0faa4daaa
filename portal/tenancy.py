"""Tenant isolation: the one helper every merchant-scoped query goes through."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, TypeVar

from flask import abort, g, has_request_context
from flask_login import current_user
from sqlalchemy import Select, select

from portal.db import get_session

T = TypeVar("T")


@dataclass(frozen=True)
class Principal:
    """Who is acting: a signed-in user or an API token, with the merchant they are confined to."""

    role: str
    merchant_id: int | None
    user_id: int | None = None
    token_id: int | None = None

    @property
    def is_merchant(self) -> bool:
        return self.merchant_id is not None

    @property
    def is_staff(self) -> bool:
        return self.merchant_id is None


def current_principal() -> Principal:
    """The API token's principal if the request carried one, else the signed-in user's."""
    if has_request_context():
        principal = g.get("api_principal")
        if principal is not None:
            return principal
        if current_user.is_authenticated:
            return Principal(role=current_user.role, merchant_id=current_user.merchant_id, user_id=current_user.id)
    abort(401)


def _merchant_column(model: Any) -> Any:
    column = getattr(model, "merchant_id", None)
    if column is None:
        raise TypeError(f"{model.__name__} has no merchant_id column; it cannot be tenant-scoped")
    return column


def scope(stmt: Select[Any], model: Any, principal: Principal | None = None) -> Select[Any]:
    """Confine ``stmt`` to the principal's merchant; staff (no merchant) see every merchant."""
    principal = principal or current_principal()
    if principal.merchant_id is None:
        return stmt
    return stmt.where(_merchant_column(model) == principal.merchant_id)


def scope_sql(column: str, principal: Principal) -> tuple[str, dict[str, Any]]:
    """The same rule for a statement written in SQL: a condition on ``column`` and its parameter, in the
    driver's ``%(name)s`` style (staff: a condition that always holds)."""
    if principal.merchant_id is None:
        return "TRUE", {}
    return f"{column} = %(tenant_merchant_id)s", {"tenant_merchant_id": principal.merchant_id}


def scoped_select(model: type[T], principal: Principal | None = None) -> Select[tuple[T]]:
    return scope(select(model), model, principal)


def get_or_404(model: type[T], object_id: Any, principal: Principal | None = None) -> T:
    """Another merchant's object answers 404 exactly like a missing one, so ids reveal nothing."""
    pk = model.__mapper__.primary_key[0]  # type: ignore[attr-defined]
    obj = get_session().scalar(scoped_select(model, principal).where(pk == object_id))
    if obj is None:
        abort(404)
    return obj
