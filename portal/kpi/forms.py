"""Forms of the KPI pages: the operators' thresholds."""
from __future__ import annotations

from typing import Any

from flask_babel import format_decimal, gettext
from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import StringField, SubmitField

from portal.kpi.metrics import METRICS, Metric, thresholds_are_consistent
from portal.kpi.services import ThresholdError, parse_threshold

# The metrics an operator sets lines for: those that have default ones (sales and open requests are for
# information only).
THRESHOLD_METRICS: tuple[Metric, ...] = tuple(m for m in METRICS if m.has_threshold)


def field_names(metric: Metric) -> tuple[str, str]:
    return f"{metric.key}_warning", f"{metric.key}_threshold"


def as_input(metric: Metric, value: float | None) -> str:
    """A stored line as the operator types it: rates in percent, hours and counts as they are."""
    if value is None:
        return ""
    shown = value * 100 if metric.unit == "rate" else value
    return format_decimal(round(shown, 4), "0.####")


class ThresholdsForm(FlaskForm):
    """Amber and red lines of every metric, in percent, hours or counts; the fields are added below, two per
    metric. ``validate`` parses them all so that every mistake is shown at once; ``values`` is then what
    ``portal.kpi.services.set_thresholds`` stores (it checks them again)."""

    save = SubmitField(_l("Save thresholds"))

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.values: dict[str, tuple[float | None, float | None]] = {}

    def fill(self, current: dict[str, tuple[float | None, float | None]]) -> None:
        for metric in THRESHOLD_METRICS:
            warning, threshold = current[metric.key]
            names = field_names(metric)
            self[names[0]].data = as_input(metric, warning)
            self[names[1]].data = as_input(metric, threshold)

    def rows(self) -> list[tuple[Metric, Any, Any]]:
        return [(m, self[field_names(m)[0]], self[field_names(m)[1]]) for m in THRESHOLD_METRICS]

    def validate(self, extra_validators: Any = None) -> bool:
        ok = super().validate(extra_validators)
        values: dict[str, tuple[float | None, float | None]] = {}
        for metric, warning_field, threshold_field in self.rows():
            if not warning_field.raw_data and not threshold_field.raw_data:
                continue  # not sent at all (not emptied): the metric keeps its lines
            parsed: list[float | None] = []
            for field, what in ((warning_field, gettext("amber line")), (threshold_field, gettext("red line"))):
                try:
                    parsed.append(parse_threshold(metric.key, field.data or "", what=what))
                except ThresholdError as error:
                    field.errors = [*field.errors, error.message]
                    parsed.append(None)
                    ok = False
            if warning_field.errors or threshold_field.errors:
                continue
            warning, threshold = parsed
            # The same rules (and words) as set_thresholds, checked here for every metric at once.
            if warning is not None and threshold is None:
                threshold_field.errors = [gettext("%(metric)s: an amber line needs a red line.", metric=metric.label)]
                ok = False
            elif not thresholds_are_consistent(metric, warning, threshold):
                warning_field.errors = [
                    gettext("%(metric)s: the amber line must not be above the red line.", metric=metric.label)
                    if metric.better == "lower" else
                    gettext("%(metric)s: the amber line must not be below the red line.", metric=metric.label)]
                ok = False
            else:
                values[metric.key] = (warning, threshold)
        self.values = values if ok else {}
        return ok

    def error_messages(self) -> list[str]:
        return [error for _, warning, threshold in self.rows() for error in (*warning.errors, *threshold.errors)]


for _metric in THRESHOLD_METRICS:
    _warning, _threshold = field_names(_metric)
    setattr(ThresholdsForm, _warning, StringField(_l("Amber from")))
    setattr(ThresholdsForm, _threshold, StringField(_l("Red from")))
del _metric, _warning, _threshold


class RestoreDefaultsForm(FlaskForm):
    restore = SubmitField(_l("Restore defaults"))
