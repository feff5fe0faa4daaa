"""The KPI page's pieces without a database: the charts' JSON, the period a person asks for, the words of a card."""
from __future__ import annotations

import json
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal

import pytest

from portal import create_app
from portal.kpi.charts import ChartTexts, day_labels, sales_config, texts, trend_config
from portal.kpi.metrics import BY_KEY
from portal.kpi.pages import PeriodChoice, counts_text, limits_text, warning_text
from portal.kpi.queries import Figure, Period, Warning

WORDS = ChartTexts(warning="Amber line", threshold="Red line", orders="Orders", units="Units", revenue="Revenue",
                   hours="h")
NOW = datetime(2026, 3, 15, 10, 30, tzinfo=timezone.utc)
TODAY = NOW.date()


@pytest.fixture(scope="module")
def app():
    return create_app({"DATABASE_URL": "sqlite://", "SECRET_KEY": "x", "ENV_NAME": "testing"})


@pytest.fixture
def english(app):
    with app.test_request_context(headers={"Accept-Language": "en"}):
        yield


def test_a_rate_trend_keeps_its_gaps_and_its_two_lines():
    config = trend_config(BY_KEY["late_shipment_rate"], ["1 Mar", "2 Mar", "3 Mar"], [None, 0.0333333333, 0.5],
                          0.03, 0.04, WORDS)
    assert config == {
        "kind": "trend", "labels": ["1 Mar", "2 Mar", "3 Mar"],
        "series": [{"label": "Late shipment rate", "values": [None, 0.033333, 0.5]}],
        "warning": 0.03, "threshold": 0.04, "unit": "percent", "better": "lower",
        "labels_text": {"warning": "Amber line", "threshold": "Red line"}}
    json.dumps(config)  # plain JSON, nothing lazy left in it


def test_hours_carry_their_suffix_and_counts_are_whole_numbers():
    hours = trend_config(BY_KEY["handling_time"], ["a", "b"], [20.123456, None], 36.0, 48.0, WORDS)
    assert hours["unit"] == "hours" and hours["unit_suffix"] == "h"
    assert hours["series"][0]["values"] == [20.12, None]
    counts = trend_config(BY_KEY["overdue_fill_in_requests"], ["a", "b"], [3, None], 1, 5, WORDS)
    assert counts["unit"] == "count" and "unit_suffix" not in counts
    assert counts["series"][0]["values"] == [3, None]
    higher = trend_config(BY_KEY["valid_tracking_rate"], ["a"], [0.96], 0.97, 0.95, WORDS)
    assert higher["better"] == "higher"


def test_a_metric_without_lines_has_none():
    config = trend_config(BY_KEY["open_fill_in_requests"], ["a"], [4], None, None, WORDS)
    assert config["warning"] is None and config["threshold"] is None


def test_sales_are_bars_of_orders_and_units_and_a_line_of_revenue_in_exact_money():
    config = sales_config(["1 Mar", "2 Mar"], {"orders": [2, 0], "units": [5, 0],
                                               "revenue": [Decimal("1234.5"), Decimal("0.00")]}, WORDS)
    assert config == {"kind": "sales", "labels": ["1 Mar", "2 Mar"], "orders": [2, 0], "units": [5, 0],
                      "revenue": ["1234.50", "0.00"],
                      "labels_text": {"orders": "Orders", "units": "Units", "revenue": "Revenue"}}


def test_words_and_days_follow_the_readers_language(app):
    with app.test_request_context(headers={"Accept-Language": "en"}):
        assert texts().orders == "Orders"
        assert day_labels([date(2026, 3, 1), date(2026, 11, 5)]) == ["1 Mar", "5 Nov"]


@pytest.mark.parametrize("args, key, expected", [
    ({}, "standard", {}),
    ({"days": "7"}, "7", {"days": 7}),
    ({"days": "30"}, "30", {"days": 30}),
    ({"days": "90"}, "90", {"days": 90}),
    ({"date_from": "2026-03-01", "date_to": "2026-03-15"}, "custom", {"date_from": "2026-03-01", "date_to": "2026-03-15"}),
    ({"date_from": "2026-03-15", "date_to": "2026-03-15"}, "custom", {"date_from": "2026-03-15", "date_to": "2026-03-15"}),
])
def test_the_periods_a_person_can_choose(english, args, key, expected):
    choice = PeriodChoice.from_args(args, TODAY)
    assert choice.errors == ()
    assert choice.key == key
    assert choice.args() == expected


