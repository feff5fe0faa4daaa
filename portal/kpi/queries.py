"""The KPI figures, computed by the database: one scan of the orders with a filtered aggregate per metric
(``FILTER (WHERE …)``, on PostgreSQL and SQLite alike), one of the catalog, and the early warnings."""
from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta, timezone
from decimal import Decimal
from typing import Any

from sqlalchemy import ColumnElement, Float, and_, any_, func, or_, select, text
from sqlalchemy.dialects import postgresql
from sqlalchemy.orm import Session

from portal.accounts.models import Merchant
from portal.catalog.models import Product, Upload
from portal.category_mapping.models import FillInRequest
from portal.db import utcnow
from portal.kpi.metrics import BY_KEY, HEALTH, METRICS, NO_DATA, SEVERITY, Metric, status
from portal.kpi.models import KpiThreshold
from portal.orders.models import Order, OrderLine
from portal.orders.queries import at_risk, at_risk_hours
from portal.tenancy import Principal, scope

# Refused (by the merchant or automatically when the acceptance deadline passed) or cancelled by the merchant.
CANCELLED_STATES = ("refused", "cancelled")
MERCHANT_CLOSERS = ("merchant", "system")
TOP_PRODUCTS = 10
# A warning names this many of its orders.
WARNED_LISTED = 5
# The periods people choose besides each metric's own window: the last 7, 30 or 90 days, or whole days
# from–to up to a year and a day; the charts of the standard windows cover the last 90 days.
DAY_CHOICES = (7, 30, 90)
MAX_PERIOD_DAYS = 366
# No marketplace has orders before this; a chosen period starts on it at the earliest and ends today at the latest.
EARLIEST_DAY = date(2000, 1, 1)
STANDARD_TREND_DAYS = 90


@dataclass(frozen=True)
class Period:
    """A half-open span of time [start, end)."""

    start: datetime
    end: datetime

    @classmethod
    def last(cls, days: int, now: datetime | None = None) -> Period:
        end = now or utcnow()
        return cls(end - timedelta(days=days), end)

    @classmethod
    def days(cls, first: date, last: date) -> Period:
        """Whole UTC days, ``first`` to ``last`` inclusive."""
        return cls(datetime.combine(first, time(), timezone.utc),
                   datetime.combine(last + timedelta(days=1), time(), timezone.utc))

    @property
    def length_days(self) -> float:
        return (self.end - self.start).total_seconds() / 86400

    @property
    def first_day(self) -> date:
        return self.start.date()

    @property
    def last_day(self) -> date:
        """The last UTC day the period touches."""
        return (self.end - timedelta(microseconds=1)).date()


@dataclass
class Figure:
    """One metric of one merchant: its value, what it was computed from and where it stands."""

    metric: Metric
    value: float | int | Decimal | None
    numerator: int | Decimal | None = None
    denominator: int | None = None
    warning: float | None = None
    threshold: float | None = None
    period: Period | None = None
    median: float | None = None
    status: str = NO_DATA

    def as_dict(self) -> dict[str, Any]:
        value: Any = self.value
        if isinstance(value, Decimal):
            value = str(value)
        out: dict[str, Any] = {
            "value": value, "threshold": self.threshold, "warning": self.warning, "status": self.status,
            "numerator": str(self.numerator) if isinstance(self.numerator, Decimal) else self.numerator,
            "denominator": self.denominator, "unit": self.metric.unit,
            "from": self.period.start.isoformat() if self.period else None,
            "to": self.period.end.isoformat() if self.period else None,
        }
        if self.metric.unit == "hours":
            out["median"] = self.median
            out["p90"] = self.value
        return out


@dataclass
class Warning:
    """What would happen to a metric if the orders at risk now went wrong."""

    metric: Metric
    orders: int
    order_numbers: list[str]
    value: float
    projected: float
    status: str
    projected_status: str
    # The listed orders' ids, beside their numbers (links to the order pages).
    order_ids: list[int] = field(default_factory=list)


@dataclass
class Health:
    merchant_id: int
    figures: dict[str, Figure]
    warnings: list[Warning] = field(default_factory=list)

    @property
    def status(self) -> str:
        return overall_status(self.figures)


