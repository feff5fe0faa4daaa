"""One JSON Lines record per ready product, built from its row and the context it is read in.

The record is what ``docs/pim_export/product.schema.json`` publishes. Attributes go out under the
marketplace's codes (the merchant's own names mapped through their attribute mapping, or matching a
code's English or Russian name), enum values in the marketplace's spelling (directly or through the
merchant's value mapping); attributes that map onto no code stay in the portal.
"""
from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from decimal import Decimal
from typing import Any

import orjson
from sqlalchemy import select
from sqlalchemy.orm import Session

from portal.accounts.models import Merchant
from portal.category_mapping.models import AttributeMapping, CategoryAttribute, TaxonomyCategory, ValueMapping
from portal.category_mapping.queries import codes
from portal.category_mapping.readiness import key

SCHEMA = "merchant-portal/pim-product"
SCHEMA_VERSION = 1


@dataclass
class MerchantContext:
    slug: str
    active: bool
    names: dict[str, str]  # attribute name key -> code (the merchant's own mapping)
    values: dict[tuple[str, str], str]  # (code, value key) -> allowed value
    digest: str
    # Caches filled while records are built: attribute name as written -> code; (code, value) -> value sent.
    codes: dict[str, Any] = field(default_factory=dict)
    enum_values: dict[tuple[str, str], tuple[str, bool]] = field(default_factory=dict)


_UNKNOWN = object()


@dataclass
class Context:
    """Everything a record depends on besides its product row, read once per run."""

    merchants: dict[int, MerchantContext]
    paths: dict[int, str]  # marketplace category id -> path
    names: dict[str, str]  # name key (code, English or Russian name) -> code
    enums: dict[str, dict[str, str]]  # enum code -> value key -> allowed value
    taxonomy_digest: str
    _empty: MerchantContext = field(default_factory=lambda: MerchantContext("", False, {}, {}, ""))

    @classmethod
    def load(cls, db: Session) -> Context:
        known = codes(db)
        names: dict[str, str] = {}
        for entry in known.values():
            for name in (entry.code, entry.name_en, entry.name_ru):
                if name:
                    names.setdefault(key(name), entry.code)
        enums = {entry.code: {key(value): value for value in entry.allowed}
                 for entry in known.values() if entry.type == "enum"}
        paths = dict(db.execute(select(TaxonomyCategory.id, TaxonomyCategory.path)).tuples().all())
        attributes = [tuple(row) for row in db.execute(select(
            CategoryAttribute.category_id, CategoryAttribute.code, CategoryAttribute.name_en, CategoryAttribute.name_ru,
            CategoryAttribute.type, CategoryAttribute.allowed_values))]
        taxonomy = [sorted(paths.items()), sorted(attributes, key=repr)]
        mapped_names: dict[int, dict[str, str]] = {}
        for merchant_id, source, code in db.execute(select(
                AttributeMapping.merchant_id, AttributeMapping.source_name, AttributeMapping.code)):
            mapped_names.setdefault(merchant_id, {})[key(source)] = code
        mapped_values: dict[int, dict[tuple[str, str], str]] = {}
        for merchant_id, code, source, value in db.execute(select(
                ValueMapping.merchant_id, ValueMapping.code, ValueMapping.source_value, ValueMapping.value)):
            mapped_values.setdefault(merchant_id, {})[(code, key(source))] = value
        merchants = {}
        for merchant_id, slug, active in db.execute(select(Merchant.id, Merchant.slug, Merchant.is_active)):
            own_names, own_values = mapped_names.get(merchant_id, {}), mapped_values.get(merchant_id, {})
            merchants[merchant_id] = MerchantContext(slug, bool(active), own_names, own_values, digest(
                [slug, bool(active), sorted(own_names.items()), sorted(own_values.items())]))
        return cls(merchants, paths, names, enums, digest(taxonomy))

    def fingerprints(self) -> dict[str, Any]:
        """Stored on the run: the next delta re-reads the products whose context differs from these."""
        return {"taxonomy": self.taxonomy_digest,
                "merchants": {str(merchant_id): entry.digest for merchant_id, entry in self.merchants.items()}}

    def changed_since(self, previous: Mapping[str, Any]) -> tuple[bool, set[int]]:
        """(whether the taxonomy changed, the merchants whose context changed) against a run's fingerprints."""
        before = previous.get("merchants") or {}
        merchants = {merchant_id for merchant_id, entry in self.merchants.items()
                     if before.get(str(merchant_id)) != entry.digest}
        return previous.get("taxonomy") != self.taxonomy_digest, merchants

    def attributes(self, merchant: MerchantContext, values: Mapping[str, Any] | None) -> dict[str, str]:
        """The product's attributes under marketplace codes, in the product's order; for an enum an allowed
        value wins over others."""
        if not values:
            return {}
        result: dict[str, str] = {}
        final: set[str] = set()
        codes, enum_values = merchant.codes, merchant.enum_values
        for name, value in values.items():
            target = codes.get(name, _UNKNOWN)
            if target is _UNKNOWN:
                target = codes[name] = self._target(merchant, name)
            if target is None or value is None:
                continue
            code, allowed = target
            if code in final:
                continue
            text = value if type(value) is str else str(value)
            if allowed is None:
                text = text.strip()
                if text:
                    result[code] = text
                    final.add(code)
                continue
            known = enum_values.get((code, text))
            if known is None:
                stripped = text.strip()
                value_key = key(stripped)
                canonical = allowed.get(value_key) or merchant.values.get((code, value_key))
                # Enum values are few, so remembering each spelling costs little and saves the normalising.
                known = enum_values[(code, text)] = (canonical, True) if canonical is not None else (stripped, False)
            if known[1]:
                result[code] = known[0]
                final.add(code)
            elif known[0] and code not in result:
                result[code] = known[0]
        return result

    def _target(self, merchant: MerchantContext, name: str) -> tuple[str, dict[str, str] | None] | None:
        name_key = key(name)
        code = merchant.names.get(name_key) or self.names.get(name_key)
        return None if code is None else (code, self.enums.get(code))


