"""Carriers (configured data), shipments, their packages and what each package holds, and their history."""
from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from portal.db import Base, utcnow
from portal.orders.models import Order, OrderLine


class Carrier(Base):
    """A carrier the merchants hand parcels to; operators edit the list."""

    __tablename__ = "carriers"

    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(32), unique=True)
    name: Mapped[str] = mapped_column(String(100))
    # Regular expressions a tracking number must match in full (any one of them); none: anything non-empty.
    tracking_patterns: Mapped[list[str]] = mapped_column(JSON, default=list)
    # The carrier's tracking page, with ``{tracking}`` where the number goes.
    tracking_url: Mapped[str] = mapped_column(String(300), default="")
    # Pickups: the weekdays (0 = Monday) and the time by which a shipment must be ready, in ``timezone``.
    pickup_days: Mapped[list[int]] = mapped_column(JSON, default=list)
    cutoff_time: Mapped[str] = mapped_column(String(5), default="16:00")
    timezone: Mapped[str] = mapped_column(String(64), default="Europe/Moscow")
    max_weight_grams: Mapped[int] = mapped_column(default=30_000)
    is_active: Mapped[bool] = mapped_column(default=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class Shipment(Base):
    """A merchant's accepted orders for one carrier and pickup date, in packages."""

    __tablename__ = "shipments"
    __table_args__ = (Index("ix_shipments_merchant_status", "merchant_id", "status", "pickup_date"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    merchant_id: Mapped[int] = mapped_column(ForeignKey("merchants.id"))
    carrier_id: Mapped[int] = mapped_column(ForeignKey("carriers.id"))
    pickup_date: Mapped[date]
    status: Mapped[str] = mapped_column(String(16), default="draft")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
    ready_at: Mapped[datetime | None]
    handed_over_at: Mapped[datetime | None]
    in_transit_at: Mapped[datetime | None]
    delivered_at: Mapped[datetime | None]

    carrier: Mapped[Carrier] = relationship(lazy="joined")
    orders: Mapped[list[ShipmentOrder]] = relationship(back_populates="shipment", order_by="ShipmentOrder.id",
                                                       cascade="all, delete-orphan")
    packages: Mapped[list[Package]] = relationship(back_populates="shipment", order_by="Package.id",
                                                   cascade="all, delete-orphan")

    @property
    def number(self) -> str:
        return f"SHP-{self.id:06d}"


class ShipmentOrder(Base):
    """An order in a shipment; an order is in one shipment at most (removing it from a draft frees it)."""

    __tablename__ = "shipment_orders"

    id: Mapped[int] = mapped_column(primary_key=True)
    shipment_id: Mapped[int] = mapped_column(ForeignKey("shipments.id", ondelete="CASCADE"), index=True)
    order_id: Mapped[int] = mapped_column(ForeignKey("orders.id"), unique=True)
    merchant_id: Mapped[int] = mapped_column(ForeignKey("merchants.id"), index=True)

    shipment: Mapped[Shipment] = relationship(back_populates="orders")
    order: Mapped[Order] = relationship(lazy="joined")


class Package(Base):
    """A parcel of one order (an order may be split across several); its code is on the label's barcode."""

    __tablename__ = "packages"

    id: Mapped[int] = mapped_column(primary_key=True)
    shipment_id: Mapped[int] = mapped_column(ForeignKey("shipments.id", ondelete="CASCADE"), index=True)
    order_id: Mapped[int] = mapped_column(ForeignKey("orders.id"), index=True)
    merchant_id: Mapped[int] = mapped_column(ForeignKey("merchants.id"), index=True)
    weight_grams: Mapped[int] = mapped_column(default=0)
    length_mm: Mapped[int] = mapped_column(default=0)
    width_mm: Mapped[int] = mapped_column(default=0)
    height_mm: Mapped[int] = mapped_column(default=0)
    tracking_number: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    shipment: Mapped[Shipment] = relationship(back_populates="packages")
    order: Mapped[Order] = relationship()
    lines: Mapped[list[PackageLine]] = relationship(back_populates="package", order_by="PackageLine.id",
                                                    cascade="all, delete-orphan")

    @property
    def code(self) -> str:
        return f"PKG-{self.id:08d}"


class PackageLine(Base):
    """How many units of an order line are in a package."""

    __tablename__ = "package_lines"
    __table_args__ = (UniqueConstraint("package_id", "order_line_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    package_id: Mapped[int] = mapped_column(ForeignKey("packages.id", ondelete="CASCADE"))
    order_line_id: Mapped[int] = mapped_column(ForeignKey("order_lines.id"), index=True)
    quantity: Mapped[int]

    package: Mapped[Package] = relationship(back_populates="lines")
    order_line: Mapped[OrderLine] = relationship(lazy="joined")


class ShipmentEvent(Base):
    """One transition of a shipment: who, when, from and to which state."""

    __tablename__ = "shipment_events"

    id: Mapped[int] = mapped_column(primary_key=True)
    shipment_id: Mapped[int] = mapped_column(ForeignKey("shipments.id", ondelete="CASCADE"), index=True)
    merchant_id: Mapped[int] = mapped_column(ForeignKey("merchants.id"), index=True)
    at: Mapped[datetime] = mapped_column(default=utcnow)
    transition: Mapped[str] = mapped_column(String(16))
    from_status: Mapped[str | None] = mapped_column(String(16))
    to_status: Mapped[str] = mapped_column(String(16))
    actor_kind: Mapped[str] = mapped_column(String(8))  # user, token or system
    actor_user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    actor_token_id: Mapped[int | None] = mapped_column(ForeignKey("api_tokens.id"))
    details: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