def overall_status(figures: dict[str, Figure]) -> str:
    """A merchant's health: the worst status of its health metrics; "no data" while no rate or time has any
    (zero overdue requests alone does not make a merchant healthy)."""
    health = [figures[key] for key in HEALTH]
    if not any(f.metric.unit != "count" and SEVERITY[f.status] for f in health):
        return NO_DATA
    return max((f.status for f in health), key=lambda s: SEVERITY[s])


def thresholds(db: Session) -> dict[str, tuple[float | None, float | None]]:
    """Each metric's (warning, threshold): the operators' when they set them, the defaults otherwise."""
    found = {t.metric: (t.warning, t.threshold) for t in db.scalars(select(KpiThreshold))}
    return {m.key: found.get(m.key, (m.warning, m.threshold)) for m in METRICS}


def percentile(values: list[float], q: float) -> float | None:
    """Linear interpolation between the closest ranks: PostgreSQL's ``percentile_cont``."""
    if not values:
        return None
    ordered = sorted(values)
    pos = q * (len(ordered) - 1)
    low, high = math.floor(pos), math.ceil(pos)
    return ordered[low] + (ordered[high] - ordered[low]) * (pos - low)


def hours_between(db: Session, later: Any, earlier: Any) -> ColumnElement[float]:
    if db.get_bind().dialect.name == "postgresql":
        # date_part is double precision; EXTRACT is numeric since PostgreSQL 14, slower to sort.
        return func.date_part("epoch", later - earlier) / 3600.0
    return (func.julianday(later) - func.julianday(earlier)) * 24.0


def _within(column: Any, period: Period) -> ColumnElement[bool]:
    return and_(column >= period.start, column < period.end)


def _windows(period: Period | None, now: datetime) -> dict[str, Period]:
    """Each windowed metric's period: the one asked for, or the metric's own days ending now."""
    return {m.key: period or Period.last(m.days, now) for m in METRICS if m.days is not None}


def _merchant_filter(stmt: Any, model: Any, principal: Principal, merchant_ids: list[int] | None) -> Any:
    stmt = scope(stmt, model, principal)
    if merchant_ids is not None:
        stmt = stmt.where(model.merchant_id.in_(merchant_ids))
    return stmt


def _order_scan(db: Session, principal: Principal, merchant_ids: list[int] | None, w: dict[str, Period]
                ) -> dict[int, dict[str, Any]]:
    """One pass over the orders of the widest window, every order metric a filtered aggregate."""
    late, cancel, tracking = w["late_shipment_rate"], w["cancellation_rate"], w["valid_tracking_rate"]
    accept, handle, sales = w["acceptance_time"], w["handling_time"], w["orders"]
    kept = and_(_within(Order.created_at, sales), Order.status.notin_(CANCELLED_STATES))
    accepted = _within(Order.accepted_at, accept)
    handled = and_(_within(Order.shipped_at, handle), Order.accepted_at.is_not(None))
    count = func.count(Order.id)
    columns: dict[str, Any] = {
        "shipped": count.filter(_within(Order.shipped_at, late)),
        "shipped_late": count.filter(_within(Order.shipped_at, late), Order.shipped_at > Order.ship_by),
        "received": count.filter(_within(Order.created_at, cancel)),
        "merchant_cancelled": count.filter(_within(Order.created_at, cancel), Order.status.in_(CANCELLED_STATES),
                                           Order.closed_by.in_(MERCHANT_CLOSERS)),
        "tracked": count.filter(_within(Order.shipped_at, tracking)),
        "tracked_valid": count.filter(_within(Order.shipped_at, tracking), Order.tracking_valid.is_(True)),
        "accepted": count.filter(accepted),
        "handled": count.filter(handled),
        "orders": count.filter(kept),
        "units": func.sum(Order.units).filter(kept),
        "revenue": func.sum(Order.total).filter(kept),
    }
    earliest = min(p.start for p in w.values())
    latest = max(p.end for p in w.values())
    touched = or_(and_(Order.created_at >= earliest, Order.created_at < latest),
                  and_(Order.shipped_at >= earliest, Order.shipped_at < latest),
                  and_(Order.accepted_at >= earliest, Order.accepted_at < latest))
    postgres = db.get_bind().dialect.name == "postgresql"
    if postgres:
        # The aggregates gain nothing from JIT compilation, which costs a tenth of a second per query.
        db.execute(text("SET LOCAL jit = off"))
    stmt = select(Order.merchant_id, *(c.label(k) for k, c in columns.items())).where(touched)
    stmt = _merchant_filter(stmt, Order, principal, merchant_ids).group_by(Order.merchant_id)
    found = {row.merchant_id: row._asdict() for row in db.execute(stmt)}
    # The percentiles apart: ordered-set aggregates would keep the scan above from running in parallel;
    # alone, each reads its covering index (merchant, time, the other time) in merchant order.
    for name, later, earlier, cond in (("acceptance", Order.accepted_at, Order.created_at, accepted),
                                       ("handling", Order.shipped_at, Order.accepted_at, handled)):
        hours = hours_between(db, later, earlier)
        if postgres:
            both = func.percentile_cont(postgresql.array([0.5, 0.9]), type_=postgresql.ARRAY(Float)).within_group(hours)
            stmt = _merchant_filter(select(Order.merchant_id, both).where(cond), Order, principal, merchant_ids)
            for merchant_id, (median, p90) in db.execute(stmt.group_by(Order.merchant_id)):
                if merchant_id in found:
                    found[merchant_id].update({f"{name}_median": median, f"{name}_p90": p90})
            continue
        # SQLite has no ordered-set aggregates: the same percentiles over the durations it returns.
        values: dict[int, list[float]] = defaultdict(list)
        durations = _merchant_filter(select(Order.merchant_id, hours).where(cond), Order, principal, merchant_ids)
        for merchant_id, value in db.execute(durations):
            values[merchant_id].append(float(value))
        for merchant_id, row in found.items():
            row[f"{name}_median"] = percentile(values.get(merchant_id, []), 0.5)
            row[f"{name}_p90"] = percentile(values.get(merchant_id, []), 0.9)
    return found


