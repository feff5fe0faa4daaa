"""Fill-in requests: opened by the portal for incomplete products or by a category manager, closed by the data.

Automatic requests are one per merchant and marketplace category, naming the attributes its products
lack; they follow readiness (opened, updated, closed) each time it is recomputed. A request opened
because a category's requirements changed says so (kind ``rules``). Manual requests name attributes,
a text and a due date; those with attributes close by themselves once every product they cover has them.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any

from flask_babel import gettext
from flask_babel import lazy_gettext as _l
from sqlalchemy import Select, cast, func, select
from sqlalchemy.orm import Session
from sqlalchemy.types import Text

from portal.audit import record
from portal.catalog import services as catalog_services
from portal.catalog.models import Product
from portal.category_mapping import readiness
from portal.category_mapping.queries import Code, codes
from portal.category_mapping.exceptions import MappingError
from portal.category_mapping.models import FillInRequest, TaxonomyCategory
from portal.category_mapping.readiness import MerchantRules, Rule, key
from portal.db import utcnow
from portal.jobs.services import JobContext, job
from portal.tenancy import Principal, scoped_select

AUTO_DUE = timedelta(days=14)
_URL = re.compile(r"^https?://\S+$")


def refresh(db: Session, merchant_ids: list[int] | None = None, *, paths: list[str] | None = None,
            kind: str = "auto") -> readiness.Summary:
    """Recompute readiness, then bring the automatic requests of the merchants concerned in line. No commit."""
    summary = readiness.recompute(db, merchant_ids, paths=paths)
    for merchant_id in summary.merchants:
        sync(db, merchant_id, kind=kind)
    return summary


def sync(db: Session, merchant_id: int, *, kind: str = "auto", now: datetime | None = None) -> dict[str, int]:
    """Open, update and close the merchant's automatic requests to match their incomplete products. No commit."""
    now = now or utcnow()
    wanted: dict[int, set[str]] = {}
    for category_id, missing, _count in db.execute(
            select(Product.marketplace_category_id, cast(Product.missing, Text), func.count())
            .where(Product.merchant_id == merchant_id, Product.readiness == "incomplete",
                   Product.marketplace_category_id.is_not(None))
            .group_by(Product.marketplace_category_id, cast(Product.missing, Text))):
        wanted.setdefault(category_id, set()).update(json.loads(missing or "[]"))
    open_auto = {row.category_id: row for row in db.scalars(select(FillInRequest).where(
        FillInRequest.merchant_id == merchant_id, FillInRequest.status == "open",
        FillInRequest.kind.in_(("auto", "rules"))))}
    counts = {"opened": 0, "updated": 0, "closed": 0}
    for category_id, attributes in wanted.items():
        row = open_auto.get(category_id)
        if row is None:
            db.add(FillInRequest(merchant_id=merchant_id, category_id=category_id, kind=kind, attributes=sorted(attributes),
                                 status="open", due_at=now + AUTO_DUE, created_at=now))
            counts["opened"] += 1
        elif set(row.attributes) != attributes:
            if attributes - set(row.attributes) and kind == "rules":
                row.kind = "rules"  # new attributes because the rules changed: the merchant is told so
            row.attributes = sorted(attributes)
            counts["updated"] += 1
    for category_id, row in open_auto.items():
        if category_id not in wanted:
            row.status, row.closed_at = "closed", now
            counts["closed"] += 1
    counts["closed"] += _close_answered_manual(db, merchant_id, now)
    db.flush()
    return counts


def _close_answered_manual(db: Session, merchant_id: int, now: datetime) -> int:
    closed = 0
    known = codes(db)
    rules = MerchantRules.load(db, merchant_id)
    for row in db.scalars(select(FillInRequest).where(FillInRequest.merchant_id == merchant_id, FillInRequest.status == "open",
                                                      FillInRequest.kind == "manual")):
        if not row.attributes:
            continue  # a request in words only: the merchant or the manager closes it
        if not any(_lacking(product, row.attributes, known, rules) for product in db.scalars(_scope(row))):
            row.status, row.closed_at = "closed", now
            closed += 1
    return closed


def _scope(row: FillInRequest) -> Select[tuple[Product]]:
    stmt = select(Product).where(Product.merchant_id == row.merchant_id, Product.status == "active")
    if row.product_id is not None:
        return stmt.where(Product.id == row.product_id)
    if row.category_id is not None:
        stmt = stmt.where(Product.marketplace_category_id == row.category_id)
    return stmt.order_by(Product.id)


