"""Weak spots: per marketplace category, how far its products are from sale, for the staff in charge of it."""
from __future__ import annotations

import io
import json
from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Any

from flask_babel import gettext
from sqlalchemy import Float, case, cast, func, select
from sqlalchemy.orm import Session
from sqlalchemy.types import Text

from portal.catalog.models import Product
from portal.category_mapping.models import FillInRequest, ManagedCategory, MerchantCategory, TaxonomyCategory
from portal.db import utcnow
from portal.tenancy import Principal

SORT_KEYS = ("path", "products", "merchants", "completeness", "ready_share", "open_requests", "overdue_requests",
             "pending_categories")
TOP_MISSING = 3


@dataclass
class Spot:
    key: int  # the category (or, drilled down, the merchant)
    path: str
    products: int = 0
    merchants: int = 0
    completeness: float | None = None
    ready_share: float | None = None
    open_requests: int = 0
    overdue_requests: int = 0
    pending_categories: int = 0
    missing: list[tuple[str, int]] = field(default_factory=list)


def categories_in_charge(db: Session, principal: Principal) -> set[int] | None:
    """The categories a category manager answers for (their subtrees); None for operators (all)."""
    if principal.role != "category_manager":
        return None
    roots = set(db.scalars(select(ManagedCategory.category_id).where(ManagedCategory.user_id == principal.user_id)))
    children: dict[int | None, list[int]] = {}
    for category_id, parent_id in db.execute(select(TaxonomyCategory.id, TaxonomyCategory.parent_id)):
        children.setdefault(parent_id, []).append(category_id)
    found, stack = set(), list(roots)
    while stack:
        current = stack.pop()
        if current not in found:
            found.add(current)
            stack.extend(children.get(current, ()))
    return found


def spots(db: Session, principal: Principal, *, category_id: int | None = None) -> list[Spot]:
    """One row per category in charge with products or pending merchant categories; with ``category_id``,
    one row per merchant of that category (the drill-down)."""
    allowed = categories_in_charge(db, principal)
    if category_id is not None and allowed is not None and category_id not in allowed:
        return []
    by_merchant = category_id is not None
    group = Product.merchant_id if by_merchant else Product.marketplace_category_id
    stmt = (select(group, func.count(), func.count(func.distinct(Product.merchant_id)),
                   func.avg(case((Product.required_count > 0,
                                  cast(Product.filled_required, Float) / Product.required_count))),
                   func.sum(case((Product.readiness == "ready", 1), else_=0)))
            .where(Product.status == "active", Product.marketplace_category_id.is_not(None)).group_by(group))
    if by_merchant:
        stmt = stmt.where(Product.marketplace_category_id == category_id)
    rows: dict[int, Spot] = {}
    for key, products, merchants, completeness, ready in db.execute(stmt):
        if not by_merchant and allowed is not None and key not in allowed:
            continue
        rows[key] = Spot(key, "", products, merchants, None if completeness is None else float(completeness),
                         (ready or 0) / products if products else None)
    _requests(db, rows, allowed, category_id)
    _pending(db, rows, allowed, category_id)
    _missing(db, rows, allowed, category_id)
    _name(db, rows, by_merchant)
    return list(rows.values())


def _row(rows: dict[int, Spot], key: int) -> Spot:
    return rows.setdefault(key, Spot(key, ""))


def _requests(db: Session, rows: dict[int, Spot], allowed: set[int] | None, category_id: int | None) -> None:
    group = FillInRequest.merchant_id if category_id is not None else FillInRequest.category_id
    stmt = (select(group, func.count(), func.sum(case((FillInRequest.due_at < utcnow(), 1), else_=0)))
            .where(FillInRequest.status == "open", FillInRequest.category_id.is_not(None)).group_by(group))
    if category_id is not None:
        stmt = stmt.where(FillInRequest.category_id == category_id)
    for key, count, overdue in db.execute(stmt):
        if category_id is None and allowed is not None and key not in allowed:
            continue
        spot = _row(rows, key)
        spot.open_requests, spot.overdue_requests = count, overdue or 0


def _pending(db: Session, rows: dict[int, Spot], allowed: set[int] | None, category_id: int | None) -> None:
    """Merchant categories not yet mapped whose best suggestion is this category."""
    stmt = select(MerchantCategory.merchant_id, MerchantCategory.suggestions).where(
        MerchantCategory.status.in_(("unmapped", "suggested", "rejected")))
    for merchant_id, suggestions in db.execute(stmt):
        if not suggestions:
            continue
        top = suggestions[0]["category_id"]
        if category_id is not None:
            if top == category_id:
                _row(rows, merchant_id).pending_categories += 1
        elif allowed is None or top in allowed:
            _row(rows, top).pending_categories += 1


def _missing(db: Session, rows: dict[int, Spot], allowed: set[int] | None, category_id: int | None) -> None:
    group = Product.merchant_id if category_id is not None else Product.marketplace_category_id
    stmt = (select(group, cast(Product.missing, Text), func.count())
            .where(Product.readiness == "incomplete").group_by(group, cast(Product.missing, Text)))
    if category_id is not None:
        stmt = stmt.where(Product.marketplace_category_id == category_id)
    counters: dict[int, Counter[str]] = {}
    for key, missing, count in db.execute(stmt):
        if key is None or (category_id is None and allowed is not None and key not in allowed):
            continue
        for code in json.loads(missing or "[]"):
            counters.setdefault(key, Counter())[code] += count
    for key, counter in counters.items():
        _row(rows, key).missing = counter.most_common(TOP_MISSING)


def _name(db: Session, rows: dict[int, Spot], by_merchant: bool) -> None:
    from portal.accounts.models import Merchant

    model = Merchant if by_merchant else TaxonomyCategory
    label = Merchant.name if by_merchant else TaxonomyCategory.path
    names = dict(db.execute(select(model.id, label).where(model.id.in_(list(rows)))).tuples().all())
    for key, spot in rows.items():
        spot.path = names.get(key, str(key))


def sort(rows: list[Spot], key: str, descending: bool) -> list[Spot]:
    key = key if key in SORT_KEYS else "products"
    present = [row for row in rows if getattr(row, key) is not None]
    absent = [row for row in rows if getattr(row, key) is None]
    return sorted(present, key=lambda row: (getattr(row, key), row.path), reverse=descending) + absent


def export(rows: list[Spot], fmt: str, labels: dict[str, str]) -> tuple[bytes, str]:
    """The table as CSV or XLSX (pandas), every text cell safe from formula injection."""
    import pandas as pd

    from portal.reports import safe_cell

    records = []
    for row in rows:
        record: dict[str, Any] = {key: value for key, value in asdict(row).items() if key != "missing"}
        record["missing"] = ", ".join(f"{code} ({count})" for code, count in row.missing)
        records.append({labels.get(key, key): safe_cell(value) for key, value in record.items()})
    frame = pd.DataFrame.from_records(records, columns=[labels.get(key, key) for key in
                                                        ("key", "path", *SORT_KEYS[1:], "missing")])
    buffer = io.BytesIO()
    if fmt == "xlsx":
        with pd.ExcelWriter(buffer, engine="xlsxwriter") as writer:
            frame.to_excel(writer, index=False, sheet_name=gettext("Weak spots")[:31])
        return buffer.getvalue(), "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
    buffer.write(frame.to_csv(index=False).encode("utf-8-sig"))
    return buffer.getvalue(), "text/csv"