def _catalog_scan(db: Session, principal: Principal, merchant_ids: list[int] | None, uploads: Period,
                  now: datetime) -> dict[int, dict[str, Any]]:
    found: dict[int, dict[str, Any]] = defaultdict(dict)
    active = Product.status == "active"
    mapped = and_(active, Product.marketplace_category_id.is_not(None), Product.required_count > 0)
    products = select(Product.merchant_id,
                      func.count(Product.id).filter(active).label("active_products"),
                      func.count(Product.id).filter(active, Product.readiness == "ready").label("ready_products"),
                      func.sum(Product.required_count).filter(mapped).label("required_total"),
                      func.sum(Product.filled_required).filter(mapped).label("required_filled"))
    for row in db.execute(_merchant_filter(products, Product, principal, merchant_ids).group_by(Product.merchant_id)):
        found[row.merchant_id].update(row._asdict())
    is_open = FillInRequest.status == "open"
    requests = select(FillInRequest.merchant_id,
                      func.count(FillInRequest.id).filter(is_open).label("open_requests"),
                      func.count(FillInRequest.id).filter(is_open, FillInRequest.due_at < now).label("overdue_requests"))
    for row in db.execute(_merchant_filter(requests, FillInRequest, principal, merchant_ids)
                          .group_by(FillInRequest.merchant_id)):
        found[row.merchant_id].update(row._asdict())
    applied = select(Upload.merchant_id, func.sum(Upload.rows).label("upload_rows"),
                     func.sum(Upload.rejected).label("upload_rejected")).where(
        Upload.status == "applied", Upload.dry_run.is_(False), _within(Upload.finished_at, uploads))
    for row in db.execute(_merchant_filter(applied, Upload, principal, merchant_ids).group_by(Upload.merchant_id)):
        found[row.merchant_id].update(row._asdict())
    return found


def _ratio(numerator: Any, denominator: Any) -> float | None:
    return numerator / denominator if denominator else None


