"""Completeness and readiness of products, recomputed in bulk and stored on each product.

A product is ``ready`` for the PIM when it is active, its last row was accepted, its merchant category
is confirmed onto a marketplace category, and every attribute that category requires (its own and its
ancestors') holds a value — for an enum, one of the allowed values, directly or through the merchant's
value mapping. Only rows whose outcome changed are written.
"""
from __future__ import annotations

import io
import json
from functools import lru_cache
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Text, case, cast, or_, select, text, update
from sqlalchemy.orm import Session

from portal.catalog.models import Product
from portal.category_mapping.models import (
    AttributeMapping, CategoryAttribute, MerchantCategory, TaxonomyCategory, ValueMapping,
)
from portal.catalog.bulk import lock_merchant_catalog
from portal.db import utcnow

BATCH = 20_000
# Requirement codes that name one of the product's own fields rather than an attribute of the file.
PRODUCT_FIELDS = ("brand", "gtin", "description", "images")


@lru_cache(maxsize=262_144)
def key(text_value: str) -> str:
    """How names and values are compared: case, ё/е and outer spaces do not matter."""
    return " ".join(text_value.lower().replace("ё", "е").split())


@dataclass(frozen=True)
class Rule:
    code: str
    names: frozenset[str]  # code, English and Russian names, as keys
    allowed: frozenset[str] | None  # enum values, or None


@dataclass
class Requirements:
    """Effective required attributes of every marketplace category (inherited from its ancestors)."""

    by_category: dict[int, tuple[Rule, ...]] = field(default_factory=dict)

    @classmethod
    def load(cls, db: Session) -> Requirements:
        parents = dict(db.execute(select(TaxonomyCategory.id, TaxonomyCategory.parent_id)).tuples().all())
        own: dict[int, dict[str, Rule]] = {}
        for row in db.scalars(select(CategoryAttribute).where(CategoryAttribute.required.is_(True))):
            names = frozenset(filter(None, (key(row.code), key(row.name_en), key(row.name_ru))))
            allowed = frozenset(key(v) for v in row.allowed_values) if row.type == "enum" else None
            own.setdefault(row.category_id, {})[row.code] = Rule(row.code, names, allowed)
        result = cls()
        for category_id in parents:
            chain, current, seen = [], category_id, set()
            while current is not None and current not in seen:
                seen.add(current)
                chain.append(current)
                current = parents.get(current)
            merged: dict[str, Rule] = {}
            for ancestor in reversed(chain):  # a subcategory's own rule wins over its ancestor's
                merged.update(own.get(ancestor, {}))
            if merged:
                result.by_category[category_id] = tuple(sorted(merged.values(), key=lambda rule: rule.code))
        return result

    def of(self, category_id: int | None) -> tuple[Rule, ...]:
        return self.by_category.get(category_id, ()) if category_id is not None else ()


@dataclass
class MerchantRules:
    """One merchant's confirmed categories and their names for attributes and values."""

    categories: dict[str, int]
    names: dict[str, str]  # attribute name key -> code
    values: dict[tuple[str, str], str]  # (code, value key) -> allowed value

    @classmethod
    def load(cls, db: Session, merchant_id: int) -> MerchantRules:
        # A mapping onto a category a newer taxonomy dropped counts as no mapping.
        categories = dict(db.execute(select(MerchantCategory.path, MerchantCategory.category_id)
                                     .join(TaxonomyCategory, TaxonomyCategory.id == MerchantCategory.category_id).where(
            MerchantCategory.merchant_id == merchant_id, MerchantCategory.status == "confirmed",
            TaxonomyCategory.is_active.is_(True))).tuples().all())
        names = {key(source): code for source, code in db.execute(select(
            AttributeMapping.source_name, AttributeMapping.code).where(AttributeMapping.merchant_id == merchant_id))}
        values = {(code, key(source)): value for code, source, value in db.execute(select(
            ValueMapping.code, ValueMapping.source_value, ValueMapping.value).where(ValueMapping.merchant_id == merchant_id))}
        return cls(categories, names, values)


@dataclass(frozen=True)
class Outcome:
    readiness: str
    category_id: int | None
    required: int
    filled: int
    missing: tuple[str, ...]