# The product columns a record is built from, in this order.
COLUMNS = ("id", "merchant_id", "sku", "title", "brand", "gtin", "description", "price", "currency", "stock",
           "reserved", "images", "attributes", "updated_at", "marketplace_category_id")


def build(row: Mapping[str, Any] | Iterable[Any], context: Context) -> tuple[bytes, str]:
    """(the record as one JSON line without its newline, its content hash) for a product row (COLUMNS, in
    that order; more columns after them are ignored).

    The content hash covers everything but ``updated_at``: a record whose content did not change keeps it.
    """
    (_id, merchant_id, sku, title, brand, gtin, description, price, currency, stock, reserved, images, attributes,
     updated_at, category_id) = tuple(row.values()) if type(row) is dict else row[:15]
    merchant = context.merchants.get(merchant_id) or context._empty
    body = {
        "merchant_id": merchant_id,
        "merchant_slug": merchant.slug,
        "sku": sku,
        "category_id": category_id,
        "category_path": context.paths.get(category_id),
        "title": title,
        "brand": brand or None,
        "gtin": gtin or None,
        "description": description or None,
        "price": price_text(price),
        "currency": currency,
        "available": max(int(stock) - int(reserved), 0),
        "images": (orjson.loads(images) if type(images) is str else list(images or ())) or [],
        "attributes": context.attributes(merchant, orjson.loads(attributes) if type(attributes) is str else attributes),
    }
    encoded = orjson.dumps(body)
    content_hash = hashlib.sha256(encoded).hexdigest()
    tail = orjson.dumps({"updated_at": iso(updated_at), "content_hash": content_hash})
    return encoded[:-1] + b"," + tail[1:], content_hash


def tombstone(merchant_id: int, sku: str) -> bytes:
    return orjson.dumps({"merchant_id": merchant_id, "sku": sku, "deleted": True})


def price_text(price: Decimal | float | str) -> str:
    """Two decimals as text; the database's own text of a NUMERIC(14, 2) already is."""
    if type(price) is str and len(price) > 3 and price[-3] == ".":
        return price
    return f"{Decimal(price):.2f}" if not isinstance(price, Decimal) else f"{price:.2f}"


_last_iso: list[Any] = [None, ""]


def iso(moment: datetime | str) -> str:
    """UTC, to the second, with a Z: ``2026-11-23T02:00:00Z``; text is SQLite's stored form of a UTC time.
    (Rows of one upload share their time: the last answer is kept.)"""
    if moment != _last_iso[0]:
        value = moment if isinstance(moment, datetime) else datetime.fromisoformat(moment)
        if value.tzinfo is not None:
            value = value.astimezone(timezone.utc)
        _last_iso[:] = [moment, value.strftime("%Y-%m-%dT%H:%M:%SZ")]
    return _last_iso[1]


def digest(value: Any) -> str:
    return hashlib.sha256(orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS)).hexdigest()[:32]