def _figures(counts: dict[str, Any], w: dict[str, Period], limits: dict[str, tuple[float | None, float | None]]
             ) -> dict[str, Figure]:
    c: dict[str, Any] = defaultdict(lambda: None, counts)

    def n(key: str) -> int:
        return int(c[key] or 0)

    shipped, received, tracked = n("shipped"), n("received"), n("tracked")
    rows = n("upload_rows")
    total = n("required_total")
    figures = [
        Figure(BY_KEY["late_shipment_rate"], _ratio(n("shipped_late"), shipped), n("shipped_late"), shipped),
        Figure(BY_KEY["cancellation_rate"], _ratio(n("merchant_cancelled"), received), n("merchant_cancelled"),
               received),
        Figure(BY_KEY["valid_tracking_rate"], _ratio(n("tracked_valid"), tracked), n("tracked_valid"), tracked),
        Figure(BY_KEY["acceptance_time"], _float(c["acceptance_p90"]), None, n("accepted"),
               median=_float(c["acceptance_median"])),
        Figure(BY_KEY["handling_time"], _float(c["handling_p90"]), None, n("handled"),
               median=_float(c["handling_median"])),
        Figure(BY_KEY["catalog_completeness"], _ratio(n("required_filled"), total), n("required_filled"), total),
        Figure(BY_KEY["share_ready"], _ratio(n("ready_products"), n("active_products")), n("ready_products"),
               n("active_products")),
        Figure(BY_KEY["open_fill_in_requests"], n("open_requests")),
        Figure(BY_KEY["overdue_fill_in_requests"], n("overdue_requests")),
        Figure(BY_KEY["upload_rejection_rate"], _ratio(n("upload_rejected"), rows), n("upload_rejected"), rows),
        Figure(BY_KEY["orders"], n("orders")),
        Figure(BY_KEY["units"], n("units")),
        Figure(BY_KEY["revenue"], Decimal(c["revenue"] or 0).quantize(Decimal("0.01"))),
    ]
    out = {}
    for figure in figures:
        figure.warning, figure.threshold = limits[figure.metric.key]
        figure.period = w.get(figure.metric.key)
        figure.status = status(figure.metric, figure.value, figure.warning, figure.threshold)
        out[figure.metric.key] = figure
    return out


def _float(value: Any) -> float | None:
    return None if value is None else float(value)


def merchant_figures(db: Session, principal: Principal, *, merchant_ids: list[int] | None = None,
                     period: Period | None = None, now: datetime | None = None) -> dict[int, dict[str, Figure]]:
    """Every metric of every merchant the principal may see (narrowed to ``merchant_ids``), live.

    ``period`` None: each metric over its own window ending ``now`` (late shipment 30 days, cancellations
    7 days, …); a period: every windowed metric over it. The catalog's counts are as they are now. A
    merchant with no data at all still gets its figures (each "no data").
    """
    now = now or utcnow()
    w = _windows(period, now)
    orders = _order_scan(db, principal, merchant_ids, w)
    catalog = _catalog_scan(db, principal, merchant_ids, w["upload_rejection_rate"], now)
    limits = thresholds(db)
    ids = set(merchant_ids) if merchant_ids is not None else set(orders) | set(catalog)
    if principal.merchant_id is not None:
        ids &= {principal.merchant_id}
    return {mid: _figures({**orders.get(mid, {}), **catalog.get(mid, {})}, w, limits) for mid in ids}


def health(db: Session, principal: Principal, merchant_id: int, *, period: Period | None = None,
           now: datetime | None = None) -> Health:
    """One merchant's figures and early warnings."""
    now = now or utcnow()

    def figures_over(chosen: Period | None) -> dict[str, Figure]:
        found = merchant_figures(db, principal, merchant_ids=[merchant_id], period=chosen, now=now).get(merchant_id)
        # None: another merchant's id through a merchant principal; nothing of theirs is read.
        return found if found is not None else _figures({}, _windows(chosen, now), thresholds(db))

    figures = figures_over(period)
    # The warnings speak of where each metric stands now (its own window ending now), whatever period is shown.
    standard = figures if period is None else figures_over(None)
    return Health(merchant_id, figures, early_warnings(db, principal, merchant_id, standard, now=now))