def evaluate(product: dict[str, Any], requirements: Requirements, merchant: MerchantRules) -> Outcome:
    """The readiness of one product (a dict of its columns): pure, so it is tested without a database."""
    category_id = merchant.categories.get(product["category"] or "")
    rules = requirements.of(category_id)
    # Every value the product holds for each code: the file may name one attribute twice (its own
    # "Оттенок" mapped onto colour beside a "Цвет" filled in later); any valid one will do.
    attributes: dict[str, list[str]] = {}
    missing: list[str] = []
    if rules:
        names = merchant.names
        for name, value in (product.get("attributes") or {}).items():
            if value is None or (type(value) is str and not value.strip()):
                continue
            name_key = key(name)
            attributes.setdefault(names.get(name_key, name_key), []).append(str(value))
        missing = [rule.code for rule in rules if not holds(product, attributes, rule, merchant)]
    if product["status"] != "active":
        readiness = "inactive"
    elif product.get("last_error"):
        readiness = "invalid"
    elif category_id is None:
        readiness = "unmapped"
    elif missing:
        readiness = "incomplete"
    else:
        readiness = "ready"
    return Outcome(readiness, category_id, len(rules), len(rules) - len(missing), tuple(missing))


def holds(product: dict[str, Any], attributes: dict[str, list[str]], rule: Rule, merchant: MerchantRules) -> bool:
    """Whether the product holds an accepted value for ``rule`` (``attributes``: its values by code)."""
    if rule.code in PRODUCT_FIELDS:
        return bool(product.get(rule.code))
    values = [*attributes.get(rule.code, ())]
    for name in rule.names - {rule.code}:
        values += attributes.get(name, ())
    if rule.allowed is None:
        return bool(values)
    return any(key(value) in rule.allowed or (rule.code, key(value)) in merchant.values for value in values)


@dataclass
class Summary:
    products: int = 0  # evaluated one by one (those in confirmed categories)
    changed: int = 0
    merchants: list[int] = field(default_factory=list)
    by_state: dict[str, int] = field(default_factory=dict)


def recompute(db: Session, merchant_ids: Iterable[int] | None = None, *, paths: Iterable[str] | None = None) -> Summary:
    """Recompute and store readiness for the given merchants (all when None), only ``paths`` if given.

    Reads products in primary-key batches and writes only those whose outcome changed. No commit.
    """
    requirements = Requirements.load(db)
    if merchant_ids is None:
        merchant_ids = [row for row in db.scalars(select(Product.merchant_id).distinct())]
    # Product fields a requirement reads; the others are not fetched at all.
    fields = sorted({rule.code for rules in requirements.by_category.values() for rule in rules} & set(PRODUCT_FIELDS))
    summary = Summary()
    now = utcnow()
    wanted = list(paths) if paths is not None else None
    for merchant_id in sorted(merchant_ids):  # locks in one order: two recomputes never deadlock
        summary.merchants.append(merchant_id)
        # A bulk write of the merchant's products, like an upload: orders wait rather than deadlock with it.
        lock_merchant_catalog(db, merchant_id)
        rules = MerchantRules.load(db, merchant_id)
        # Products outside confirmed categories need no attribute read: one UPDATE settles them.
        summary.changed += _settle_unmapped(db, merchant_id, list(rules.categories), wanted, now)
        mapped = list(rules.categories) if wanted is None else [path for path in wanted if path in rules.categories]
        if not mapped:
            continue
        for batch in _batches(db, merchant_id, mapped, fields):
            changes = []
            for product in batch:
                outcome = evaluate(product, requirements, rules)
                summary.products += 1
                summary.by_state[outcome.readiness] = summary.by_state.get(outcome.readiness, 0) + 1
                # The stored list is compared as the text it was written as (no JSON parsing per product).
                if (product["readiness"], product["marketplace_category_id"], product["required_count"],
                        product["filled_required"], product["missing"]) != (
                        outcome.readiness, outcome.category_id, outcome.required, outcome.filled,
                        _missing_text(outcome.missing)):
                    changes.append(outcome_row(product["id"], outcome, now))
            if changes:
                _write(db, changes)
                summary.changed += len(changes)
    if summary.changed:
        # The bulk writes go around the ORM: products already loaded in this session must read them again.
        for item in list(db.identity_map.values()):
            if isinstance(item, Product):
                db.expire(item, ["readiness", "marketplace_category_id", "required_count", "filled_required",
                                 "missing", "readiness_at"])
    db.flush()
    return summary