def _rule(code: str, known: dict[str, Code]) -> Rule:
    entry = known.get(code)
    names = frozenset(filter(None, (key(code), key(entry.name_en) if entry else "", key(entry.name_ru) if entry else "")))
    allowed = frozenset(entry.allowed) if entry and entry.type == "enum" else None
    return Rule(code, names, allowed)


def _lacking(product: Product, attributes: list[str], known: dict[str, Code], rules: MerchantRules) -> list[str]:
    """The request's attributes this product does not hold (or holds an unaccepted value for)."""
    columns = {"category": product.category, "attributes": product.attributes, "status": product.status,
               "last_error": product.last_error, "brand": product.brand, "gtin": product.gtin,
               "description": product.description, "images": product.images}
    holder: dict[str, list[str]] = {}
    for name, value in (product.attributes or {}).items():
        if value is not None and str(value).strip():
            holder.setdefault(rules.names.get(key(name), key(name)), []).append(str(value))
    return [code for code in attributes if not readiness.holds(columns, holder, _rule(code, known), rules)]


@dataclass
class Line:
    product: Product
    lacking: list[str]


def lines(db: Session, row: FillInRequest, limit: int = 50, offset: int = 0) -> tuple[list[Line], bool]:
    """The request's products that still lack something, each with what it lacks; and whether more follow."""
    known = codes(db)
    rules = MerchantRules.load(db, row.merchant_id)
    found: list[Line] = []
    skipped = 0
    for product in db.scalars(_scope(row).execution_options(yield_per=500)):
        lacking = _lacking(product, row.attributes, known, rules)
        if not lacking:
            continue
        if skipped < offset:
            skipped += 1
            continue
        if len(found) == limit:
            return found, True
        found.append(Line(product, lacking))
    return found, False


def inbox(principal: Principal, status: str = "") -> Select[tuple[FillInRequest]]:
    stmt = scoped_select(FillInRequest, principal)
    if status in ("open", "closed"):
        stmt = stmt.where(FillInRequest.status == status)
    return stmt.order_by(FillInRequest.status.desc(), FillInRequest.due_at.is_(None), FillInRequest.due_at, FillInRequest.id)


def open_manual(db: Session, principal: Principal, *, merchant_id: int, text: str, attributes: list[str],
                category_id: int | None = None, sku: str | None = None, due_at: datetime | None = None) -> FillInRequest:
    """A category manager's request to a merchant: what to fill in, for which products, by when."""
    known = codes(db)
    unknown = [code for code in attributes if code not in known]
    if unknown:
        raise MappingError(gettext("Unknown attribute(s): %(codes)s.", codes=", ".join(unknown)), code="unknown_attribute")
    if not text.strip() and not attributes:
        raise MappingError(gettext("Say what the merchant should fill in: a text, attributes or both."), code="empty_request")
    product_id = None
    if sku:
        product_id = db.scalar(select(Product.id).where(Product.merchant_id == merchant_id, Product.sku == sku))
        if product_id is None:
            raise MappingError(gettext("The merchant has no product with SKU “%(sku)s”.", sku=sku), code="unknown_sku")
    if category_id is not None and db.get(TaxonomyCategory, category_id) is None:
        raise MappingError(gettext("There is no marketplace category %(id)s.", id=category_id), code="unknown_category")
    if due_at is not None and due_at <= utcnow():
        raise MappingError(gettext("The due date must be in the future."), code="bad_due_date")
    row = FillInRequest(merchant_id=merchant_id, product_id=product_id, category_id=category_id, kind="manual",
                        attributes=list(dict.fromkeys(attributes)), text=text.strip(), status="open", due_at=due_at,
                        created_by_id=principal.user_id, created_at=utcnow())
    db.add(row)
    db.flush()
    record(db, "fill_in.open", actor=principal, merchant_id=merchant_id, target=row, details={"attributes": attributes})
    db.commit()
    return row


def close(db: Session, principal: Principal, row: FillInRequest) -> FillInRequest:
    if row.status == "open":
        row.status, row.closed_at = "closed", utcnow()
        record(db, "fill_in.close", actor=principal, merchant_id=row.merchant_id, target=row)
    db.commit()
    return row


