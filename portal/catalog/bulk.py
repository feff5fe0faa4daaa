"""The bulk path of catalog writes: COPY and one INSERT … ON CONFLICT on PostgreSQL, executemany elsewhere."""
from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import bindparam, insert, select, text, update
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from portal.catalog.models import Product, ProductEvent
from portal.tenancy import Principal, scope

CONTENT = ("title", "brand", "gtin", "description", "category", "price", "currency", "stock", "images", "attributes")
STAGING_DDL = """
CREATE TEMP TABLE IF NOT EXISTS catalog_staging (
    sku varchar(128), title varchar(500), brand varchar(200), gtin varchar(14), description text,
    category varchar(500), price numeric(14, 2), currency varchar(3), stock integer,
    images json, attributes json, content_hash varchar(32)
) ON COMMIT DROP
"""
_UPSERT_FROM_STAGING = """
INSERT INTO products (merchant_id, sku, {content}, reserved, status, content_hash,
                      created_at, updated_at, created_upload_id, last_upload_id)
SELECT :merchant_id, sku, {content}, 0, 'active', content_hash, :now, :now, :upload_id, :upload_id
FROM catalog_staging
ON CONFLICT (merchant_id, sku) DO UPDATE SET {updates}, status = 'active', last_error = NULL,
    content_hash = EXCLUDED.content_hash, updated_at = EXCLUDED.updated_at, last_upload_id = EXCLUDED.last_upload_id
"""


def _is_postgres(db: Session) -> bool:
    return db.get_bind().dialect.name == "postgresql"


def upsert_products(db: Session, merchant_id: int, upload_id: int | None, rows: Sequence[dict[str, Any]], now: datetime) -> None:
    """Insert new products and overwrite changed ones; ``rows`` hold sku, CONTENT and content_hash."""
    if not rows:
        return
    if _is_postgres(db):
        _upsert_postgres(db, merchant_id, upload_id, rows, now)
        return
    table = Product.__table__
    values = [
        {**row, "price": Decimal(row["price"]), "merchant_id": merchant_id, "reserved": 0, "status": "active", "created_at": now, "updated_at": now,
         "created_upload_id": upload_id, "last_upload_id": upload_id}
        for row in rows
    ]
    stmt = sqlite_insert(table)
    stmt = stmt.on_conflict_do_update(
        index_elements=["merchant_id", "sku"],
        set_={**{c: stmt.excluded[c] for c in CONTENT}, "status": "active", "content_hash": stmt.excluded.content_hash,
              "last_error": None,
              "updated_at": stmt.excluded.updated_at, "last_upload_id": stmt.excluded.last_upload_id},
    )
    db.execute(stmt, values)


def _upsert_postgres(db: Session, merchant_id: int, upload_id: int | None, rows: Sequence[dict[str, Any]], now: datetime) -> None:
    db.execute(text(STAGING_DDL))
    db.execute(text("TRUNCATE catalog_staging"))
    columns = ("sku", *CONTENT, "content_hash")
    cursor = db.connection().connection.driver_connection.cursor()
    with cursor.copy(f"COPY catalog_staging ({', '.join(columns)}) FROM STDIN") as copy:
        for row in rows:
            copy.write_row([
                json.dumps(row[c], ensure_ascii=False) if c in ("images", "attributes") else row[c] for c in columns
            ])
    content = ", ".join(CONTENT)
    updates = ", ".join(f"{c} = EXCLUDED.{c}" for c in CONTENT)
    db.execute(text(_UPSERT_FROM_STAGING.format(content=content, updates=updates)),
               {"merchant_id": merchant_id, "upload_id": upload_id, "now": now})


def insert_events(db: Session, events: Sequence[dict[str, Any]]) -> None:
    if not events:
        return
    if _is_postgres(db) and len(events) > 1000:
        columns = ("product_id", "merchant_id", "at", "source", "upload_id", "actor_user_id", "actor_token_id", "changes")
        cursor = db.connection().connection.driver_connection.cursor()
        with cursor.copy(f"COPY product_events ({', '.join(columns)}) FROM STDIN") as copy:
            for event in events:
                copy.write_row([json.dumps(event[c], ensure_ascii=False, default=str) if c == "changes" else event.get(c)
                                for c in columns])
        return
    db.execute(insert(ProductEvent.__table__), list(events))


def deactivate_missing(db: Session, principal: Principal, seen_skus: Iterable[str], now: datetime, *,
                       apply: bool = True) -> list[int]:
    """The merchant's active products the file did not list; with ``apply`` they are marked inactive."""
    seen = set(seen_skus)
    active = db.execute(scope(select(Product.id, Product.sku).where(Product.status == "active"), Product, principal)).all()
    missing = [pid for pid, sku in active if sku not in seen]
    if not apply:
        return missing
    for start in range(0, len(missing), 5000):
        batch = missing[start:start + 5000]
        db.execute(update(Product).where(Product.id.in_(batch)).values(status="inactive", updated_at=now))
    return missing


def set_last_errors(db: Session, merchant_id: int, errors: dict[str, str | None]) -> None:
    """Record (or clear, with None) why a product's latest row was rejected."""
    if errors:
        table = Product.__table__
        db.execute(
            update(table).where(table.c.merchant_id == bindparam("m"), table.c.sku == bindparam("s"))
            .values(last_error=bindparam("e")),
            [{"m": merchant_id, "s": sku, "e": text_} for sku, text_ in errors.items()],
        )
