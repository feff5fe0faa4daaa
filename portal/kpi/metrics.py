"""The KPI metrics, each defined once: what it counts, over which window, its formula and its thresholds."""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from decimal import Decimal
from typing import Any

from babel.numbers import parse_pattern
from flask_babel import get_locale, gettext
from flask_babel import lazy_gettext as _l

# A metric's status against its thresholds; "no_data" when nothing was counted, "none" for figures
# without a threshold (sales, open requests).
GREEN, AMBER, RED, NO_DATA, NONE = "green", "amber", "red", "no_data", "none"
STATUS_LABELS = {GREEN: _l("Good"), AMBER: _l("At risk"), RED: _l("Below target"), NO_DATA: _l("No data"),
                 NONE: _l("For information")}
# Worst first: a merchant's overall health is its worst metric's status.
SEVERITY = {RED: 3, AMBER: 2, GREEN: 1, NO_DATA: 0, NONE: 0}


@dataclass(frozen=True)
class Metric:
    key: str
    label: Any
    formula: Any
    unit: str  # rate (a fraction, 0.04), hours, count or money
    better: str  # lower or higher
    # Its own window in days (None: the catalog as it is now); pages may choose another.
    days: int | None
    # Defaults of the operators' thresholds: amber from ``warning``, red from ``threshold``.
    warning: float | None = None
    threshold: float | None = None
    # Where the metric belongs on the page: orders, catalog or sales.
    group: str = "orders"

    @property
    def has_threshold(self) -> bool:
        return self.threshold is not None


METRICS: tuple[Metric, ...] = (
    Metric("late_shipment_rate", _l("Late shipment rate"),
           _l("orders handed to the carrier after their ship-by time / orders handed to the carrier"),
           "rate", "lower", 30, 0.03, 0.04),
    Metric("cancellation_rate", _l("Merchant cancellation rate"),
           _l("orders refused, refused automatically (acceptance deadline passed) or cancelled by the merchant "
              "/ orders received"),
           "rate", "lower", 7, 0.015, 0.025),
    Metric("valid_tracking_rate", _l("Valid tracking rate"),
           _l("orders handed to the carrier with a tracking number in their carrier's format / orders handed "
              "to the carrier"),
           "rate", "higher", 30, 0.97, 0.95),
    Metric("acceptance_time", _l("Acceptance time"),
           _l("hours from an order's arrival to its acceptance, for orders accepted in the period: "
              "90th percentile (median beside it)"),
           "hours", "lower", 30, 12.0, 18.0),
    Metric("handling_time", _l("Handling time"),
           _l("hours from an order's acceptance to its handover to the carrier, for orders handed over in the "
              "period: 90th percentile (median beside it)"),
           "hours", "lower", 30, 36.0, 48.0),
    Metric("catalog_completeness", _l("Catalog completeness"),
           _l("required attributes filled / required attributes, over active products in mapped categories"),
           "rate", "higher", None, 0.9, 0.8, group="catalog"),
    Metric("share_ready", _l("Products ready for sale"),
           _l("active products ready for the marketplace / active products"),
           "rate", "higher", None, 0.8, 0.6, group="catalog"),
    Metric("open_fill_in_requests", _l("Open fill-in requests"),
           _l("fill-in requests not yet closed"), "count", "lower", None, group="catalog"),
    Metric("overdue_fill_in_requests", _l("Overdue fill-in requests"),
           _l("open fill-in requests past their due date"), "count", "lower", None, 1, 5, group="catalog"),
    Metric("upload_rejection_rate", _l("Upload rejection rate"),
           _l("rows rejected / rows read, over the catalog uploads applied in the period"),
           "rate", "lower", 30, 0.02, 0.05, group="catalog"),
    Metric("orders", _l("Orders"), _l("orders received in the period and not refused or cancelled"),
           "count", "higher", 30, group="sales"),
    Metric("units", _l("Units"), _l("units of those orders"), "count", "higher", 30, group="sales"),
    Metric("revenue", _l("Revenue"), _l("total of those orders"), "money", "higher", 30, group="sales"),
)
BY_KEY = {metric.key: metric for metric in METRICS}
# The metrics a merchant's health is judged by (home page, ranking's default columns).
HEALTH = ("late_shipment_rate", "cancellation_rate", "valid_tracking_rate", "acceptance_time", "handling_time",
          "catalog_completeness", "share_ready", "overdue_fill_in_requests", "upload_rejection_rate")
# The order metrics a trend is drawn of as a trailing-window rate.
RATES = ("late_shipment_rate", "cancellation_rate", "valid_tracking_rate", "upload_rejection_rate")


def status(metric: Metric, value: float | Decimal | None, warning: float | None, threshold: float | None) -> str:
    """Green, amber or red for ``value``: lower-is-better metrics turn amber at ``warning`` and red at
    ``threshold`` (a target "< 4 %" fails at 4 %); higher-is-better ones turn amber at ``warning`` and
    below, red at ``threshold`` and below (a target "> 95 %" fails at 95 %)."""
    if value is None:
        return NO_DATA
    if threshold is None:
        return NONE
    v = float(value)
    if metric.better == "lower":
        if v >= threshold:
            return RED
        return AMBER if warning is not None and v >= warning else GREEN
    if v <= threshold:
        return RED
    return AMBER if warning is not None and v <= warning else GREEN


def thresholds_are_consistent(metric: Metric, warning: float | None, threshold: float | None) -> bool:
    """The amber band lies on the good side of the red line."""
    if warning is None or threshold is None:
        return True
    return warning <= threshold if metric.better == "lower" else warning >= threshold


@lru_cache(maxsize=8)
def _pattern(pattern: str) -> Any:
    return parse_pattern(pattern)


def display(metric: Metric, value: float | int | Decimal | None) -> str:
    """A value as people read it, in the current language: 4.6 %, 12.5 h, 1 234, 98 765.00; "—" for none.

    Babel's patterns parsed once: a ranking shows some two thousand values."""
    if value is None:
        return "—"
    locale = get_locale()
    if metric.unit == "rate":
        return _pattern("#,##0.0 %").apply(float(value), locale)
    if metric.unit == "hours":
        return gettext("%(hours)s h", hours=_pattern("#,##0.0").apply(float(value), locale))
    if metric.unit == "money":
        return _pattern("#,##0.00").apply(Decimal(value), locale)
    return _pattern("#,##0").apply(int(value), locale)
