"""KPI reports of one merchant over a period — its orders, its KPI day by day, its catalog — as CSV or XLSX,
built with pandas by the background job ``kpi.report``."""
from __future__ import annotations

import tempfile
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from typing import Any

import pandas as pd
from flask_babel import force_locale, gettext
from flask_babel import lazy_gettext as _l
from sqlalchemy import and_, func, or_, select
from sqlalchemy.orm import Session

from portal.accounts.models import Merchant
from portal.catalog.models import Product
from portal.category_mapping.models import FillInRequest
from portal.db import utcnow
from portal.errors import PortalError
from portal.jobs.services import JobContext, job
from portal.kpi.metrics import METRICS
from portal.kpi.queries import DAY_CHOICES, EARLIEST_DAY, MAX_PERIOD_DAYS, STANDARD_TREND_DAYS, Period, health, trend
from portal.orders.machine import STATE_LABELS
from portal.orders.models import Order
from portal.reports import safe_cell
from portal.storage_access import get_storage
from portal.templating import READINESS_LABELS
from portal.tenancy import Principal, scope

KINDS = ("orders", "kpi", "catalog")


def kinds_for(role: str) -> tuple[str, ...]:
    """The reports a role may ask for: category managers, who see no orders, get the KPI and catalog ones."""
    return tuple(k for k in KINDS if k != "orders") if role == "category_manager" else KINDS
FORMATS = ("csv", "xlsx")
# Without a period: the orders of the last 30 days; the KPI by day over the last 90, as the KPI page's trends.
DEFAULT_DAYS = 30
CONTENT_TYPES = {"csv": "text/csv",
                 "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"}
KIND_LABELS = {"orders": _l("Orders"), "kpi": _l("KPI by day"), "catalog": _l("Catalog")}
PRODUCT_STATUS_LABELS = {"active": _l("active"), "inactive": _l("inactive")}
# How XLSX shows a column's numbers; CSV keeps them as they are (rates as fractions).
XLSX_FORMATS = {"rate": "0.0%", "hours": "0.0", "money": "#,##0.00", "count": "0", "datetime": "yyyy-mm-dd hh:mm",
                "date": "yyyy-mm-dd"}


class ReportError(PortalError):
    """A report or KPI request that cannot be answered as asked: ``details["field"]`` names what to change."""

    status = 422
    code = "invalid_period"


# -- the period ------------------------------------------------------------------------------------


def check_period(days: int | None, first: date | None, last: date | None, *,
                 names: tuple[str, str, str] = ("days", "from", "to")) -> dict[str, Any]:
    """A period as asked — the last ``days`` days, or whole days ``first`` to ``last`` inclusive — checked,
    as plain arguments (``{}``: none asked). ``names`` are what the caller calls the three inputs."""
    days_name, first_name, last_name = names
    if days is not None and (first is not None or last is not None):
        raise ReportError(gettext("Give either %(days)s or %(first)s and %(last)s, not both.",
                                  days=days_name, first=first_name, last=last_name), details={"field": days_name})
    if days is not None:
        if days not in DAY_CHOICES:
            raise ReportError(gettext("%(field)s must be 7, 30 or 90.", field=days_name), details={"field": days_name})
        return {"days": days}
    if first is None and last is None:
        return {}
    if first is None or last is None:
        missing = first_name if first is None else last_name
        raise ReportError(gettext("%(field)s is missing: give both %(first)s and %(last)s.", field=missing,
                                  first=first_name, last=last_name), details={"field": missing})
    today = utcnow().date()
    for name, day in ((first_name, first), (last_name, last)):
        if not EARLIEST_DAY <= day <= today:
            raise ReportError(gettext("%(field)s (%(day)s) must lie between %(earliest)s and today (%(today)s).",
                                      field=name, day=day.isoformat(), earliest=EARLIEST_DAY.isoformat(),
                                      today=today.isoformat()), details={"field": name})
    if first > last:
        raise ReportError(gettext("%(first)s (%(start)s) is after %(last)s (%(end)s).", first=first_name,
                                  last=last_name, start=first.isoformat(), end=last.isoformat()),
                          details={"field": first_name})
    if (last - first).days + 1 > MAX_PERIOD_DAYS:
        raise ReportError(gettext("The period from %(start)s to %(end)s is %(count)s days long; at most %(max)s.",
                                  start=first.isoformat(), end=last.isoformat(), count=(last - first).days + 1,
                                  max=MAX_PERIOD_DAYS), details={"field": last_name})
    return {"date_from": first.isoformat(), "date_to": last.isoformat()}


