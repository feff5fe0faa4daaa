"""What a merchant's KPI page shows, assembled from the queries: the period asked for, each metric's card, the
warnings' order links, the trends and the sales."""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

from flask_babel import format_date, gettext, ngettext
from sqlalchemy.orm import Session

from portal.db import utcnow
from portal.kpi import charts
from portal.kpi.metrics import BY_KEY, HEALTH, Metric, display
from portal.kpi.queries import (DAY_CHOICES, EARLIEST_DAY, MAX_PERIOD_DAYS, STANDARD_TREND_DAYS, Figure, Health, Period, health,
                                top_products, trend)
from portal.tenancy import Principal

GROUPS = ("orders", "catalog")


@dataclass(frozen=True)
class PeriodChoice:
    """The period a person asked for: the standard windows, the last 7, 30 or 90 days, or whole days from–to.

    Input that cannot be used falls back to the standard windows with ``errors`` saying what was wrong.
    """

    days: int | None = None
    first: date | None = None
    last: date | None = None
    errors: tuple[str, ...] = ()
    # What was typed in the date boxes, given back to the form as it was.
    typed_from: str = ""
    typed_to: str = ""

    @classmethod
    def from_args(cls, args: Any, today: date) -> PeriodChoice:
        days_text = (args.get("days") or "").strip()
        typed_from, typed_to = (args.get("date_from") or "").strip()[:32], (args.get("date_to") or "").strip()[:32]
        if typed_from or typed_to:
            return cls._custom(typed_from, typed_to, today)
        if days_text:
            if days_text.isdecimal() and days_text.isascii() and int(days_text) in DAY_CHOICES:
                return cls(days=int(days_text))
            return cls(errors=(gettext("“%(days)s” is not a period the page offers: choose 7, 30 or 90 days.",
                                       days=days_text[:16]),))
        return cls()

    @classmethod
    def _custom(cls, typed_from: str, typed_to: str, today: date) -> PeriodChoice:
        errors: list[str] = []
        first, last = _parse_day(typed_from), _parse_day(typed_to)
        if not typed_from:
            errors.append(gettext("Choose the first day of the period."))
        elif first is None:
            errors.append(gettext("“%(text)s” is not a date: give the first day as YYYY-MM-DD.", text=typed_from))
        if not typed_to:
            errors.append(gettext("Choose the last day of the period."))
        elif last is None:
            errors.append(gettext("“%(text)s” is not a date: give the last day as YYYY-MM-DD.", text=typed_to))
        if first and last:
            if first > last:
                errors.append(gettext("The first day (%(first)s) is after the last day (%(last)s).",
                                      first=format_date(first), last=format_date(last)))
            elif (last - first).days + 1 > MAX_PERIOD_DAYS:
                errors.append(gettext("A period can cover at most %(max)d days; this one covers %(days)d.",
                                      max=MAX_PERIOD_DAYS, days=(last - first).days + 1))
            if first < EARLIEST_DAY:
                errors.append(gettext("The period cannot start before %(earliest)s.", earliest=format_date(EARLIEST_DAY)))
            if last > today:
                errors.append(gettext("The period cannot end in the future: the last day can be today (%(today)s) "
                                      "at the latest.", today=format_date(today)))
        if errors:
            return cls(errors=tuple(errors), typed_from=typed_from, typed_to=typed_to)
        return cls(first=first, last=last, typed_from=typed_from, typed_to=typed_to)

    @property
    def key(self) -> str:
        """Which choice of the selector is on: standard, 7, 30, 90 or custom."""
        if self.first is not None:
            return "custom"
        return str(self.days) if self.days else "standard"

    def period(self, now: datetime) -> Period | None:
        """The period every windowed metric is computed over; None: each over its own window."""
        if self.first is not None and self.last is not None:
            return Period.days(self.first, self.last)
        return Period.last(self.days, now) if self.days else None

    def trend_days(self, now: datetime) -> tuple[date, date]:
        """First and last day of the trend charts: the chosen period, or the last 90 days."""
        period = self.period(now)
        if period is None:
            return now.date() - timedelta(days=STANDARD_TREND_DAYS - 1), now.date()
        return period.first_day, period.last_day

    def args(self) -> dict[str, Any]:
        """The query arguments that ask for this period again (links, the reports' form)."""
        if self.first is not None and self.last is not None:
            return {"date_from": self.first.isoformat(), "date_to": self.last.isoformat()}
        return {"days": self.days} if self.days else {}