def early_warnings(db: Session, principal: Principal, merchant_id: int, figures: dict[str, Figure], *,
                   now: datetime | None = None) -> list[Warning]:
    """Each metric the orders at risk now would push across a line if they went wrong.

    Late shipment: the open orders whose ship-by is within the at-risk window (or past) shipping late
    would each add one late order to the shipped ones. Cancellations: the orders still awaiting
    acceptance whose deadline falls within the window would each be refused automatically.
    """
    now = now or utcnow()
    found: list[Warning] = []
    late = figures["late_shipment_rate"]
    risky = db.execute(at_risk(scope(select(Order.id, Order.order_number), Order, principal), now=now)
                       .where(Order.merchant_id == merchant_id).order_by(Order.ship_by, Order.id)).all()
    if risky and late.threshold is not None:
        k = len(risky)
        projected = (int(late.numerator or 0) + k) / (int(late.denominator or 0) + k)
        _warn(found, late, k, [(number, order_id) for order_id, number in risky[:WARNED_LISTED]], projected)
    cancel = figures["cancellation_rate"]
    limit = now + timedelta(hours=at_risk_hours())
    waiting = scope(select(Order.id, Order.order_number, Order.created_at), Order, principal).where(
        Order.merchant_id == merchant_id, Order.status == "awaiting_acceptance", Order.acceptance_deadline <= limit
    ).order_by(Order.acceptance_deadline, Order.id)
    pending = db.execute(waiting).all()
    if pending and cancel.threshold is not None and cancel.period is not None:
        outside = sum(1 for _, _, created in pending if not cancel.period.start <= created < cancel.period.end)
        projected = (int(cancel.numerator or 0) + len(pending)) / (int(cancel.denominator or 0) + outside)
        _warn(found, cancel, len(pending), [(number, order_id) for order_id, number, _ in pending[:WARNED_LISTED]],
              projected)
    return found


def _warn(found: list[Warning], figure: Figure, count: int, listed: list[tuple[str, int]], projected: float) -> None:
    """Warn when the projection is worse than where the metric stands now."""
    now_status = figure.status if figure.value is not None else "green"
    then = status(figure.metric, projected, figure.warning, figure.threshold)
    if SEVERITY[then] > SEVERITY.get(now_status, 0):
        found.append(Warning(figure.metric, count, [n for n, _ in listed], float(figure.value or 0), projected,
                             now_status, then, [i for _, i in listed]))


def top_products(db: Session, principal: Principal, merchant_id: int, period: Period, *,
                 limit: int = TOP_PRODUCTS) -> list[dict[str, Any]]:
    """The products sold most in the period (orders not refused or cancelled), by revenue."""
    ids = scope(select(Order.id), Order, principal).where(
        Order.merchant_id == merchant_id, _within(Order.created_at, period), Order.status.notin_(CANCELLED_STATES))
    if db.get_bind().dialect.name == "postgresql":
        # The lines of those orders by their index: a merchant's month is a few thousand of a million lines,
        # which a semi-join would find by reading them all.
        of_orders = OrderLine.order_id == any_(func.array(ids.scalar_subquery()))
    else:
        of_orders = OrderLine.order_id.in_(ids)
    amount = func.sum(OrderLine.unit_price * OrderLine.quantity)
    stmt = (select(func.max(OrderLine.sku).label("sku"), func.max(OrderLine.title).label("title"),
                   func.sum(OrderLine.quantity).label("units"), amount.label("revenue"),
                   func.count(func.distinct(OrderLine.order_id)).label("orders"))
            .where(of_orders).group_by(OrderLine.product_id)
            .order_by(amount.desc(), func.max(OrderLine.sku)).limit(limit))
    return [{"sku": r.sku, "title": r.title, "units": int(r.units), "orders": int(r.orders),
             "revenue": Decimal(r.revenue).quantize(Decimal("0.01"))} for r in db.execute(stmt)]


def worst_first(rows: list[tuple[Any, dict[str, Figure]]], key: str, descending: bool) -> list[tuple[Any, dict[str, Figure]]]:
    """Sort merchants (ids or Merchant rows) by one metric's value, ties by id; those without data last
    whatever the direction."""
    def ident(item: Any) -> int:
        return item if isinstance(item, int) else item.id

    present = [r for r in rows if r[1][key].value is not None]
    absent = [r for r in rows if r[1][key].value is None]
    return sorted(present, key=lambda r: (float(r[1][key].value), ident(r[0])),  # type: ignore[arg-type]
                  reverse=descending) + absent


def statuses(figures: dict[str, Figure], keys: tuple[str, ...]) -> dict[str, str]:
    return {k: figures[k].status for k in keys}