@lru_cache(maxsize=4096)
def _missing_text(missing: tuple[str, ...]) -> str:
    return json.dumps(list(missing))


BASE_COLUMNS = ("id", "category", "attributes", "status", "last_error", "readiness", "marketplace_category_id",
                "required_count", "filled_required")


def _settle_unmapped(db: Session, merchant_id: int, confirmed: list[str], wanted: list[str] | None,
                     now: datetime) -> int:
    """Readiness of the products whose category is not confirmed: inactive, invalid or unmapped, set in SQL."""
    state = case((Product.status != "active", "inactive"), (Product.last_error.is_not(None), "invalid"), else_="unmapped")
    scope = [Product.merchant_id == merchant_id]
    if confirmed:
        scope.append(Product.category.not_in(confirmed))
    if wanted is not None:
        scope.append(Product.category.in_(wanted))
    differs = or_(Product.readiness != state, Product.marketplace_category_id.is_not(None), Product.required_count != 0,
                  Product.filled_required != 0, cast(Product.missing, Text) != "[]")
    changed = db.execute(update(Product).where(*scope, differs).values(
        readiness=state, marketplace_category_id=None, required_count=0, filled_required=0, missing=[],
        readiness_at=now).execution_options(synchronize_session=False)).rowcount
    return max(changed, 0)


def _batches(db: Session, merchant_id: int, paths: list[str],
             fields: list[str]) -> Iterator[list[dict[str, Any]]]:
    names = [*BASE_COLUMNS, *fields, "missing"]
    columns = [getattr(Product, name) for name in (*BASE_COLUMNS, *fields)] + [cast(Product.missing, Text)]
    last = 0
    while True:
        stmt = select(*columns).where(Product.merchant_id == merchant_id, Product.id > last, Product.category.in_(paths))
        rows = [dict(zip(names, row)) for row in db.execute(stmt.order_by(Product.id).limit(BATCH)).tuples()]
        if not rows:
            return
        yield rows
        last = rows[-1]["id"]


def outcome_row(product_id: int, outcome: Outcome, now: datetime) -> dict[str, Any]:
    return {"id": product_id, "readiness": outcome.readiness, "marketplace_category_id": outcome.category_id,
            "required_count": outcome.required, "filled_required": outcome.filled, "missing": list(outcome.missing),
            "readiness_at": now}


def _write(db: Session, changes: list[dict[str, Any]]) -> None:
    if db.get_bind().dialect.name != "postgresql":
        db.execute(update(Product), changes)  # executemany by primary key
        return
    # PostgreSQL: one COPY into a temporary table and one UPDATE … FROM, not a statement per product.
    db.execute(text("CREATE TEMP TABLE IF NOT EXISTS readiness_staging (id integer PRIMARY KEY, readiness text, "
                    "marketplace_category_id integer, required_count integer, filled_required integer, missing json, "
                    "readiness_at timestamptz) ON COMMIT DROP"))
    db.execute(text("TRUNCATE readiness_staging"))
    buffer = io.StringIO()
    for row in changes:
        buffer.write("\t".join((str(row["id"]), row["readiness"], "\\N" if row["marketplace_category_id"] is None
                                else str(row["marketplace_category_id"]), str(row["required_count"]),
                                str(row["filled_required"]), json.dumps(row["missing"]).replace("\\", "\\\\"),
                                row["readiness_at"].isoformat())) + "\n")
    cursor = db.connection().connection.driver_connection.cursor()
    with cursor.copy("COPY readiness_staging FROM STDIN") as copy:
        copy.write(buffer.getvalue())
    db.execute(text("UPDATE products AS p SET readiness = s.readiness, marketplace_category_id = s.marketplace_category_id, "
                    "required_count = s.required_count, filled_required = s.filled_required, missing = s.missing, "
                    "readiness_at = s.readiness_at FROM readiness_staging AS s WHERE p.id = s.id"))