def _parse_day(text: str) -> date | None:
    if len(text) != 10:
        return None
    try:
        return date.fromisoformat(text)
    except ValueError:
        return None


@dataclass
class Card:
    """One metric as its card shows it."""

    figure: Figure
    value: str
    median: str | None
    counts: str | None
    window: str
    limits: str
    chart_id: str
    chart: dict[str, Any]

    @property
    def metric(self) -> Metric:
        return self.figure.metric

    @property
    def status(self) -> str:
        return self.figure.status


@dataclass
class WarningView:
    """An early warning in words, with its orders and where each one is."""

    metric: Metric
    text: str
    status: str
    orders: list[tuple[str, int | None]]
    more: int


@dataclass
class KpiPage:
    merchant_id: int
    health: Health
    choice: PeriodChoice
    groups: dict[str, list[Card]]
    warnings: list[WarningView]
    sales: dict[str, str]
    sales_window: str
    sales_chart: dict[str, Any]
    top_products: list[dict[str, Any]]
    trend_from: date
    trend_to: date
    computed_at: datetime | None
    charts: dict[str, dict[str, Any]] = field(default_factory=dict)


def window_text(figure: Figure, choice: PeriodChoice) -> str:
    """The span a figure covers, in words."""
    metric = figure.metric
    if metric.days is None:
        return gettext("the catalog as it is now")
    if choice.first is not None and choice.last is not None:
        return gettext("%(first)s – %(last)s", first=format_date(choice.first), last=format_date(choice.last))
    days = choice.days or metric.days or 0
    return ngettext("last %(num)d day", "last %(num)d days", days)


def counts_text(figure: Figure, figures: dict[str, Figure]) -> str | None:
    """What a figure was computed from: "3 of 120 orders"."""
    key, num, den = figure.metric.key, figure.numerator, figure.denominator
    if key in ("late_shipment_rate", "valid_tracking_rate"):
        return ngettext("%(part)s of %(num)d order handed to the carrier",
                        "%(part)s of %(num)d orders handed to the carrier", den or 0, part=num or 0)
    if key == "cancellation_rate":
        return ngettext("%(part)s of %(num)d order received", "%(part)s of %(num)d orders received", den or 0,
                        part=num or 0)
    if key == "acceptance_time":
        return ngettext("%(num)d order accepted", "%(num)d orders accepted", den or 0)
    if key == "handling_time":
        return ngettext("%(num)d order handed over", "%(num)d orders handed over", den or 0)
    if key == "catalog_completeness":
        return ngettext("%(part)s of %(num)d required attribute filled",
                        "%(part)s of %(num)d required attributes filled", den or 0, part=num or 0)
    if key == "share_ready":
        return ngettext("%(part)s of %(num)d active product", "%(part)s of %(num)d active products", den or 0,
                        part=num or 0)
    if key == "upload_rejection_rate":
        return ngettext("%(part)s of %(num)d row rejected", "%(part)s of %(num)d rows rejected", den or 0,
                        part=num or 0)
    if key == "overdue_fill_in_requests":
        open_requests = int(figures["open_fill_in_requests"].value or 0)
        return ngettext("of %(num)d open request", "of %(num)d open requests", open_requests)
    return None


def limits_text(figure: Figure) -> str:
    """The thresholds in words, on the metric's own side: "target below 4.0 % · amber from 3.0 %"."""
    metric, warning, threshold = figure.metric, figure.warning, figure.threshold
    if threshold is None:
        return gettext("no threshold")
    parts = []
    if metric.better == "lower":
        parts.append(gettext("target below %(value)s", value=display(metric, threshold)))
        if warning is not None:
            parts.append(gettext("amber from %(value)s", value=display(metric, warning)))
    else:
        parts.append(gettext("target above %(value)s", value=display(metric, threshold)))
        if warning is not None:
            parts.append(gettext("amber at %(value)s or below", value=display(metric, warning)))
    return " · ".join(parts)


