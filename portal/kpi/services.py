"""The daily rollups (kept by a job) and the operators' thresholds: the KPI block's only writers."""
from __future__ import annotations

from collections import defaultdict
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any

from flask_babel import gettext
from flask_babel import lazy_gettext as _l
from sqlalchemy import and_, func, select
from sqlalchemy.orm import Session

from portal.audit import record
from portal.db import utcnow
from portal.errors import PortalError
from portal.jobs.services import JobContext, job
from portal.kpi.metrics import BY_KEY, thresholds_are_consistent
from portal.kpi.models import KpiDaily, KpiThreshold
from portal.kpi.queries import (CANCELLED_STATES, MERCHANT_CLOSERS, Period, _catalog_scan, hours_between, percentile)
from portal.orders.models import Order
from portal.catalog.models import Upload
from portal.tenancy import Principal, scope

SYSTEM = Principal(role="system", merchant_id=None)
# Orders change after the day they came in (accepted, cancelled, shipped days later): each run recounts
# this many days back, today included. Longer than the cancellation window and the usual handling time.
ROLLUP_DAYS = 8
MAX_ROLLUP_DAYS = 800


class ThresholdError(PortalError):
    status = 422
    code = "invalid_threshold"


def _day(db: Session, column: Any) -> Any:
    """The UTC calendar day of a timestamp column."""
    if db.get_bind().dialect.name == "postgresql":
        return func.date(func.timezone("UTC", column))
    return func.date(column)


def _as_date(value: Any) -> date:
    return value if isinstance(value, date) else date.fromisoformat(str(value)[:10])


def rollup(db: Session, *, days: int | None = None, now: datetime | None = None) -> dict[str, Any]:
    """Recount every merchant's last ``days`` UTC days (today included) into ``kpi_daily``, and today's
    catalog snapshot. Idempotent: a day's order counts are replaced, earlier snapshots kept.

    ``days`` None: the usual ``ROLLUP_DAYS`` — or, while no day has been counted yet (the first run after the
    upgrade that brought the KPI), the whole order history up to ``MAX_ROLLUP_DAYS``, so the charts have a past."""
    now = now or utcnow()
    today = now.date()
    if days is None:
        days = ROLLUP_DAYS
        if db.scalar(select(KpiDaily.day).limit(1)) is None:
            first = db.scalar(scope(select(func.min(Order.created_at)), Order, SYSTEM))
            if first is not None:
                days = min(MAX_ROLLUP_DAYS, max(ROLLUP_DAYS, (today - first.date()).days + 1))
    if not 1 <= days <= MAX_ROLLUP_DAYS:
        raise ValueError(f"days must be between 1 and {MAX_ROLLUP_DAYS}")
    span = Period.days(today - timedelta(days=days - 1), today)
    counts: dict[tuple[int, date], dict[str, Any]] = defaultdict(dict)
    postgres = db.get_bind().dialect.name == "postgresql"

    def collect(day_column: Any, columns: dict[str, Any], *conditions: Any, model: Any = Order) -> None:
        day = _day(db, day_column).label("day")
        stmt = select(model.merchant_id, day, *(c.label(k) for k, c in columns.items())).where(
            day_column >= span.start, day_column < span.end, *conditions)
        for row in db.execute(scope(stmt, model, SYSTEM).group_by(model.merchant_id, day)):
            values = row._asdict()
            counts[(values.pop("merchant_id"), _as_date(values.pop("day")))].update(values)

    count = func.count(Order.id)
    kept = Order.status.notin_(CANCELLED_STATES)
    collect(Order.created_at, {
        "received": count,
        "merchant_cancelled": count.filter(Order.status.in_(CANCELLED_STATES), Order.closed_by.in_(MERCHANT_CLOSERS)),
        "orders": count.filter(kept), "units": func.sum(Order.units).filter(kept),
        "revenue": func.sum(Order.total).filter(kept)})
    collect(Order.shipped_at, {"shipped": count, "shipped_late": count.filter(Order.shipped_at > Order.ship_by),
                               "shipped_valid_tracking": count.filter(Order.tracking_valid.is_(True))})
    collect(Order.accepted_at, {"accepted": count})
    collect(Upload.finished_at, {"upload_rows": func.sum(Upload.rows), "upload_rejected": func.sum(Upload.rejected)},
            Upload.status == "applied", Upload.dry_run.is_(False), model=Upload)

    for name, later, earlier in (("acceptance", Order.accepted_at, Order.created_at),
                                 ("handling", Order.shipped_at, Order.accepted_at)):
        hours = hours_between(db, later, earlier)
        present = and_(later.is_not(None), earlier.is_not(None))
        if postgres:
            collect(later, {f"{name}_median": func.percentile_cont(0.5).within_group(hours),
                            f"{name}_p90": func.percentile_cont(0.9).within_group(hours)}, present)
            continue
        values: dict[tuple[int, date], list[float]] = defaultdict(list)
        stmt = select(Order.merchant_id, _day(db, later), hours).where(later >= span.start, later < span.end, present)
        for merchant_id, day, value in db.execute(scope(stmt, Order, SYSTEM)):
            values[(merchant_id, _as_date(day))].append(float(value))
        for key, found in values.items():
            counts[key][f"{name}_median"] = percentile(found, 0.5)
            counts[key][f"{name}_p90"] = percentile(found, 0.9)

    snapshot = _catalog_scan(db, SYSTEM, None, Period.last(1, now), now)
    for merchant_id in snapshot:
        counts.setdefault((merchant_id, today), {})

    existing = {(r.merchant_id, r.day): r for r in db.scalars(
        select(KpiDaily).where(KpiDaily.day >= span.first_day, KpiDaily.day <= today))}
    order_columns = ("received", "merchant_cancelled", "shipped", "shipped_late", "shipped_valid_tracking",
                     "accepted", "orders", "units", "upload_rows", "upload_rejected")
    times = ("acceptance_median", "acceptance_p90", "handling_median", "handling_p90")
    for key, values in counts.items():
        row = existing.pop(key, None) or KpiDaily(merchant_id=key[0], day=key[1])
        for column in order_columns:
            setattr(row, column, int(values.get(column) or 0))
        for column in times:
            value = values.get(column)
            setattr(row, column, None if value is None else float(value))
        row.revenue = Decimal(values.get("revenue") or 0).quantize(Decimal("0.01"))
        if key[1] == today:
            catalog = snapshot.get(key[0], {})
            row.active_products = int(catalog.get("active_products") or 0)
            row.ready_products = int(catalog.get("ready_products") or 0)
            row.required_total = int(catalog.get("required_total") or 0)
            row.required_filled = int(catalog.get("required_filled") or 0)
            row.open_requests = int(catalog.get("open_requests") or 0)
            row.overdue_requests = int(catalog.get("overdue_requests") or 0)
        row.computed_at = now
        db.add(row)
    # Days whose orders all went away (none now counted there) and that hold no snapshot: nothing to keep.
    for row in existing.values():
        if row.active_products is None:
            db.delete(row)
        else:
            for column in order_columns:
                setattr(row, column, 0)
            for column in times:
                setattr(row, column, None)
            row.revenue = Decimal("0.00")
            row.computed_at = now
    db.commit()
    return {"days": days, "from": span.first_day.isoformat(), "to": today.isoformat(), "rows": len(counts)}