def check_value(entry: Code | None, code: str, value: str) -> str | None:
    """A value as it will be stored, or None; raises with a message naming the attribute when it is wrong."""
    value = value.strip()
    if not value:
        return None
    name = entry.name_en if entry else code
    if entry is None:
        return value
    if entry.type == "enum":
        if key(value) not in entry.allowed:
            raise MappingError(gettext("%(name)s: “%(value)s” is not one of %(allowed)s.", name=name, value=value,
                                       allowed=", ".join(entry.allowed)), code="value_not_allowed")
        return key(value)
    if entry.type == "number":
        try:
            number = Decimal(value.replace(",", ".").replace(" ", "").replace("\u00a0", ""))
        except InvalidOperation:
            number = None
        if number is None or not number.is_finite():
            raise MappingError(gettext("%(name)s: “%(value)s” is not a number.", name=name, value=value), code="not_a_number")
        return format(number.normalize(), "f")
    if entry.type == "bool":
        lowered = key(value)
        if lowered in ("yes", "true", "1", "да"):
            return "yes"
        if lowered in ("no", "false", "0", "нет"):
            return "no"
        raise MappingError(gettext("%(name)s: answer yes or no, not “%(value)s”.", name=name, value=value), code="not_a_bool")
    if entry.type == "url" and not _URL.match(value):
        raise MappingError(gettext("%(name)s: “%(value)s” is not a web address (http:// or https://).", name=name,
                                   value=value), code="not_a_url")
    return value


def fill(db: Session, principal: Principal, row: FillInRequest, values: dict[tuple[int, str], str]) -> int:
    """Save values typed on the request page: all of them, or none when any is wrong (each error named)."""
    known = codes(db)
    products = {p.id: p for p in db.scalars(select(Product).where(
        Product.merchant_id == row.merchant_id, Product.id.in_({product_id for product_id, _ in values})))}
    errors: list[str] = []
    changes: dict[int, dict[str, str]] = {}
    for (product_id, code), value in values.items():
        product = products.get(product_id)
        if product is None or code not in row.attributes:
            errors.append(gettext("The form holds a field this request does not have."))
            continue
        try:
            checked = check_value(known.get(code), code, value)
        except MappingError as exc:
            errors.append(f"{product.sku}: {exc.message}")
            continue
        if checked is not None:
            changes.setdefault(product_id, {})[code] = checked
    if errors:
        raise MappingError(gettext("Nothing was saved: %(errors)s", errors=" ".join(errors)), code="fill_invalid",
                           details=errors)
    for product_id, product_values in changes.items():
        catalog_services.set_attributes(db, products[product_id], product_values, principal=principal, source="web")
    db.flush()
    refresh(db, [row.merchant_id], paths=sorted({products[i].category for i in changes}))
    record(db, "fill_in.fill", actor=principal, merchant_id=row.merchant_id, target=row,
           details={"products": len(changes)})
    db.commit()
    return len(changes)


def labels(known: dict[str, Code], locale: str) -> dict[str, str]:
    return {code: entry.label(locale) for code, entry in known.items()}


def overdue(row: FillInRequest, now: datetime | None = None) -> bool:
    return row.status == "open" and row.due_at is not None and row.due_at < (now or utcnow())



# --- the round-trip workbook ----------------------------------------------------------------------------------------

MARK_SHEET = "_portal"
MAX_FILL_ROWS = 100_000


def fill_workbook(db: Session, row: FillInRequest, merchant_slug: str, locale: str, path: str) -> int:
    """Write the request's products and only the missing columns to ``path``; returns the product count.

    A hidden sheet names the merchant and the request, so a file sent back to the wrong place is refused.
    Enum columns get a drop-down of the allowed values.
    """
    import xlsxwriter

    known = codes(db)
    columns = column_names(known, row.attributes, locale)
    found, _ = lines(db, row, limit=MAX_FILL_ROWS)
    book = xlsxwriter.Workbook(path, {"constant_memory": False, "strings_to_numbers": False, "strings_to_formulas": False,
                                      "strings_to_urls": False})
    sheet = book.add_worksheet(gettext("Products")[:31])
    bold = book.add_format({"bold": True, "bg_color": "#FFF3CD"})
    sheet.write_row(0, 0, ["sku", "title", *columns.values()], bold)
    for number, line in enumerate(found, 1):
        sheet.write_string(number, 0, line.product.sku)
        sheet.write_string(number, 1, line.product.title)
        for position, code in enumerate(columns, 2):
            current = (line.product.attributes or {}).get(code, "")
            if code not in line.lacking and current:
                sheet.write_string(number, position, str(current))
    for position, code in enumerate(columns, 2):
        entry = known.get(code)
        if entry and entry.type == "enum" and found:
            sheet.data_validation(1, position, len(found), position, {"validate": "list", "source": entry.allowed[:200]})
    sheet.set_column(0, 0, 18)
    sheet.set_column(1, 1, 48)
    sheet.set_column(2, 1 + len(columns), 18)
    sheet.freeze_panes(1, 2)
    mark = book.add_worksheet(MARK_SHEET)
    mark.write_row(0, 0, ["merchant", merchant_slug])
    mark.write_row(1, 0, ["request", str(row.id)])
    mark.hide()
    book.close()
    return len(found)


