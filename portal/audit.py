"""The audit log: who did what, when and from where, for logins, tokens and every sensitive action."""
from __future__ import annotations

from datetime import datetime
from typing import Any

from flask import has_request_context, request
from sqlalchemy import JSON, ForeignKey, String
from sqlalchemy.orm import Mapped, Session, mapped_column

from portal.db import Base, utcnow
from portal.tenancy import Principal


class AuditEvent(Base):
    __tablename__ = "audit_events"

    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    action: Mapped[str] = mapped_column(String(64), index=True)
    actor_user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    actor_token_id: Mapped[int | None] = mapped_column(ForeignKey("api_tokens.id"))
    # The merchant whose data was touched; merchant admins read their own merchant's events.
    merchant_id: Mapped[int | None] = mapped_column(ForeignKey("merchants.id"), index=True)
    target_type: Mapped[str | None] = mapped_column(String(64))
    target_id: Mapped[str | None] = mapped_column(String(64))
    ip: Mapped[str | None] = mapped_column(String(64))
    details: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


def record(
    db: Session,
    action: str,
    *,
    actor: Principal | None = None,
    merchant_id: int | None = None,
    target: Any = None,
    details: dict[str, Any] | None = None,
) -> AuditEvent:
    """Add an event to the caller's transaction: it is kept only if the action itself commits."""
    event = AuditEvent(
        action=action,
        actor_user_id=actor.user_id if actor else None,
        actor_token_id=actor.token_id if actor else None,
        merchant_id=merchant_id if merchant_id is not None else (actor.merchant_id if actor else None),
        target_type=type(target).__name__ if target is not None else None,
        target_id=str(target.id) if target is not None else None,
        ip=request.remote_addr if has_request_context() else None,
        details=details or {},
    )
    db.add(event)
    return event
