"""The marketplace taxonomy, its attribute requirements, and each merchant's mapping onto it."""
from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from portal.db import Base, utcnow

ATTRIBUTE_TYPES = ("text", "number", "enum", "bool", "url")
# unmapped -> suggested -> confirmed | rejected; a rejected mapping gets new suggestions, never the same one.
MAPPING_STATES = ("unmapped", "suggested", "confirmed", "rejected")


class TaxonomyCategory(Base):
    """A marketplace category; ids come from the taxonomy file and stay stable across re-imports."""

    __tablename__ = "taxonomy_categories"

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    parent_id: Mapped[int | None] = mapped_column(ForeignKey("taxonomy_categories.id"), index=True)
    name: Mapped[str] = mapped_column(String(255))
    path: Mapped[str] = mapped_column(String(1000))
    depth: Mapped[int] = mapped_column(default=1)
    # A category dropped from a newer taxonomy file is kept inactive: mappings onto it stay readable.
    is_active: Mapped[bool] = mapped_column(default=True)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class CategoryAttribute(Base):
    """An attribute a marketplace category asks for; subcategories inherit it."""

    __tablename__ = "category_attributes"
    __table_args__ = (UniqueConstraint("category_id", "code"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    category_id: Mapped[int] = mapped_column(ForeignKey("taxonomy_categories.id"), index=True)
    code: Mapped[str] = mapped_column(String(64))
    name_en: Mapped[str] = mapped_column(String(200))
    name_ru: Mapped[str] = mapped_column(String(200), default="")
    type: Mapped[str] = mapped_column(String(8))
    unit: Mapped[str] = mapped_column(String(16), default="")
    required: Mapped[bool] = mapped_column(default=True)
    allowed_values: Mapped[list[str]] = mapped_column(JSON, default=list)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class ManagedCategory(Base):
    """A marketplace category (with its subtree) a category manager is in charge of."""

    __tablename__ = "managed_categories"

    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), primary_key=True)
    category_id: Mapped[int] = mapped_column(ForeignKey("taxonomy_categories.id"), primary_key=True)


class MerchantCategory(Base):
    """One distinct category path of a merchant's catalog and where it lands in the taxonomy."""

    __tablename__ = "merchant_categories"
    __table_args__ = (UniqueConstraint("merchant_id", "path"), Index("ix_merchant_categories_status", "merchant_id", "status"))

    id: Mapped[int] = mapped_column(primary_key=True)
    merchant_id: Mapped[int] = mapped_column(ForeignKey("merchants.id"))
    # Exactly as Product.category holds it: the join key between the two.
    path: Mapped[str] = mapped_column(String(500))
    products: Mapped[int] = mapped_column(default=0)
    # A few product titles, read with the path when suggesting.
    sample_titles: Mapped[list[str]] = mapped_column(JSON, default=list)
    status: Mapped[str] = mapped_column(String(16), default="unmapped")
    category_id: Mapped[int | None] = mapped_column(ForeignKey("taxonomy_categories.id"), index=True)
    # Top suggestions, best first: [{"category_id": 123, "confidence": 0.82, "source": "text"}].
    suggestions: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    # Categories the merchant turned down, never suggested again for this path.
    rejected_ids: Mapped[list[int]] = mapped_column(JSON, default=list)
    # Locked by a category manager: the merchant can no longer change it.
    locked: Mapped[bool] = mapped_column(default=False)
    decided_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    decided_at: Mapped[datetime | None]
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class AttributeMapping(Base):
    """A merchant's attribute name (a column of their file) and the marketplace code it stands for."""

    __tablename__ = "attribute_mappings"
    __table_args__ = (UniqueConstraint("merchant_id", "source_name"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    merchant_id: Mapped[int] = mapped_column(ForeignKey("merchants.id"))
    source_name: Mapped[str] = mapped_column(String(255))
    code: Mapped[str] = mapped_column(String(64))
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class ValueMapping(Base):
    """A merchant's way of writing an enum value ("черный") and the marketplace value ("black")."""

    __tablename__ = "attribute_value_mappings"
    __table_args__ = (UniqueConstraint("merchant_id", "code", "source_value"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    merchant_id: Mapped[int] = mapped_column(ForeignKey("merchants.id"))
    code: Mapped[str] = mapped_column(String(64))
    source_value: Mapped[str] = mapped_column(String(255))
    value: Mapped[str] = mapped_column(String(255))
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class FillInRequest(Base):
    """A request to a merchant to fill in attributes: opened by the portal or by a category manager."""

    __tablename__ = "fill_in_requests"
    __table_args__ = (Index("ix_fill_in_requests_merchant_status", "merchant_id", "status"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    merchant_id: Mapped[int] = mapped_column(ForeignKey("merchants.id"))
    product_id: Mapped[int | None] = mapped_column(ForeignKey("products.id", ondelete="CASCADE"), index=True)
    category_id: Mapped[int | None] = mapped_column(ForeignKey("taxonomy_categories.id"))
    kind: Mapped[str] = mapped_column(String(8), default="auto")  # auto, manual
    attributes: Mapped[list[str]] = mapped_column(JSON, default=list)
    text: Mapped[str] = mapped_column(Text, default="")
    status: Mapped[str] = mapped_column(String(8), default="open")  # open, closed
    due_at: Mapped[datetime | None]
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    closed_at: Mapped[datetime | None]