def period_of(args: dict[str, Any], now: datetime | None = None) -> Period | None:
    """The ``Period`` of arguments ``check_period`` returned; None for none (each metric's own window)."""
    if args.get("days"):
        return Period.last(int(args["days"]), now)
    if args.get("date_from") and args.get("date_to"):
        return Period.days(date.fromisoformat(args["date_from"]), date.fromisoformat(args["date_to"]))
    return None


def report_merchant(db: Session, principal: Principal, requested: int | None) -> int:
    """The merchant a report is about: a merchant user's own whatever the form says; staff must name one."""
    if principal.is_merchant:
        return principal.merchant_id  # type: ignore[return-value]
    if requested is None:
        raise ReportError(gettext("Merchant: choose the merchant the report is about."), details={"field": "merchant"})
    if not 0 < requested < 2**31 or db.get(Merchant, requested) is None:
        raise ReportError(gettext("Merchant: there is no merchant %(id)s.", id=requested),
                          details={"field": "merchant"})
    return requested


# -- the reports -----------------------------------------------------------------------------------


@dataclass
class Report:
    """A report's rows and how XLSX should show its columns (header -> a key of ``XLSX_FORMATS``)."""

    frame: pd.DataFrame
    sheet: str
    formats: dict[str, str] = field(default_factory=dict)


def _days_of(period: Period | None) -> tuple[date, date]:
    """The first and last day a report's rows cover."""
    if period is None:
        today = utcnow().date()
        return today - timedelta(days=STANDARD_TREND_DAYS - 1), today
    return period.first_day, period.last_day


def _naive_utc(value: datetime | None) -> datetime | None:
    """Spreadsheets have no time zones: times go out in UTC without one."""
    return value.astimezone(timezone.utc).replace(tzinfo=None) if value is not None else None


def _hours(later: datetime | None, earlier: datetime | None) -> float | None:
    if later is None or earlier is None:
        return None
    return round((later - earlier).total_seconds() / 3600, 2)


def _yes_no(value: bool | None) -> str:
    if value is None:
        return ""
    return gettext("yes") if value else gettext("no")


