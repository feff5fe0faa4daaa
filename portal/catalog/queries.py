"""Reusable catalog queries: each returns a tenant-scoped Select for the view to paginate."""
from __future__ import annotations

from typing import Any

from sqlalchemy import Select, or_

from portal.catalog.models import Product, Upload
from portal.tenancy import scoped_select


def products(q: str = "", status: str = "", category: str = "", has_errors: bool = False,
             readiness: str = "") -> Select[Any]:
    stmt = scoped_select(Product)
    if q:
        like = f"%{q.strip()}%"
        stmt = stmt.where(or_(Product.sku.ilike(like), Product.title.ilike(like), Product.gtin == q.strip()))
    if status:
        stmt = stmt.where(Product.status == status)
    if category:
        stmt = stmt.where(Product.category == category)
    if has_errors:
        stmt = stmt.where(Product.last_error.is_not(None))
    if readiness:
        stmt = stmt.where(Product.readiness == readiness)
    return stmt.order_by(Product.updated_at.desc(), Product.id.desc())


def uploads() -> Select[Any]:
    return scoped_select(Upload).order_by(Upload.created_at.desc(), Upload.id.desc())
