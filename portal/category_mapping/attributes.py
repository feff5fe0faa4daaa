"""Merchants' attribute names mapped onto marketplace codes, and their enum values normalised, with suggestions."""
from __future__ import annotations

from dataclasses import dataclass

from flask_babel import gettext
from rapidfuzz import fuzz, process
from sqlalchemy import func, select, text
from sqlalchemy.orm import Session

from portal.audit import record
from portal.catalog.models import Product
from portal.category_mapping import requests
from portal.category_mapping.queries import Code, codes
from portal.category_mapping.exceptions import MappingError
from portal.category_mapping.models import AttributeMapping, ValueMapping
from portal.category_mapping.readiness import key
from portal.category_mapping.suggest import tokens
from portal.db import utcnow
from portal.tenancy import Principal

SUGGEST_MIN = 0.6


@dataclass
class NameRow:
    name: str
    products: int
    code: str | None  # mapped explicitly, or matching a code by its name
    explicit: bool
    suggestion: tuple[str, float] | None


def attribute_names(db: Session, merchant_id: int) -> list[NameRow]:
    """The merchant's attribute names (their file's extra columns) with how each maps onto a code."""
    known = codes(db)
    mapped = dict(db.execute(select(AttributeMapping.source_name, AttributeMapping.code)
                             .where(AttributeMapping.merchant_id == merchant_id)).tuples().all())
    by_name = _names_index(known)
    rows = []
    for name, count in _attribute_counts(db, merchant_id):
        if name in mapped:
            rows.append(NameRow(name, count, mapped[name], True, None))
        elif key(name) in by_name:
            rows.append(NameRow(name, count, by_name[key(name)], False, None))
        else:
            rows.append(NameRow(name, count, None, False, suggest_code(name, known)))
    return rows


def _names_index(known: dict[str, Code]) -> dict[str, str]:
    index: dict[str, str] = {}
    for entry in known.values():
        for name in (entry.code, entry.name_en, entry.name_ru):
            if name:
                index.setdefault(key(name), entry.code)
    return index


def _attribute_counts(db: Session, merchant_id: int) -> list[tuple[str, int]]:
    if db.get_bind().dialect.name == "postgresql":
        sql = ("SELECT k, count(*) FROM products, json_object_keys(products.attributes) AS k "
               "WHERE products.merchant_id = :m GROUP BY k ORDER BY count(*) DESC, k")
    else:
        sql = ("SELECT j.key, count(*) FROM products, json_each(products.attributes) AS j "
               "WHERE products.merchant_id = :m GROUP BY j.key ORDER BY count(*) DESC, j.key")
    return [(row[0], int(row[1])) for row in db.execute(text(sql), {"m": merchant_id})]


def suggest_code(name: str, known: dict[str, Code]) -> tuple[str, float] | None:
    """The code a name most likely means: its words carried into English, else spelling similarity."""
    if not known:
        return None
    stems = set(tokens(name))
    best: tuple[str, float] | None = None
    for entry in known.values():
        entry_stems = set(tokens(f"{entry.code.replace('_', ' ')} {entry.name_en}"))
        overlap = len(stems & entry_stems) / len(entry_stems) if stems and entry_stems else 0.0
        spelling = max(fuzz.ratio(key(name), key(candidate)) / 100 for candidate in
                       (entry.code, entry.name_en, entry.name_ru) if candidate)
        score = max(overlap, spelling)
        if best is None or score > best[1]:
            best = (entry.code, round(score, 2))
    return best if best and best[1] >= SUGGEST_MIN else None


def set_attribute_mapping(db: Session, principal: Principal, merchant_id: int, source_name: str, code: str) -> None:
    """Map a merchant's attribute name onto a code ("" removes the mapping), then recompute readiness."""
    known = codes(db)
    if code and code not in known:
        raise MappingError(gettext("There is no marketplace attribute “%(code)s”.", code=code), code="unknown_attribute")
    row = db.scalar(select(AttributeMapping).where(AttributeMapping.merchant_id == merchant_id,
                                                   AttributeMapping.source_name == source_name))
    if not code:
        if row is not None:
            db.delete(row)
    elif row is None:
        db.add(AttributeMapping(merchant_id=merchant_id, source_name=source_name, code=code, updated_at=utcnow()))
    else:
        row.code, row.updated_at = code, utcnow()
    db.flush()
    requests.refresh(db, [merchant_id])
    record(db, "mapping.attribute", actor=principal, merchant_id=merchant_id, details={"name": source_name, "code": code})
    db.commit()


