"""The metrics' definitions: status bands at their exact boundaries, percentiles, display."""
from __future__ import annotations

import pytest

from portal import create_app
from portal.kpi.metrics import BY_KEY, HEALTH, METRICS, display, status, thresholds_are_consistent
from portal.kpi.queries import percentile

LATE, TRACKING = BY_KEY["late_shipment_rate"], BY_KEY["valid_tracking_rate"]


@pytest.mark.parametrize("value, expected", [
    (0.0, "green"), (0.0299, "green"), (0.03, "amber"), (0.0399, "amber"), (0.04, "red"), (1.0, "red"),
    (None, "no_data")])
def test_a_lower_is_better_rate_turns_amber_at_the_warning_and_red_at_the_target(value, expected):
    assert status(LATE, value, 0.03, 0.04) == expected


@pytest.mark.parametrize("value, expected", [
    (1.0, "green"), (0.9701, "green"), (0.97, "amber"), (0.9501, "amber"), (0.95, "red"), (0.0, "red")])
def test_a_higher_is_better_rate_fails_at_its_target_too(value, expected):
    assert status(TRACKING, value, 0.97, 0.95) == expected


def test_without_thresholds_a_figure_is_for_information_and_without_warning_it_is_green_or_red():
    assert status(LATE, 0.5, None, None) == "none"
    assert status(LATE, 0.039, None, 0.04) == "green"


def test_every_metric_is_defined_once_with_a_formula_and_consistent_defaults():
    assert len({m.key for m in METRICS}) == len(METRICS)
    assert set(HEALTH) <= set(BY_KEY)
    for metric in METRICS:
        assert str(metric.formula) and str(metric.label)
        assert metric.better in ("lower", "higher") and metric.unit in ("rate", "hours", "count", "money")
        assert thresholds_are_consistent(metric, metric.warning, metric.threshold), metric.key
    assert (LATE.days, BY_KEY["cancellation_rate"].days, TRACKING.days) == (30, 7, 30)
    assert (LATE.threshold, BY_KEY["cancellation_rate"].threshold, TRACKING.threshold) == (0.04, 0.025, 0.95)


def test_amber_beyond_red_is_inconsistent_in_either_direction():
    assert not thresholds_are_consistent(LATE, 0.05, 0.04)
    assert not thresholds_are_consistent(TRACKING, 0.9, 0.95)


@pytest.mark.parametrize("values, q, expected", [
    ([], 0.5, None), ([7.0], 0.9, 7.0), ([1, 2, 3, 4], 0.5, 2.5), ([1, 2, 3, 4, 10], 0.9, 7.6),
    ([10, 1, 4, 3, 2], 0.5, 3)])
def test_percentile_interpolates_between_ranks_like_postgresql(values, q, expected):
    assert percentile(values, q) == pytest.approx(expected) if expected is not None else percentile(values, q) is None


def test_values_are_displayed_in_the_readers_language():
    app = create_app({"DATABASE_URL": "sqlite://", "SECRET_KEY": "x", "ENV_NAME": "testing"})
    with app.test_request_context(headers={"Accept-Language": "en"}):
        assert display(LATE, 0.046) == "4.6 %"
        assert display(BY_KEY["acceptance_time"], 12.54) == "12.5 h"
        assert display(BY_KEY["orders"], 1234) == "1,234"
        assert display(LATE, None) == "—"
    with app.test_request_context(headers={"Accept-Language": "ru"}):
        assert display(LATE, 0.046) == "4,6 %"