def column_names(known: dict[str, Code], attributes: list[str], locale: str) -> dict[str, str]:
    """Code -> column title: the attribute's name in the merchant's language, which readiness recognises."""
    return {code: known[code].label(locale) if code in known else code for code in attributes}


def check_fill_file(db: Session, row: FillInRequest, merchant_slug: str, path: str, filename: str,
                    locale: str) -> dict[str, str]:
    """Refuse a returned file made for someone else or with its columns changed; the catalog mapping if fine."""
    from portal.catalog.readers import UnreadableFile, open_catalog

    try:
        catalog = open_catalog(path, filename)
    except UnreadableFile as exc:
        raise MappingError(exc.message, code=exc.code) from None
    if catalog.format == "xlsx":
        _check_mark(path, merchant_slug, row.id)
    known = codes(db)
    expected = {"sku": "sku", "title": "title"}
    for locale_name in ("en", "ru", locale):
        for code, name in column_names(known, row.attributes, locale_name).items():
            expected.setdefault(name, "")
    given = [name for name in catalog.columns]
    unknown = [name for name in given if name not in expected]
    if unknown or "sku" not in given:
        raise MappingError(gettext("The file's columns were changed (%(columns)s): download the file again and fill in "
                                   "only its cells.", columns=", ".join(unknown) or "sku"), code="columns_changed")
    ours = set(db.scalars(select(Product.sku).where(Product.merchant_id == row.merchant_id)))
    strangers: list[str] = []
    for chunk in catalog.chunks(50_000):
        for number, sku in zip(chunk["__row__"].tolist(), chunk["sku"].tolist()):
            if sku.strip() and sku.strip() not in ours:
                strangers.append(gettext("row %(row)s (%(sku)s)", row=number, sku=sku))
    if strangers:
        raise MappingError(gettext("The file has products that are not yours: %(rows)s. Nothing was changed.",
                                   rows=", ".join(strangers[:10]) + (" …" if len(strangers) > 10 else "")),
                           code="foreign_rows")
    return {name: expected[name] for name in given}


def _check_mark(path: str, merchant_slug: str, request_id: int) -> None:
    import fastexcel

    try:
        reader = fastexcel.read_excel(path)
        if MARK_SHEET not in reader.sheet_names:
            return  # rows copied into a workbook of the merchant's own: the SKU check still applies
        cells = reader.load_sheet(MARK_SHEET, header_row=None, dtypes="string").to_arrow().to_pylist()
    except fastexcel.FastExcelError:
        return
    marks = {row.get("__UNNAMED__0"): row.get("__UNNAMED__1") for row in cells}
    if marks.get("merchant") != merchant_slug or marks.get("request") != str(request_id):
        raise MappingError(gettext("This file was made for another merchant or another request: download the file of "
                                   "this request and fill that one in."), code="foreign_file")


def receive_fill_file(db: Session, principal: Principal, row: FillInRequest, merchant_slug: str, stream: Any,
                      filename: str, locale: str) -> Any:
    """Check a returned workbook, then send it through the catalog pipeline (its upload page shows progress)."""
    import shutil
    import tempfile
    from pathlib import Path

    suffix = Path(filename).suffix.lower() or ".xlsx"
    with tempfile.TemporaryDirectory(prefix="portal-fill-") as folder:
        path = str(Path(folder) / f"returned{suffix}")
        with open(path, "wb") as handle:
            shutil.copyfileobj(stream, handle)
        mapping = check_fill_file(db, row, merchant_slug, path, filename, locale)
        with open(path, "rb") as handle:
            upload = catalog_services.receive_upload(db, principal, stream=handle, filename=filename, source="web",
                                                     locale=locale)
    if upload.status == "failed":
        raise MappingError(upload.error or gettext("The file could not be read."), code=upload.error_code or "unreadable_file")
    catalog_services.update_mapping(db, upload, mapping, principal=principal)
    catalog_services.start_processing(db, upload, dry_run=False, principal=principal)
    record(db, "fill_in.upload", actor=principal, merchant_id=row.merchant_id, target=row, details={"upload_id": upload.id})
    db.commit()
    return upload


@job("mapping.refresh", label=_l("Readiness after a change of requirements"))
def refresh_job(ctx: JobContext) -> dict[str, Any]:
    summary = refresh(ctx.session, kind=ctx.payload.get("kind", "auto"))
    ctx.session.commit()
    return {"products": summary.products, "changed": summary.changed, "merchants": len(summary.merchants)}