def test_each_choice_gives_its_period_and_its_charts_days(english):
    standard = PeriodChoice.from_args({}, TODAY)
    assert standard.period(NOW) is None
    assert standard.trend_days(NOW) == (TODAY - timedelta(days=89), TODAY)
    week = PeriodChoice.from_args({"days": "7"}, TODAY)
    assert week.period(NOW) == Period.last(7, NOW)
    assert week.trend_days(NOW) == (TODAY - timedelta(days=7), TODAY)
    custom = PeriodChoice.from_args({"date_from": "2026-03-01", "date_to": "2026-03-02"}, TODAY)
    assert custom.period(NOW) == Period.days(date(2026, 3, 1), date(2026, 3, 2))
    assert custom.trend_days(NOW) == (date(2026, 3, 1), date(2026, 3, 2))


@pytest.mark.parametrize("args, errors", [
    ({"days": "14"}, 1), ({"days": "-7"}, 1), ({"days": "٣٠"}, 1),
    ({"date_from": "2026-03-01"}, 1), ({"date_to": "2026-03-01"}, 1),
    ({"date_from": "01.03.2026", "date_to": "2026-03-02"}, 1), ({"date_from": "20260301", "date_to": "20260302"}, 2),
    ({"date_from": "2026-03-05", "date_to": "2026-03-01"}, 1),
    ({"date_from": "2025-03-14", "date_to": "2026-03-15"}, 1),  # 367 days
    ({"date_from": "2026-03-10", "date_to": "2026-03-16"}, 1),  # tomorrow
    ({"date_from": "2026-03-20", "date_to": "2026-03-16"}, 2),  # backwards and in the future
])
def test_a_period_that_cannot_be_used_falls_back_to_the_standard_windows(english, args, errors):
    choice = PeriodChoice.from_args(args, TODAY)
    assert len(choice.errors) == errors, choice.errors
    assert choice.key == "standard" and choice.period(NOW) is None and choice.args() == {}


def test_the_longest_period_is_366_days(english):
    assert PeriodChoice.from_args({"date_from": "2025-03-15", "date_to": "2026-03-15"}, TODAY).errors == ()


def test_a_card_says_what_a_figure_counts_and_where_its_lines_are(english):
    late = Figure(BY_KEY["late_shipment_rate"], 0.025, 1, 40, 0.03, 0.04)
    assert counts_text(late, {}) == "1 of 40 orders handed to the carrier"
    assert counts_text(Figure(BY_KEY["late_shipment_rate"], 1.0, 1, 1), {}) == "1 of 1 order handed to the carrier"
    assert limits_text(late) == "target below 4.0 % · amber from 3.0 %"
    tracking = Figure(BY_KEY["valid_tracking_rate"], 1.0, 40, 40, 0.97, 0.95)
    assert limits_text(tracking) == "target above 95.0 % · amber at 97.0 % or below"
    assert limits_text(Figure(BY_KEY["open_fill_in_requests"], 3)) == "no threshold"
    overdue = Figure(BY_KEY["overdue_fill_in_requests"], 2)
    assert counts_text(overdue, {"open_fill_in_requests": Figure(BY_KEY["open_fill_in_requests"], 7)}) == \
        "of 7 open requests"


def test_a_warning_counts_its_orders_in_words(english):
    three = Warning(BY_KEY["late_shipment_rate"], 3, ["A", "B", "C"], 0.025, 4 / 43, "green", "red")
    assert warning_text(three, own=True) == \
        "Shipping these 3 at-risk orders late would take your late shipment rate to 9.3 %."
    one = Warning(BY_KEY["late_shipment_rate"], 1, ["A"], 0.025, 0.046, "green", "red")
    assert warning_text(one, own=False) == \
        "Shipping this at-risk order late would take the merchant's late shipment rate to 4.6 %."
    cancel = Warning(BY_KEY["cancellation_rate"], 2, ["A", "B"], 0.0, 2 / 41, "green", "red")
    assert warning_text(cancel, own=True) == ("If these 2 orders are not accepted before their deadlines, your "
                                              "cancellation rate will reach 4.9 %.")