def orders_report(db: Session, principal: Principal, merchant_id: int, period: Period | None) -> Report:
    """One row per order received, accepted or handed over in the period (none: the last 30 days): its times,
    whether it was late at handover and whether its tracking number is in its carrier's format. No buyer's data."""
    period = period or Period.last(DEFAULT_DAYS)

    def within(column: Any) -> Any:
        return and_(column >= period.start, column < period.end)

    stmt = (scope(select(Order), Order, principal)
            .where(Order.merchant_id == merchant_id,
                   or_(within(Order.created_at), within(Order.accepted_at), within(Order.shipped_at)))
            .order_by(Order.created_at, Order.id))
    columns = {"number": gettext("Order number"), "status": gettext("Status"), "created": gettext("Created"),
               "accepted": gettext("Accepted"), "ship_by": gettext("Ship by"), "shipped": gettext("Handed over"),
               "delivered": gettext("Delivered"), "to_accept": gettext("Hours to accept"),
               "to_hand_over": gettext("Hours to hand over"), "late": gettext("Late at handover"),
               "carrier": gettext("Carrier"), "tracking": gettext("Tracking number"),
               "tracking_valid": gettext("Tracking number valid"), "units": gettext("Units"),
               "total": gettext("Total")}
    rows = []
    for order in db.scalars(stmt):
        shipped = order.shipped_at is not None
        rows.append({
            "number": order.order_number, "status": str(STATE_LABELS.get(order.status, order.status)),
            "created": _naive_utc(order.created_at), "accepted": _naive_utc(order.accepted_at),
            "ship_by": _naive_utc(order.ship_by), "shipped": _naive_utc(order.shipped_at),
            "delivered": _naive_utc(order.delivered_at), "to_accept": _hours(order.accepted_at, order.created_at),
            "to_hand_over": _hours(order.shipped_at, order.accepted_at),
            "late": _yes_no(order.shipped_at > order.ship_by if shipped else None),
            "carrier": order.carrier or "", "tracking": order.tracking_number or "",
            "tracking_valid": _yes_no(bool(order.tracking_valid) if shipped else None),
            "units": order.units, "total": order.total,
        })
    frame = pd.DataFrame(rows, columns=list(columns)).rename(columns=columns)
    formats = {columns[k]: "datetime" for k in ("created", "accepted", "ship_by", "shipped", "delivered")}
    formats |= {columns["to_accept"]: "hours", columns["to_hand_over"]: "hours", columns["units"]: "count",
                columns["total"]: "money"}
    return Report(frame, gettext("Orders"), formats)


def kpi_report(db: Session, principal: Principal, merchant_id: int, period: Period | None) -> Report:
    """One row per day the period touches with each metric's value that day (from the daily rollups), then the
    whole period's figures, computed live. No period: as the KPI page's standard view shows them — the last
    90 days by day, and each metric over its own window."""
    first, last = _days_of(period)
    daily = trend(db, principal, merchant_id, first, last)
    totals = health(db, principal, merchant_id, period=period).figures
    day_column = gettext("Day")
    headers = {m.key: str(m.label) for m in METRICS}
    rows: list[dict[str, Any]] = []
    for i, day in enumerate(daily["days"]):
        rows.append({day_column: day, **{headers[k]: daily["series"][k][i] for k in headers}})
    # Without a period the last row is each metric over its own window (cancellations 7 days, …), not the 90 days.
    last_row = gettext("Whole period") if period is not None else gettext("Each metric's own window")
    rows.append({day_column: last_row, **{headers[k]: totals[k].value for k in headers}})
    frame = pd.DataFrame(rows, columns=[day_column, *headers.values()], dtype=object)
    formats = {day_column: "date"} | {headers[m.key]: m.unit for m in METRICS}
    return Report(frame, gettext("KPI"), formats)


def catalog_report(db: Session, principal: Principal, merchant_id: int, period: Period | None = None) -> Report:
    """One row per product, as the catalog is now: readiness, completeness, what it lacks, open requests."""
    requests = (scope(select(FillInRequest.product_id, func.count(FillInRequest.id).label("open")),
                      FillInRequest, principal)
                .where(FillInRequest.merchant_id == merchant_id, FillInRequest.status == "open",
                       FillInRequest.product_id.is_not(None))
                .group_by(FillInRequest.product_id).subquery())
    stmt = (scope(select(Product.sku, Product.title, Product.status, Product.readiness, Product.required_count,
                         Product.filled_required, Product.missing, func.coalesce(requests.c.open, 0)),
                  Product, principal)
            .outerjoin(requests, requests.c.product_id == Product.id)
            .where(Product.merchant_id == merchant_id).order_by(Product.sku))
    columns = {"sku": gettext("SKU"), "title": gettext("Title"), "status": gettext("Status"),
               "readiness": gettext("Readiness"), "completeness": gettext("Completeness"),
               "missing": gettext("Missing required attributes"), "requests": gettext("Open fill-in requests")}
    rows = [{"sku": sku, "title": title, "status": str(PRODUCT_STATUS_LABELS.get(status, status)),
             "readiness": str(READINESS_LABELS.get(readiness, readiness)),
             "completeness": filled / required if required else None, "missing": ", ".join(missing or []),
             "requests": int(open_requests)}
            for sku, title, status, readiness, required, filled, missing, open_requests in db.execute(stmt)]
    frame = pd.DataFrame(rows, columns=list(columns)).rename(columns=columns)
    return Report(frame, gettext("Catalog"), {columns["completeness"]: "rate", columns["requests"]: "count"})


