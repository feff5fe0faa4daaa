"""Order histories with known answers for the KPI: rows written as they stand after their transitions."""
from __future__ import annotations

import itertools
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

from flask import Flask

from portal.catalog.models import Product
from portal.db import get_session
from portal.orders.models import Order, OrderLine
from portal.shipping.carriers import load_default_carriers, recheck_tracking
from portal.tenancy import Principal

# A fixed "now" so that every window boundary in the tests is exact.
NOW = datetime(2026, 11, 10, 12, 0, tzinfo=timezone.utc)
STAFF = Principal(role="operator_admin", merchant_id=None)
_numbers = itertools.count(1)


def hours(n: float) -> timedelta:
    return timedelta(hours=n)


def days(n: float) -> timedelta:
    return timedelta(days=n)


class History:
    """One merchant's orders and products, written straight to the database."""

    def __init__(self, app: Flask, merchant_id: int) -> None:
        self.app = app
        self.merchant_id = merchant_id
        self.products: dict[str, int] = {}
        with app.app_context():
            load_default_carriers(get_session())

    def product(self, sku: str, **fields: Any) -> int:
        with self.app.app_context():
            db = get_session()
            values = {"title": f"Товар {sku}", "price": Decimal("100.00"), "stock": 100, "status": "active",
                      "readiness": "ready"} | fields
            product = Product(merchant_id=self.merchant_id, sku=sku, **values)
            db.add(product)
            db.commit()
            self.products[sku] = product.id
            return product.id

    def order(self, *, created: datetime, status: str = "delivered", accepted: datetime | None = None,
              shipped: datetime | None = None, ship_by: datetime | None = None, delivered: datetime | None = None,
              closed_by: str | None = None, carrier: str | None = None, tracking: str | None = None,
              lines: list[tuple[str, int, str]] | None = None) -> int:
        """An order as it stands; ``lines`` are (sku, quantity, unit price)."""
        lines = lines or [("SKU-1", 1, "100.00")]
        for sku, _, _ in lines:
            if sku not in self.products:
                self.product(sku)
        if shipped is not None and carrier is None:
            carrier, tracking = "cdek", tracking or "1234567890"
        with self.app.app_context():
            db = get_session()
            total = sum(Decimal(price) * qty for _, qty, price in lines)
            order = Order(
                merchant_id=self.merchant_id, order_number=f"KPI-{next(_numbers):07d}", request_hash="x" * 64,
                status=status, total=total, units=sum(qty for _, qty, _ in lines), created_at=created,
                acceptance_deadline=created + hours(24), ship_by=ship_by or created + hours(72), received_at=created,
                updated_at=created, accepted_at=accepted, shipped_at=shipped, delivered_at=delivered,
                closed_at=created + hours(1) if status in ("refused", "cancelled") else None, closed_by=closed_by,
                carrier=carrier, tracking_number=tracking, buyer_name="Анна", country="RU", city="Казань",
                line1="ул. Баумана, 1")
            order.lines = [OrderLine(product_id=self.products[sku], sku=sku, title=f"Товар {sku}", quantity=qty,
                                     unit_price=Decimal(price)) for sku, qty, price in lines]
            db.add(order)
            db.flush()
            if shipped is not None:  # history written straight to the table is checked as an import would be
                recheck_tracking(db, [carrier])
            db.commit()
            return order.id

    def shipped(self, at: datetime, *, late: bool = False, **extra: Any) -> int:
        """An order handed over at ``at``, an hour after or before its ship-by."""
        ship_by = at - hours(1) if late else at + hours(1)
        return self.order(created=at - hours(30), accepted=at - hours(20), shipped=at, ship_by=ship_by,
                          status=extra.pop("status", "shipped"), **extra)
