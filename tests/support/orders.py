"""Orders in tests: a shop with stock, an operator token, and posting orders as the marketplace does."""
from __future__ import annotations

import itertools
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from typing import Any

from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from portal.accounts.models import Merchant
from portal.catalog.models import Product
from portal.db import get_session
from portal.orders.models import Order
from portal.shipping.carriers import carrier_by_code, load_default_carriers
from tests.support.catalog import csv_bytes, import_file
from tests.support.factories import Factory

_numbers = itertools.count(1)
ADDRESS = {"name": "Анна Смирнова", "phone": "+7 912 345-67-89", "country": "RU", "city": "Казань",
           "postal_code": "420111", "line1": "ул. Баумана, д. 1, кв. 2"}


@dataclass
class Shop:
    merchant: Merchant
    admin: Any
    merchant_secret: str
    operator_secret: str

    @property
    def slug(self) -> str:
        return self.merchant.slug


def shop(app: Flask, factory: Factory, stock: dict[str, int] | None = None, slug: str | None = None) -> Shop:
    """A merchant whose catalog holds ``stock`` (sku -> units; default two products), with both tokens."""
    stock = stock or {"TEA-1": 10, "CUP-2": 5}
    merchant = factory.merchant(slug=slug)
    admin = factory.user("merchant_admin", merchant)
    rows = [["sku", "title", "price", "stock"]] + [[sku, f"Товар {sku}", "100", str(n)] for sku, n in stock.items()]
    result = import_file(app, merchant.id, csv_bytes(rows))
    assert result["status"] == "applied", result
    _, merchant_secret = factory.token(merchant)
    _, operator_secret = factory.token(None)
    return Shop(merchant=merchant, admin=admin, merchant_secret=merchant_secret, operator_secret=operator_secret)


def order_payload(shop_or_slug: Shop | str, lines: list[tuple[str, int]] | None = None, number: str | None = None,
                  **extra: Any) -> dict[str, Any]:
    slug = shop_or_slug if isinstance(shop_or_slug, str) else shop_or_slug.slug
    return {
        "order_number": number or f"MP-{next(_numbers):07d}",
        "merchant": slug,
        "lines": [{"sku": sku, "quantity": quantity, "unit_price": "100.00"} for sku, quantity in (lines if lines is not None else [("TEA-1", 1)])],
        "shipping_address": dict(ADDRESS),
        **extra,
    }


def bearer(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}


def post_order(client: FlaskClient, shop: Shop, lines: list[tuple[str, int]] | None = None, **extra: Any):
    return client.post("/api/v1/orders", json=order_payload(shop, lines, **extra), headers=bearer(shop.operator_secret))


def stock_of(app: Flask, merchant_id: int, sku: str) -> tuple[int, int]:
    """(stock on hand, reserved) as stored."""
    with app.app_context():
        product = get_session().scalar(select(Product).where(Product.merchant_id == merchant_id, Product.sku == sku))
        return product.stock, product.reserved


# A default carrier's code and a tracking number in its format (carriers() loads them).
SHIP = {"carrier": "cdek", "tracking_number": "1234567890"}


def carriers(app: Flask) -> list[str]:
    """The default carriers, as an operator loads them; tests that ship need them (every test starts empty)."""
    with app.app_context():
        return load_default_carriers(get_session())


def set_carrier_active(app: Flask, code: str, active: bool) -> None:
    with app.app_context():
        db = get_session()
        carrier_by_code(db, code).is_active = active
        db.commit()


def order_status(app: Flask, order_id: int) -> str:
    with app.app_context():
        return get_session().get(Order, order_id).status


def pickup_day(days_ahead: int = 1) -> date:
    """A pickup date of the default carriers (they all pick up on weekdays): the first weekday from
    ``days_ahead`` days on, so that tests do not fail at weekends."""
    day = datetime.now(timezone.utc).date() + timedelta(days=days_ahead)
    while day.weekday() >= 5:
        day += timedelta(days=1)
    return day
