"""Operators' thresholds and the daily rollups the KPI trends and rankings read."""
from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal

from sqlalchemy import Date, Float, ForeignKey, Numeric, String
from sqlalchemy.orm import Mapped, mapped_column

from portal.db import Base, utcnow


class KpiThreshold(Base):
    """An operator's thresholds for one metric, overriding the defaults of ``portal.kpi.metrics``."""

    __tablename__ = "kpi_thresholds"

    metric: Mapped[str] = mapped_column(String(32), primary_key=True)
    # Amber from ``warning``, red from ``threshold``; rates as fractions, times in hours. None: no line.
    warning: Mapped[float | None] = mapped_column(Float)
    threshold: Mapped[float | None] = mapped_column(Float)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))


class KpiDaily(Base):
    """One merchant's counts of one UTC day, kept by the rollup job.

    Order counts are additive (a trailing 30-day rate is a sum of 30 rows); the times' percentiles are
    the day's own. The catalog columns are a snapshot taken when the job ran that day and stay empty
    for days it did not run (the catalog's past cannot be recomputed).
    """

    __tablename__ = "kpi_daily"

    merchant_id: Mapped[int] = mapped_column(ForeignKey("merchants.id"), primary_key=True)
    day: Mapped[date] = mapped_column(Date, primary_key=True)
    # Orders received that day, and those of them refused, refused automatically or cancelled by the merchant.
    received: Mapped[int] = mapped_column(default=0)
    merchant_cancelled: Mapped[int] = mapped_column(default=0)
    # Orders handed over that day; of them after their ship-by; of them with a tracking number in format.
    shipped: Mapped[int] = mapped_column(default=0)
    shipped_late: Mapped[int] = mapped_column(default=0)
    shipped_valid_tracking: Mapped[int] = mapped_column(default=0)
    accepted: Mapped[int] = mapped_column(default=0)
    acceptance_median: Mapped[float | None] = mapped_column(Float)
    acceptance_p90: Mapped[float | None] = mapped_column(Float)
    handling_median: Mapped[float | None] = mapped_column(Float)
    handling_p90: Mapped[float | None] = mapped_column(Float)
    # Sales: orders received that day and not refused or cancelled, their units and total.
    orders: Mapped[int] = mapped_column(default=0)
    units: Mapped[int] = mapped_column(default=0)
    revenue: Mapped[Decimal] = mapped_column(Numeric(16, 2), default=Decimal("0"))
    # Catalog uploads applied that day: rows read and rejected.
    upload_rows: Mapped[int] = mapped_column(default=0)
    upload_rejected: Mapped[int] = mapped_column(default=0)
    # Catalog snapshot.
    active_products: Mapped[int | None]
    ready_products: Mapped[int | None]
    required_total: Mapped[int | None]
    required_filled: Mapped[int | None]
    open_requests: Mapped[int | None]
    overdue_requests: Mapped[int | None]
    computed_at: Mapped[datetime] = mapped_column(default=utcnow)