def trend(db: Session, principal: Principal, merchant_id: int, first: date, last: date) -> dict[str, Any]:
    """Each metric's value day by day from the rollups: rates over their trailing window ending that day,
    the day's own percentiles and sales, the catalog as the job found it that day (None: not counted)."""
    from portal.kpi.models import KpiDaily

    widest = max(m.days or 0 for m in METRICS)
    rows = db.scalars(scope(select(KpiDaily), KpiDaily, principal).where(
        KpiDaily.merchant_id == merchant_id, KpiDaily.day >= first - timedelta(days=widest), KpiDaily.day <= last))
    by_day = {row.day: row for row in rows}
    days = [first + timedelta(days=i) for i in range((last - first).days + 1)]

    def trailing(numerator: str, denominator: str, window: int) -> list[float | None]:
        out = []
        for day in days:
            span = [by_day[d] for i in range(window) if (d := day - timedelta(days=i)) in by_day]
            den = sum(getattr(r, denominator) for r in span)
            out.append(sum(getattr(r, numerator) for r in span) / den if den else None)
        return out

    def daily(attribute: str) -> list[Any]:
        return [getattr(by_day[d], attribute) if d in by_day else None for d in days]

    def snapshot(numerator: str, denominator: str) -> list[float | None]:
        out: list[float | None] = []
        for d in days:
            row = by_day.get(d)
            num, den = (getattr(row, numerator), getattr(row, denominator)) if row else (None, None)
            out.append(num / den if num is not None and den else None)
        return out

    series: dict[str, list[Any]] = {
        "late_shipment_rate": trailing("shipped_late", "shipped", BY_KEY["late_shipment_rate"].days or 1),
        "cancellation_rate": trailing("merchant_cancelled", "received", BY_KEY["cancellation_rate"].days or 1),
        "valid_tracking_rate": trailing("shipped_valid_tracking", "shipped", BY_KEY["valid_tracking_rate"].days or 1),
        "upload_rejection_rate": trailing("upload_rejected", "upload_rows", BY_KEY["upload_rejection_rate"].days or 1),
        "acceptance_time": daily("acceptance_p90"),
        "handling_time": daily("handling_p90"),
        "catalog_completeness": snapshot("required_filled", "required_total"),
        "share_ready": snapshot("ready_products", "active_products"),
        "open_fill_in_requests": daily("open_requests"),
        "overdue_fill_in_requests": daily("overdue_requests"),
        "orders": [by_day[d].orders if d in by_day else 0 for d in days],
        "units": [by_day[d].units if d in by_day else 0 for d in days],
        "revenue": [by_day[d].revenue if d in by_day else Decimal("0.00") for d in days],
    }
    computed = max((r.computed_at for r in by_day.values()), default=None)
    return {"days": days, "series": series, "computed_at": computed}


def ranking(db: Session, principal: Principal, *, period: Period | None = None, merchant_ids: list[int] | None = None,
            now: datetime | None = None) -> list[tuple[Any, dict[str, Figure]]]:
    """Every merchant (narrowed to ``merchant_ids``) with its figures, staff only; merchants without
    any data are listed with "no data"."""
    if principal.is_merchant:
        raise PermissionError("the ranking compares merchants; it is for marketplace staff")
    merchants = select(Merchant).order_by(Merchant.name, Merchant.id)
    if merchant_ids is not None:
        merchants = merchants.where(Merchant.id.in_(merchant_ids))
    listed = list(db.scalars(merchants))
    figures = merchant_figures(db, principal, merchant_ids=[m.id for m in listed], period=period, now=now)
    return [(m, figures[m.id]) for m in listed]


def merchants_named(db: Session, q: str) -> set[int]:
    """Merchants whose name or slug contains ``q``, in any case: compared here, since SQLite's LIKE folds the
    case of ASCII letters only and merchants' names are often Cyrillic."""
    wanted = q.casefold()
    return {merchant_id for merchant_id, name, slug in db.execute(select(Merchant.id, Merchant.name, Merchant.slug))
            if wanted in name.casefold() or wanted in slug.casefold()}


def merchants_in_charge(db: Session, principal: Principal) -> set[int] | None:
    """Merchants with at least one active product mapped onto a category (or its subtree) the category
    manager is in charge of; None for operators, who are in charge of every merchant."""
    from portal.category_mapping.weak_spots import categories_in_charge

    allowed = categories_in_charge(db, principal)
    if allowed is None:
        return None
    return set(db.scalars(scope(select(Product.merchant_id).distinct(), Product, principal).where(
        Product.status == "active", Product.marketplace_category_id.in_(allowed))))