@dataclass
class ValueRow:
    value: str
    products: int
    mapped_to: str | None
    suggestion: tuple[str, float] | None


def enum_values(db: Session, merchant_id: int, code: str) -> list[ValueRow]:
    """The merchant's values for an enum code that are not allowed values themselves, with suggestions."""
    entry = codes(db).get(code)
    if entry is None or entry.type != "enum":
        raise MappingError(gettext("“%(code)s” is not an attribute with a list of values.", code=code), code="not_enum")
    names = _names_for(db, merchant_id, entry)
    mapped = dict(db.execute(select(ValueMapping.source_value, ValueMapping.value).where(
        ValueMapping.merchant_id == merchant_id, ValueMapping.code == code)).tuples().all())
    allowed = set(entry.allowed)
    counts: dict[str, int] = {}
    for name in names:
        for value, count in _value_counts(db, merchant_id, name):
            if value and key(value) not in allowed:
                counts[key(value)] = counts.get(key(value), 0) + count
    return [ValueRow(value, count, mapped.get(value), None if value in mapped else suggest_value(value, entry.allowed))
            for value, count in sorted(counts.items(), key=lambda item: (-item[1], item[0]))]


def _names_for(db: Session, merchant_id: int, entry: Code) -> list[str]:
    """Attribute names of the merchant's products that stand for ``entry``."""
    explicit = set(db.scalars(select(AttributeMapping.source_name).where(
        AttributeMapping.merchant_id == merchant_id, AttributeMapping.code == entry.code)))
    implicit = {key(name) for name in (entry.code, entry.name_en, entry.name_ru) if name}
    return [name for name, _ in _attribute_counts(db, merchant_id) if name in explicit or key(name) in implicit]


def _value_counts(db: Session, merchant_id: int, name: str) -> list[tuple[str, int]]:
    if db.get_bind().dialect.name == "postgresql":
        value = func.json_extract_path_text(Product.attributes, name)
    else:
        value = func.json_extract(Product.attributes, '$."' + name.replace('"', '\\"') + '"')
    rows = db.execute(select(value, func.count()).where(Product.merchant_id == merchant_id, value.is_not(None))
                      .group_by(value)).all()
    return [(str(row[0]), int(row[1])) for row in rows]


def suggest_value(value: str, allowed: list[str]) -> tuple[str, float] | None:
    if not allowed:
        return None
    stems = set(tokens(value))
    for candidate in allowed:
        if set(tokens(candidate.replace("_", " "))) & stems:
            return candidate, 0.95
    match = process.extractOne(key(value), allowed, scorer=fuzz.ratio)
    if match and match[1] >= SUGGEST_MIN * 100:
        return match[0], round(match[1] / 100, 2)
    return None


def set_value_mapping(db: Session, principal: Principal, merchant_id: int, code: str, source_value: str,
                      value: str) -> None:
    """Say which allowed value a merchant's value stands for ("" forgets it); refused outside the list."""
    entry = codes(db).get(code)
    if entry is None or entry.type != "enum":
        raise MappingError(gettext("“%(code)s” is not an attribute with a list of values.", code=code), code="not_enum")
    value = key(value)
    if value and value not in entry.allowed:
        raise MappingError(gettext("“%(value)s” is not an allowed value of %(name)s; allowed: %(allowed)s.",
                                   value=value, name=entry.name_en, allowed=", ".join(entry.allowed)),
                           code="value_not_allowed")
    source = key(source_value)
    row = db.scalar(select(ValueMapping).where(ValueMapping.merchant_id == merchant_id, ValueMapping.code == code,
                                               ValueMapping.source_value == source))
    if not value:
        if row is not None:
            db.delete(row)
    elif row is None:
        db.add(ValueMapping(merchant_id=merchant_id, code=code, source_value=source, value=value, updated_at=utcnow()))
    else:
        row.value, row.updated_at = value, utcnow()
    db.flush()
    requests.refresh(db, [merchant_id])
    record(db, "mapping.value", actor=principal, merchant_id=merchant_id,
           details={"code": code, "from": source, "to": value})
    db.commit()
