"""Shops with ready products for the PIM export tests, and the ready catalog read straight from the tables."""
from __future__ import annotations

from decimal import Decimal
from typing import Any

from flask import Flask
from sqlalchemy import select

from portal.accounts.models import Merchant
from portal.catalog.models import Product
from portal.category_mapping import services as mapping
from portal.category_mapping.models import MerchantCategory, TaxonomyCategory
from portal.db import get_session
from portal.tenancy import Principal
from tests.support.catalog import csv_bytes, import_file
from tests.support.mapping import REQUIREMENTS, load_taxonomy

HEADER = ["sku", "title", "price", "stock", "category", "brand", "Цвет", "Размер", "Материал"]


def rows(prefix: str, count: int, start: int = 1) -> list[list[str]]:
    return [[f"{prefix}-{n:05d}", f"Футболка {n}", f"{100 + n}.50", str(n % 7), "Футболки", "Brand", "white", "m",
             "хлопок"] for n in range(start, start + count)]


def ready_shop(app: Flask, factory: Any, slug: str, count: int, extra: list[list[str]] | None = None) -> Merchant:
    """A merchant whose ``count`` T-shirts are ready (category confirmed onto Shirts & Tops, colour and size given)."""
    with app.app_context():
        if get_session().get(TaxonomyCategory, 212) is None:
            load_taxonomy(app, requirements=REQUIREMENTS)
    merchant = factory.merchant(slug=slug)
    result = import_file(app, merchant.id, csv_bytes([HEADER, *rows(slug.upper(), count), *(extra or [])]))
    assert result["status"] == "applied", result
    with app.app_context():
        db = get_session()
        row = db.scalar(select(MerchantCategory).where(MerchantCategory.merchant_id == merchant.id,
                                                       MerchantCategory.path == "Футболки"))
        mapping.confirm(db, row, 212, Principal(role="merchant_admin", merchant_id=merchant.id))
    return merchant


def ready_catalog(app: Flask) -> dict[tuple[int, str], dict[str, Any]]:
    """What the PIM must hold: every ready product of an active merchant, a few fields read from the rows."""
    with app.app_context():
        db = get_session()
        paths = dict(db.execute(select(TaxonomyCategory.id, TaxonomyCategory.path)).tuples().all())
        result = {}
        for product, slug in db.execute(select(Product, Merchant.slug).join(Merchant, Merchant.id == Product.merchant_id)
                                        .where(Product.readiness == "ready", Merchant.is_active.is_(True))):
            result[(product.merchant_id, product.sku)] = {
                "merchant_slug": slug, "title": product.title, "price": f"{Decimal(product.price):.2f}",
                "available": product.stock - product.reserved, "category_id": product.marketplace_category_id,
                "category_path": paths[product.marketplace_category_id], "brand": product.brand or None, "images": list(product.images or []),
            }
        return result


def summarised(catalog: dict[tuple[int, str], dict[str, Any]]) -> dict[tuple[int, str], dict[str, Any]]:
    """The reader's catalog cut down to the fields ready_catalog reads."""
    fields = ("merchant_slug", "title", "price", "available", "category_id", "category_path", "brand", "images")
    return {identity: {name: record[name] for name in fields} for identity, record in catalog.items()}