BUILDERS = {"orders": orders_report, "kpi": kpi_report, "catalog": catalog_report}


def neutralised(frame: pd.DataFrame) -> pd.DataFrame:
    """Every text cell a spreadsheet would run as a formula kept as text, in both formats."""
    return frame.map(safe_cell)


def write(report: Report, path: str, fmt: str) -> None:
    frame = neutralised(report.frame)
    if fmt == "csv":
        # UTF-8 with a BOM, as spreadsheet programs expect; numbers as numbers, times in UTC.
        frame.to_csv(path, index=False, encoding="utf-8-sig", date_format="%Y-%m-%d %H:%M")
        return
    options = {"strings_to_formulas": False, "strings_to_urls": False, "strings_to_numbers": False}
    with pd.ExcelWriter(path, engine="xlsxwriter", datetime_format=XLSX_FORMATS["datetime"],
                        date_format=XLSX_FORMATS["date"], engine_kwargs={"options": options}) as writer:
        sheet_name = report.sheet[:31]
        frame.to_excel(writer, index=False, sheet_name=sheet_name)
        book, sheet = writer.book, writer.sheets[sheet_name]
        formats = {key: book.add_format({"num_format": spec}) for key, spec in XLSX_FORMATS.items()}
        for col, name in enumerate(frame.columns):
            kind = report.formats.get(name)
            width = min(max(len(str(name)), 10) + 2, 40)
            sheet.set_column(col, col, width, formats.get(kind) if kind else None)
        sheet.freeze_panes(1, 0)


def filename(kind: str, slug: str, period: Period | None, fmt: str) -> str:
    if kind == "catalog":
        return f"kpi-catalog-{slug}-{utcnow().date().isoformat()}.{fmt}"
    first, last = _days_of(period or Period.last(DEFAULT_DAYS)) if kind == "orders" else _days_of(period)
    return f"kpi-{kind}-{slug}-{first.isoformat()}-{last.isoformat()}.{fmt}"


@job("kpi.report", label=_l("KPI report"))
def report_job(ctx: JobContext) -> dict[str, Any]:
    """Build one report for the merchant the payload names (a merchant user's job: always their own)."""
    payload = ctx.payload
    principal = Principal(role=payload.get("role", ""), merchant_id=ctx.merchant_id, user_id=ctx.user_id)
    merchant_id = ctx.merchant_id if principal.is_merchant else int(payload["merchant_id"])
    kind = payload["kind"] if payload.get("kind") in KINDS else "orders"
    fmt = "xlsx" if payload.get("format") == "xlsx" else "csv"
    period = period_of(payload.get("period") or {})
    slug = ctx.session.scalar(select(Merchant.slug).where(Merchant.id == merchant_id)) or str(merchant_id)
    with force_locale(payload.get("locale", "en")):
        report = BUILDERS[kind](ctx.session, principal, merchant_id, period)
        with tempfile.TemporaryDirectory(prefix="portal-kpi-") as workdir:
            path = f"{workdir}/report.{fmt}"
            write(report, path, fmt)
            key = f"exports/kpi/{ctx.job_id}.{fmt}"
            with open(path, "rb") as handle:
                get_storage().put(key, handle, content_type=CONTENT_TYPES[fmt])
    return {"storage_key": key, "filename": filename(kind, slug, period, fmt), "content_type": CONTENT_TYPES[fmt],
            "rows": len(report.frame)}
