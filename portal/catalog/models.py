"""Products, uploads, their row-level issues, column templates and product history."""
from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, Numeric, String, Text, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column

from portal.db import Base, utcnow

class Product(Base):
    __tablename__ = "products"
    __table_args__ = (UniqueConstraint("merchant_id", "sku"), Index("ix_products_merchant_status", "merchant_id", "status"),
                      Index("ix_products_merchant_readiness", "merchant_id", "readiness"))

    id: Mapped[int] = mapped_column(primary_key=True)
    merchant_id: Mapped[int] = mapped_column(ForeignKey("merchants.id"))
    sku: Mapped[str] = mapped_column(String(128))
    title: Mapped[str] = mapped_column(String(500))
    brand: Mapped[str] = mapped_column(String(200), default="")
    gtin: Mapped[str] = mapped_column(String(14), default="")
    description: Mapped[str] = mapped_column(Text, default="")
    # The merchant's own category path, as written in their file ("Одежда > Футболки").
    category: Mapped[str] = mapped_column(String(500), default="", index=True)
    price: Mapped[Decimal] = mapped_column(Numeric(14, 2))
    currency: Mapped[str] = mapped_column(String(3), default="RUB")
    stock: Mapped[int] = mapped_column(default=0)
    # Held by open orders; uploads change stock on hand and never this.
    reserved: Mapped[int] = mapped_column(default=0)
    images: Mapped[list[str]] = mapped_column(JSON, default=list)
    attributes: Mapped[dict[str, str]] = mapped_column(JSON, default=dict)
    status: Mapped[str] = mapped_column(String(16), default="active")
    content_hash: Mapped[str] = mapped_column(String(32), default="")
    # Fingerprint of the file row (cells and column mapping) last applied to this product: a re-upload
    # of the same row needs no checking. Every other write path must clear it (update_offer does).
    source_hash: Mapped[str] = mapped_column(String(16), default="")
    # Why the merchant's latest row for this product was rejected; cleared when a row is accepted.
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    # Plain ids, no foreign keys: bulk loads would pay two constraint checks a row for a trail.
    created_upload_id: Mapped[int | None]
    last_upload_id: Mapped[int | None]
    # Readiness for the PIM, kept by portal.category_mapping.readiness (in bulk, never per request):
    # unmapped, incomplete, invalid, inactive or ready. Server defaults: the bulk COPY path names no
    # readiness columns.
    readiness: Mapped[str] = mapped_column(String(16), default="unmapped", server_default="unmapped")
    # The marketplace category its merchant category is confirmed onto, when it is.
    marketplace_category_id: Mapped[int | None]
    required_count: Mapped[int] = mapped_column(default=0, server_default="0")
    filled_required: Mapped[int] = mapped_column(default=0, server_default="0")
    # Codes of the required attributes the product lacks (or holds a value outside the allowed list for).
    missing: Mapped[list[str]] = mapped_column(JSON, default=list, server_default=text("'[]'"))
    readiness_at: Mapped[datetime | None]

    @property
    def completeness(self) -> float | None:
        """Required attributes filled / required; None when its category requires nothing or it is unmapped."""
        return self.filled_required / self.required_count if self.required_count else None

    @property
    def available(self) -> int:
        return self.stock - self.reserved


class Upload(Base):
    __tablename__ = "catalog_uploads"

    id: Mapped[int] = mapped_column(primary_key=True)
    merchant_id: Mapped[int] = mapped_column(ForeignKey("merchants.id"), index=True)
    uploaded_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    uploaded_by_token_id: Mapped[int | None] = mapped_column(ForeignKey("api_tokens.id"))
    source: Mapped[str] = mapped_column(String(8), default="web")  # web, api, cli
    filename: Mapped[str] = mapped_column(String(255))
    format: Mapped[str | None] = mapped_column(String(8))
    size_bytes: Mapped[int] = mapped_column(default=0)
    storage_key: Mapped[str] = mapped_column(String(255))
    # Column name in the file -> portal field, or "" for "keep as a merchant attribute".
    columns: Mapped[list[str]] = mapped_column(JSON, default=list)
    # A few values of each column, shown beside it on the mapping page.
    samples: Mapped[dict[str, list[str]]] = mapped_column(JSON, default=dict)
    mapping: Mapped[dict[str, str]] = mapped_column(JSON, default=dict)
    deactivate_missing: Mapped[bool] = mapped_column(default=False)
    # uploaded -> queued -> running -> previewed | applied | failed (a preview can be applied next)
    status: Mapped[str] = mapped_column(String(16), default="uploaded", index=True)
    dry_run: Mapped[bool] = mapped_column(default=False)
    job_id: Mapped[str | None] = mapped_column(ForeignKey("jobs.id"))
    rows: Mapped[int] = mapped_column(default=0)
    created: Mapped[int] = mapped_column(default=0)
    updated: Mapped[int] = mapped_column(default=0)
    unchanged: Mapped[int] = mapped_column(default=0)
    rejected: Mapped[int] = mapped_column(default=0)
    warnings: Mapped[int] = mapped_column(default=0)
    deactivated: Mapped[int] = mapped_column(default=0)
    error_code: Mapped[str | None] = mapped_column(String(64))
    error: Mapped[str | None] = mapped_column(Text)
    error_report_key: Mapped[str | None] = mapped_column(String(255))
    locale: Mapped[str] = mapped_column(String(8), default="en")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    finished_at: Mapped[datetime | None]

    @property
    def counts(self) -> dict[str, int]:
        return {k: getattr(self, k) for k in ("rows", "created", "updated", "unchanged", "rejected", "warnings")}


class UploadIssue(Base):
    """A rejected row's error or a warning, as the merchant sees it: row number and column of their file."""

    __tablename__ = "catalog_upload_issues"

    id: Mapped[int] = mapped_column(primary_key=True)
    upload_id: Mapped[int] = mapped_column(ForeignKey("catalog_uploads.id", ondelete="CASCADE"), index=True)
    severity: Mapped[str] = mapped_column(String(8))  # error, warning
    row: Mapped[int | None]
    column: Mapped[str | None] = mapped_column(String(255))
    code: Mapped[str] = mapped_column(String(64))
    params: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


class ColumnTemplate(Base):
    """A merchant's saved column mapping, applied to the next upload with the same columns."""

    __tablename__ = "catalog_column_templates"

    id: Mapped[int] = mapped_column(primary_key=True)
    merchant_id: Mapped[int] = mapped_column(ForeignKey("merchants.id"), unique=True)
    mapping: Mapped[dict[str, str]] = mapped_column(JSON, default=dict)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class ProductEvent(Base):
    """One change of a product: which fields went from what to what, by whom and through what."""

    __tablename__ = "product_events"

    id: Mapped[int] = mapped_column(primary_key=True)
    product_id: Mapped[int] = mapped_column(ForeignKey("products.id", ondelete="CASCADE"), index=True)
    merchant_id: Mapped[int] = mapped_column(ForeignKey("merchants.id"), index=True)
    at: Mapped[datetime] = mapped_column(default=utcnow)
    source: Mapped[str] = mapped_column(String(8))  # upload, api, web
    upload_id: Mapped[int | None] = mapped_column(ForeignKey("catalog_uploads.id"))
    actor_user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    actor_token_id: Mapped[int | None] = mapped_column(ForeignKey("api_tokens.id"))
    changes: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
