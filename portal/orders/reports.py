"""The order list as CSV or XLSX, built by a background job; closed orders' buyers are masked."""
from __future__ import annotations

import csv
import tempfile
from collections.abc import Iterator
from datetime import datetime
from decimal import Decimal
from typing import Any

import xlsxwriter
from flask_babel import force_locale, gettext
from flask_babel import lazy_gettext as _l
from sqlalchemy import select
from sqlalchemy.orm import Session

from portal.accounts.models import Merchant
from portal.jobs.services import JobContext, job
from portal.orders.machine import CLOSED_STATES, STATE_LABELS
from portal.orders.models import Order, OrderLine
from portal.orders.queries import OrderFilters, orders as orders_query
from portal.reports import safe_cell
from portal.storage_access import get_storage
from portal.tenancy import Principal, scoped_select

BATCH = 2000
CONTENT_TYPES = {"csv": "text/csv",
                 "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"}


# Who ended a refused or cancelled order, worded for the reader of the export.
CLOSED_BY_LABELS = {"merchant": _l("merchant"), "marketplace": _l("marketplace"),
                    "system": _l("the portal (automatic)")}


def mask_name(name: str) -> str:
    return (name[:1] + "***") if name else ""


def mask_phone(phone: str) -> str:
    digits = [c for c in phone if c.isdigit()]
    return ("***" + "".join(digits[-2:])) if digits else ""


def masked_address(order: Order) -> dict[str, str]:
    """What an export keeps of a closed order's buyer: the city and country for analysis, nothing that finds them."""
    if order.status not in CLOSED_STATES:
        return {"name": order.buyer_name, "phone": order.buyer_phone, "postal_code": order.postal_code,
                "line1": order.line1}
    return {"name": mask_name(order.buyer_name), "phone": mask_phone(order.buyer_phone),
            "postal_code": order.postal_code[:3] + "***" if order.postal_code else "", "line1": "***"}


def _columns(with_merchant: bool) -> list[str]:
    columns = [gettext("Order number")]
    if with_merchant:
        columns.append(gettext("Merchant"))
    return columns + [
        gettext("Status"), gettext("Created"), gettext("Acceptance deadline"), gettext("Ship by"),
        gettext("Accepted"), gettext("Shipped"), gettext("Delivered"), gettext("Closed on"), gettext("Closed by"),
        gettext("Reason"), gettext("Lines"), gettext("Units"), gettext("Total"), gettext("Currency"),
        gettext("Carrier"), gettext("Tracking number"), gettext("Buyer"), gettext("Phone"), gettext("Country"),
        gettext("City"), gettext("Postal code"), gettext("Address"),
    ]


def _when(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M") if value else ""


def rows(db: Session, filters: OrderFilters, principal: Principal) -> Iterator[list[Any]]:
    """The rows of the filtered list, a batch of orders and their lines at a time."""
    slugs = dict(db.execute(select(Merchant.id, Merchant.slug)).tuples().all()) if principal.is_staff else {}
    ids = list(db.scalars(orders_query(filters, principal, db=db).with_only_columns(Order.id)))
    for start in range(0, len(ids), BATCH):
        chunk = ids[start:start + BATCH]
        by_id = {o.id: o for o in db.scalars(scoped_select(Order, principal).where(Order.id.in_(chunk)))}
        lines: dict[int, list[str]] = {}
        for line in db.scalars(select(OrderLine).where(OrderLine.order_id.in_(chunk)).order_by(OrderLine.id)):
            lines.setdefault(line.order_id, []).append(f"{line.sku} × {line.quantity}")
        for order_id in chunk:
            order = by_id[order_id]
            address = masked_address(order)
            row: list[Any] = [order.order_number]
            if principal.is_staff:
                row.append(slugs.get(order.merchant_id, ""))
            row += [str(STATE_LABELS[order.status]), _when(order.created_at), _when(order.acceptance_deadline),
                    _when(order.ship_by), _when(order.accepted_at), _when(order.shipped_at), _when(order.delivered_at),
                    _when(order.closed_at), str(CLOSED_BY_LABELS.get(order.closed_by or "", order.closed_by or "")),
                    order.reason or "", "; ".join(lines.get(order.id, [])),
                    order.units, order.total, order.currency, order.carrier or "", order.tracking_number or "",
                    address["name"], address["phone"], order.country, order.city, address["postal_code"],
                    address["line1"]]
            yield row
        db.expire_all()


@job("orders.export", label=_l("Order export"))
def export_orders(ctx: JobContext) -> dict[str, Any]:
    principal = Principal(role=ctx.payload.get("role", ""), merchant_id=ctx.merchant_id, user_id=ctx.user_id)
    filters = OrderFilters.from_args(ctx.payload.get("filters", {}))
    fmt = "xlsx" if ctx.payload.get("format") == "xlsx" else "csv"
    with force_locale(ctx.payload.get("locale", "en")):
        header = _columns(principal.is_staff)
        with tempfile.TemporaryDirectory(prefix="portal-orders-") as workdir:
            path = f"{workdir}/orders.{fmt}"
            count = write(path, fmt, header, rows(ctx.session, filters, principal), ctx)
            key = f"exports/orders/{ctx.job_id}.{fmt}"
            with open(path, "rb") as handle:
                get_storage().put(key, handle, content_type=CONTENT_TYPES[fmt])
    return {"storage_key": key, "filename": f"orders.{fmt}", "content_type": CONTENT_TYPES[fmt], "rows": count}


def write(path: str, fmt: str, header: list[str], data: Iterator[list[Any]], ctx: JobContext | None = None) -> int:
    """Stream rows to a file: CSV (UTF-8 with BOM, as spreadsheets expect) or XLSX in constant memory."""
    count = 0
    if fmt == "xlsx":
        book = xlsxwriter.Workbook(path, {"constant_memory": True, "strings_to_numbers": False,
                                          "strings_to_formulas": False, "strings_to_urls": False})
        sheet = book.add_worksheet("Orders")
        bold = book.add_format({"bold": True})
        money = book.add_format({"num_format": "0.00"})
        for col, name in enumerate(header):
            sheet.write_string(0, col, name, bold)
        for row in data:
            count += 1
            for col, value in enumerate(row):
                if isinstance(value, Decimal):
                    # A spreadsheet number is a float; the cell shows the cents the order has.
                    sheet.write_number(count, col, float(value), money)
                elif isinstance(value, (int, float)):
                    sheet.write_number(count, col, value)
                else:
                    sheet.write_string(count, col, str(value))
            if ctx and count % BATCH == 0:
                ctx.progress(count)
        book.close()
        return count
    with open(path, "w", encoding="utf-8-sig", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        for row in data:
            count += 1
            writer.writerow([safe_cell(value) for value in row])
            if ctx and count % BATCH == 0:
                ctx.progress(count)
    return count