@job("kpi.rollup", label=_l("KPI rollup"))
def rollup_job(ctx: JobContext) -> dict[str, Any]:
    days = ctx.payload.get("days")
    return rollup(ctx.session, days=int(days) if days else None)


def parse_threshold(metric_key: str, text: str, *, what: str) -> float | None:
    """A threshold as an operator types it: rates in percent ("4" or "4,5"), times in hours, counts;
    empty means no line."""
    metric = BY_KEY[metric_key]
    text = (text or "").strip().replace(",", ".").rstrip("%").strip()
    if not text:
        return None
    try:
        value = float(text)
    except ValueError:
        raise ThresholdError(gettext("%(metric)s: the %(what)s must be a number, not “%(text)s”.",
                                     metric=metric.label, what=what, text=text)) from None
    if metric.unit == "rate":
        if not 0 <= value <= 100:
            raise ThresholdError(gettext("%(metric)s: the %(what)s must be between 0 and 100 %%.",
                                         metric=metric.label, what=what))
        return round(value / 100, 6)
    if value < 0 or value > 100_000:
        raise ThresholdError(gettext("%(metric)s: the %(what)s must be between 0 and 100000.",
                                     metric=metric.label, what=what))
    return value


def _operator(actor: Principal) -> None:
    if actor.is_merchant or actor.role != "operator_admin":
        raise ThresholdError(gettext("Only operators set KPI thresholds."))


def set_thresholds(db: Session, actor: Principal, values: dict[str, tuple[float | None, float | None]]) -> int:
    """Store operators' thresholds (all or none); returns how many metrics changed."""
    _operator(actor)
    for key, (warning, threshold) in values.items():
        metric = BY_KEY.get(key)
        if metric is None:
            raise ThresholdError(gettext("Unknown metric: %(key)s.", key=key))
        if warning is not None and threshold is None:
            raise ThresholdError(gettext("%(metric)s: an amber line needs a red line.", metric=metric.label))
        if not thresholds_are_consistent(metric, warning, threshold):
            message = (gettext("%(metric)s: the amber line must not be above the red line.", metric=metric.label)
                       if metric.better == "lower" else
                       gettext("%(metric)s: the amber line must not be below the red line.", metric=metric.label))
            raise ThresholdError(message)
    changed = 0
    stored = {t.metric: t for t in db.scalars(select(KpiThreshold).where(KpiThreshold.metric.in_(list(values))))}
    for key, (warning, threshold) in values.items():
        metric = BY_KEY[key]
        row = stored.get(key)
        before = (row.warning, row.threshold) if row else (metric.warning, metric.threshold)
        if before == (warning, threshold):
            continue
        if row is None:
            row = KpiThreshold(metric=key)
            db.add(row)
        row.warning, row.threshold = warning, threshold
        row.updated_at, row.updated_by_id = utcnow(), actor.user_id
        record(db, "kpi.thresholds_changed", actor=actor, details={
            "metric": key, "before": list(before), "after": [warning, threshold]})
        changed += 1
    db.commit()
    return changed



def reset_thresholds(db: Session, actor: Principal) -> int:
    """Back to the defaults of ``portal.kpi.metrics``: the operators' rows go (so later defaults apply too)."""
    _operator(actor)
    rows = list(db.scalars(select(KpiThreshold)))
    for row in rows:
        record(db, "kpi.thresholds_changed", actor=actor, details={
            "metric": row.metric, "before": [row.warning, row.threshold], "after": "default"})
        db.delete(row)
    db.commit()
    return len(rows)