def warning_text(warning: Any, *, own: bool) -> str:
    """An early warning as a sentence; ``own``: said to the merchant ("your"), else about the merchant."""
    value = display(warning.metric, warning.projected)
    n = warning.orders
    if warning.metric.key == "late_shipment_rate":
        if own:
            return ngettext("Shipping this at-risk order late would take your late shipment rate to %(value)s.",
                            "Shipping these %(num)d at-risk orders late would take your late shipment rate to "
                            "%(value)s.", n, value=value)
        return ngettext("Shipping this at-risk order late would take the merchant's late shipment rate to %(value)s.",
                        "Shipping these %(num)d at-risk orders late would take the merchant's late shipment rate "
                        "to %(value)s.", n, value=value)
    if warning.metric.key == "cancellation_rate":
        if own:
            return ngettext("If this order is not accepted before its deadline, your cancellation rate will reach "
                            "%(value)s.",
                            "If these %(num)d orders are not accepted before their deadlines, your cancellation rate "
                            "will reach %(value)s.", n, value=value)
        return ngettext("If this order is not accepted before its deadline, the merchant's cancellation rate will "
                        "reach %(value)s.",
                        "If these %(num)d orders are not accepted before their deadlines, the merchant's "
                        "cancellation rate will reach %(value)s.", n, value=value)
    return ngettext("This order could take %(metric)s to %(value)s.", "These %(num)d orders could take %(metric)s "
                    "to %(value)s.", n, metric=warning.metric.label, value=value)


def warnings_view(found: Health, *, own: bool) -> list[WarningView]:
    return [WarningView(w.metric, warning_text(w, own=own), w.projected_status,
                        list(zip(w.order_numbers, w.order_ids)), max(0, w.orders - len(w.order_numbers)))
            for w in found.warnings]


def build(db: Session, principal: Principal, merchant_id: int, choice: PeriodChoice, *, own: bool,
          now: datetime | None = None) -> KpiPage:
    """Everything the page shows: one health computation, one trend read, one top-products query."""
    now = now or utcnow()
    period = choice.period(now)
    found = health(db, principal, merchant_id, period=period, now=now)
    first, last = choice.trend_days(now)
    history = trend(db, principal, merchant_id, first, last)
    words = charts.texts()
    labels = charts.day_labels(history["days"])
    groups: dict[str, list[Card]] = {group: [] for group in GROUPS}
    all_charts: dict[str, dict[str, Any]] = {}
    for key in HEALTH:
        figure = found.figures[key]
        metric = figure.metric
        chart_id = f"kpi-chart-{key.replace('_', '-')}"
        chart = charts.trend_config(metric, labels, history["series"][key], figure.warning, figure.threshold,
                                    words)
        all_charts[chart_id] = chart
        groups[metric.group].append(Card(
            figure, display(metric, figure.value),
            display(metric, figure.median) if metric.unit == "hours" and figure.median is not None else None,
            counts_text(figure, found.figures), window_text(figure, choice), limits_text(figure), chart_id, chart))
    sales_period = found.figures["orders"].period or Period.last(BY_KEY["orders"].days or 30, now)
    if period is None:
        sales_history = trend(db, principal, merchant_id, sales_period.first_day, sales_period.last_day)
        sales_labels = charts.day_labels(sales_history["days"])
    else:
        sales_history, sales_labels = history, labels
    sales_chart = charts.sales_config(sales_labels, sales_history["series"], words)
    all_charts["kpi-chart-sales"] = sales_chart
    sales = {key: display(BY_KEY[key], found.figures[key].value) for key in ("orders", "units", "revenue")}
    return KpiPage(
        merchant_id=merchant_id, health=found, choice=choice, groups=groups,
        warnings=warnings_view(found, own=own), sales=sales,
        sales_window=window_text(found.figures["orders"], choice), sales_chart=sales_chart,
        top_products=top_products(db, principal, merchant_id, sales_period), trend_from=first, trend_to=last,
        computed_at=history["computed_at"] or sales_history["computed_at"], charts=all_charts)


@dataclass
class HomeHealth:
    """The home page's summary: each health metric's value and status, and the early warnings."""

    health: Health
    rows: list[tuple[Metric, str, str]]
    warnings: list[WarningView]


def home_health(db: Session, principal: Principal, merchant_id: int, *, now: datetime | None = None) -> HomeHealth:
    found = health(db, principal, merchant_id, now=now)
    rows = [(found.figures[key].metric, display(found.figures[key].metric, found.figures[key].value),
             found.figures[key].status) for key in HEALTH]
    return HomeHealth(found, rows, warnings_view(found, own=True))
