"""The JSON the KPI charts are drawn from (the contract at the top of ``static/js/kpi-charts.js``): pure
functions of a ``trend()`` and a metric's thresholds, with the words passed in already translated."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Any

from flask_babel import format_date, gettext

from portal.kpi.metrics import BY_KEY, Metric

# How the script scales and suffixes each unit of ours.
CHART_UNITS = {"rate": "percent", "hours": "hours", "count": "count", "money": "count"}


@dataclass(frozen=True)
class ChartTexts:
    """The words a chart shows, in the reader's language."""

    warning: str
    threshold: str
    orders: str
    units: str
    revenue: str
    hours: str  # the suffix of hours on the axis and in tooltips


def texts() -> ChartTexts:
    """The words in the current language (needs a request or app context)."""
    return ChartTexts(warning=gettext("Amber line"), threshold=gettext("Red line"), orders=str(BY_KEY["orders"].label),
                      units=str(BY_KEY["units"].label), revenue=str(BY_KEY["revenue"].label),
                      hours=gettext("h"))


def day_labels(days: list[date]) -> list[str]:
    """Each day as the x axis shows it: "5 Nov" (in the current language)."""
    return [format_date(day, "d MMM") for day in days]


def _number(metric: Metric, value: Any) -> Any:
    """A value as JSON carries it: rates and hours rounded (the chart shows one decimal), money as text."""
    if value is None:
        return None
    if metric.unit == "rate":
        return round(float(value), 6)
    if metric.unit == "hours":
        return round(float(value), 2)
    if metric.unit == "money":
        return str(Decimal(value).quantize(Decimal("0.01")))
    return int(value)


def trend_config(metric: Metric, labels: list[str], values: list[Any], warning: float | None,
                 threshold: float | None, words: ChartTexts) -> dict[str, Any]:
    """A "trend" chart of one metric: its line, with its amber and red lines when it has them."""
    config: dict[str, Any] = {
        "kind": "trend",
        "labels": list(labels),
        "series": [{"label": str(metric.label), "values": [_number(metric, v) for v in values]}],
        "warning": warning,
        "threshold": threshold,
        "unit": CHART_UNITS[metric.unit],
        "better": metric.better,
        "labels_text": {"warning": words.warning, "threshold": words.threshold},
    }
    if metric.unit == "hours":
        config["unit_suffix"] = words.hours
    return config


def sales_config(labels: list[str], series: dict[str, list[Any]], words: ChartTexts) -> dict[str, Any]:
    """A "sales" chart: orders and units as bars, revenue as a line, per day."""
    return {
        "kind": "sales",
        "labels": list(labels),
        "orders": [_number(BY_KEY["orders"], v) for v in series["orders"]],
        "units": [_number(BY_KEY["units"], v) for v in series["units"]],
        "revenue": [_number(BY_KEY["revenue"], v) for v in series["revenue"]],
        "labels_text": {"orders": words.orders, "units": words.units, "revenue": words.revenue},
    }
