"""Orders, their lines, the history of their transitions and the answers kept for idempotency keys."""
from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, Numeric, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from portal.db import Base, utcnow


class Order(Base):
    __tablename__ = "orders"
    __table_args__ = (
        # The desk's default list and its status tabs: a merchant's orders, newest first.
        Index("ix_orders_merchant_created", "merchant_id", "created_at", "id"),
        Index("ix_orders_merchant_status_created", "merchant_id", "status", "created_at", "id"),
        # The expiry job and the at-risk filter look at open orders by their deadlines.
        Index("ix_orders_status_deadline", "status", "acceptance_deadline"),
        Index("ix_orders_merchant_status_ship_by", "merchant_id", "status", "ship_by"),
        # The KPI: a merchant's orders handed over / accepted in a period; on PostgreSQL they also cover the
        # other end of the handling and acceptance times, so the percentiles read the index alone.
        Index("ix_orders_merchant_shipped", "merchant_id", "shipped_at", postgresql_include=["accepted_at"]),
        Index("ix_orders_merchant_accepted", "merchant_id", "accepted_at", postgresql_include=["created_at"]),
        # Search by a part of the buyer's name or the start of an order number: trigram indexes on PostgreSQL
        # (pg_trgm); elsewhere plain ones.
        Index("ix_orders_buyer_name_trgm", "buyer_name", postgresql_using="gin",
              postgresql_ops={"buyer_name": "gin_trgm_ops"}),
        Index("ix_orders_order_number_trgm", "order_number", postgresql_using="gin",
              postgresql_ops={"order_number": "gin_trgm_ops"}),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    merchant_id: Mapped[int] = mapped_column(ForeignKey("merchants.id"))
    # The marketplace's number, unique across the marketplace: the idempotency key of intake.
    order_number: Mapped[str] = mapped_column(String(64), unique=True)
    # Fingerprint of the posted order, so that a repeat with other content is told apart from a retry.
    request_hash: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(24), default="awaiting_acceptance")
    currency: Mapped[str] = mapped_column(String(3), default="RUB")
    total: Mapped[Decimal] = mapped_column(Numeric(14, 2))
    units: Mapped[int]
    # The marketplace's own times (history can be replayed); received_at is when the portal got it.
    created_at: Mapped[datetime]
    acceptance_deadline: Mapped[datetime]
    ship_by: Mapped[datetime]
    received_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
    accepted_at: Mapped[datetime | None]
    shipped_at: Mapped[datetime | None]
    delivered_at: Mapped[datetime | None]
    # When it reached refused, cancelled or returned.
    closed_at: Mapped[datetime | None]
    # Who ended it when it was refused or cancelled: merchant, marketplace or system (automatic refusal).
    closed_by: Mapped[str | None] = mapped_column(String(16))
    reason: Mapped[str | None] = mapped_column(Text)
    carrier: Mapped[str | None] = mapped_column(String(64))
    tracking_number: Mapped[str | None] = mapped_column(String(64))
    # The tracking number is in its carrier's format: checked at handover, checked again when operators change
    # the carrier (``portal.shipping.carriers.recheck_tracking``); None until shipped. The KPI counts it.
    tracking_valid: Mapped[bool | None]
    # The buyer's delivery address; only the owning merchant and operators see it.
    buyer_name: Mapped[str] = mapped_column(String(200))
    buyer_phone: Mapped[str] = mapped_column(String(40), default="")
    country: Mapped[str] = mapped_column(String(2))
    city: Mapped[str] = mapped_column(String(120))
    postal_code: Mapped[str] = mapped_column(String(20), default="")
    line1: Mapped[str] = mapped_column(String(300))

    lines: Mapped[list[OrderLine]] = relationship(back_populates="order", order_by="OrderLine.id",
                                                  cascade="all, delete-orphan")


class OrderLine(Base):
    __tablename__ = "order_lines"

    id: Mapped[int] = mapped_column(primary_key=True)
    order_id: Mapped[int] = mapped_column(ForeignKey("orders.id", ondelete="CASCADE"), index=True)
    product_id: Mapped[int] = mapped_column(ForeignKey("products.id"), index=True)
    sku: Mapped[str] = mapped_column(String(128), index=True)
    # The title when the order came in; the product may be renamed later.
    title: Mapped[str] = mapped_column(String(500))
    quantity: Mapped[int]
    unit_price: Mapped[Decimal] = mapped_column(Numeric(14, 2))

    order: Mapped[Order] = relationship(back_populates="lines")

    @property
    def amount(self) -> Decimal:
        return self.unit_price * self.quantity


class OrderEvent(Base):
    """One transition of an order: which, from and to what, who fired it, when and why."""

    __tablename__ = "order_events"

    id: Mapped[int] = mapped_column(primary_key=True)
    order_id: Mapped[int] = mapped_column(ForeignKey("orders.id", ondelete="CASCADE"), index=True)
    merchant_id: Mapped[int] = mapped_column(ForeignKey("merchants.id"), index=True)
    at: Mapped[datetime] = mapped_column(default=utcnow)
    transition: Mapped[str] = mapped_column(String(16))  # create, accept, refuse, expire, cancel, ship, …
    from_status: Mapped[str | None] = mapped_column(String(24))
    to_status: Mapped[str] = mapped_column(String(24))
    # user, token or system (the expiry job).
    actor_kind: Mapped[str] = mapped_column(String(8))
    actor_user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    actor_token_id: Mapped[int | None] = mapped_column(ForeignKey("api_tokens.id"))
    reason: Mapped[str | None] = mapped_column(Text)
    details: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


class OrderRequest(Base):
    """The first answer to a transition sent with an idempotency key, returned again to its repeats."""

    __tablename__ = "order_requests"
    __table_args__ = (UniqueConstraint("order_id", "idempotency_key"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    order_id: Mapped[int] = mapped_column(ForeignKey("orders.id", ondelete="CASCADE"))
    idempotency_key: Mapped[str] = mapped_column(String(128))
    transition: Mapped[str] = mapped_column(String(16))
    event_id: Mapped[int] = mapped_column(ForeignKey("order_events.id", ondelete="CASCADE"))
    # The first answer as the API gave it, returned as it was to every repeat.
    response: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
