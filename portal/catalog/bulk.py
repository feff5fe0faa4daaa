"""The bulk path of catalog writes: COPY and one UPDATE … FROM on PostgreSQL, one upsert executemany elsewhere."""
from __future__ import annotations

import io
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.csv as pa_csv
from sqlalchemy import bindparam, insert, select, text, update
from sqlalchemy.orm import Session

from portal.catalog.models import Product, ProductEvent
from portal.db import UTCDateTime, begin_write
from portal.tenancy import Principal, scope

CONTENT = ("title", "brand", "gtin", "description", "category", "price", "currency", "stock", "images", "attributes")
STAGING_DDL = """
CREATE TEMP TABLE IF NOT EXISTS catalog_staging (
    sku varchar(128), title varchar(500), brand varchar(200), gtin varchar(14), description text,
    category varchar(500), price numeric(14, 2), currency varchar(3), stock integer,
    images json, attributes json, content_hash varchar(32), source_hash varchar(16)
) ON COMMIT DROP
"""


def _is_postgres(db: Session) -> bool:
    return db.get_bind().dialect.name == "postgresql"


@dataclass
class ProductWrites:
    """One chunk's product writes, made ready before the database connection is free: on PostgreSQL
    the COPY payloads, elsewhere the rows for one upsert."""

    new: bytes = b""
    new_columns: list[str] = field(default_factory=list)
    changed: bytes = b""
    changed_columns: list[str] = field(default_factory=list)
    records: list[dict[str, Any]] = field(default_factory=list)


def prepare_products(dialect: str, merchant_id: int, upload_id: int | None, rows: pd.DataFrame,
                     now: datetime) -> ProductWrites:
    """``rows`` hold sku, CONTENT (images and attributes as JSON text), content_hash, source_hash and
    is_new (new products are copied straight into the table; changed ones are updated)."""
    writes = ProductWrites()
    if rows.empty:
        return writes
    if dialect != "postgresql":
        writes.records = rows.drop(columns=["is_new"], errors="ignore").to_dict("records")
        for record in writes.records:
            record.update(merchant_id=merchant_id, upload_id=upload_id, now=now, stock=int(record["stock"]))
        return writes
    new = rows[rows["is_new"]] if "is_new" in rows else rows.iloc[0:0]
    changed = rows[~rows["is_new"]] if "is_new" in rows else rows
    if len(new):
        frame = new[["sku", *CONTENT, "content_hash", "source_hash"]].assign(
            merchant_id=merchant_id, reserved=0, status="active", created_at=now.isoformat(),
            updated_at=now.isoformat(), created_upload_id=upload_id, last_upload_id=upload_id)
        writes.new, writes.new_columns = _csv(frame), list(frame.columns)
    if len(changed):
        frame = changed[["sku", *CONTENT, "content_hash", "source_hash"]]
        writes.changed, writes.changed_columns = _csv(frame), list(frame.columns)
    return writes


def upsert_products(db: Session, merchant_id: int, upload_id: int | None, writes: ProductWrites,
                    now: datetime) -> None:
    """Insert the new products and overwrite the changed ones of writes prepared beforehand."""
    if writes.records:
        _upsert_sqlite(db, writes.records)
    if writes.new or writes.changed:
        _upsert_postgres(db, merchant_id, upload_id, writes, now)


def _upsert_sqlite(db: Session, records: list[dict[str, Any]]) -> None:
    content = ", ".join(CONTENT)
    updates = ", ".join(f"{c} = excluded.{c}" for c in CONTENT)
    statement = text(
        f"INSERT INTO products (merchant_id, sku, {content}, content_hash, source_hash, reserved, status, created_at, updated_at, "
        f"created_upload_id, last_upload_id) VALUES (:merchant_id, :sku, {', '.join(':' + c for c in CONTENT)}, "
        f":content_hash, :source_hash, 0, 'active', :now, :now, :upload_id, :upload_id) "
        f"ON CONFLICT (merchant_id, sku) DO UPDATE SET {updates}, status = 'active', last_error = NULL, "
        f"content_hash = excluded.content_hash, source_hash = excluded.source_hash, updated_at = excluded.updated_at, "
        f"last_upload_id = excluded.last_upload_id"
    ).bindparams(bindparam("now", type_=UTCDateTime()))
    db.execute(statement, records)


def _upsert_postgres(db: Session, merchant_id: int, upload_id: int | None, writes: ProductWrites, now: datetime) -> None:
    """New products are copied straight into the table; changed ones go through a staging table and
    one UPDATE … FROM. The caller holds the merchant's upload lock, so "new" stays new meanwhile."""
    cursor = db.connection().connection.driver_connection.cursor()
    if writes.new:
        _copy(cursor, "products", writes.new_columns, writes.new)
    if writes.changed:
        db.execute(text(STAGING_DDL))
        db.execute(text("TRUNCATE catalog_staging"))
        _copy(cursor, "catalog_staging", writes.changed_columns, writes.changed)
        updates = ", ".join(f"{c} = s.{c}" for c in CONTENT)
        db.execute(text(
            f"UPDATE products AS p SET {updates}, status = 'active', last_error = NULL, content_hash = s.content_hash, "
            "source_hash = s.source_hash, "
            "updated_at = :now, last_upload_id = :upload_id FROM catalog_staging AS s "
            "WHERE p.merchant_id = :merchant_id AND p.sku = s.sku"
        ), {"merchant_id": merchant_id, "upload_id": upload_id, "now": now})


def _csv(frame: pd.DataFrame) -> bytes:
    """A frame as CSV written by Arrow (fast, in C++); every value quoted, so "" is an empty string and
    never NULL."""
    buffer = io.BytesIO()
    pa_csv.write_csv(pa.Table.from_pandas(frame, preserve_index=False), buffer,
                     pa_csv.WriteOptions(include_header=False, quoting_style="all_valid"))
    return buffer.getvalue()


def _copy(cursor: Any, table: str, columns: list[str], payload: bytes) -> None:
    with cursor.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN (FORMAT csv)") as copy:
        copy.write(payload)


def catalog_lock_key(merchant_id: int) -> int:
    """The advisory lock of a merchant's catalog on PostgreSQL (taken exclusive by bulk writers, shared by orders)."""
    return 0x50C0_0000 + merchant_id


def lock_merchant_catalog(db: Session, merchant_id: int) -> None:
    """One writer of a merchant's catalog in bulk at a time, until the transaction ends.

    PostgreSQL: an exclusive advisory lock per merchant. Orders take it shared
    (:func:`share_merchant_catalog`) before they lock products, so an upload never interleaves with
    reservations and shipments (its row locks in file order would deadlock with theirs in id order, and
    its stock figures, read before it writes, would undo a shipment). SQLite: the database's one write
    lock, taken now rather than at the first write.
    """
    if _is_postgres(db):
        db.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": catalog_lock_key(merchant_id)})
    else:
        begin_write(db)


def share_merchant_catalog(db: Session, merchant_id: int) -> None:
    """Wait for a bulk write of the merchant's catalog to end, and keep one from starting, until commit."""
    if _is_postgres(db):
        db.execute(text("SELECT pg_advisory_xact_lock_shared(:key)"), {"key": catalog_lock_key(merchant_id)})


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
