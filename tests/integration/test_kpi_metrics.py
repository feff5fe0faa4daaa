"""Every KPI formula against order histories with known answers, boundaries and empty periods included."""
from __future__ import annotations

from dataclasses import replace
from datetime import date, timedelta
from decimal import Decimal

import pytest
from sqlalchemy import select

from portal.category_mapping.models import FillInRequest
from portal.catalog.models import Upload
from portal.db import get_session
from portal.kpi.models import KpiDaily
from portal.kpi.queries import Period, health, merchant_figures, ranking, top_products, trend
from portal.kpi.services import rollup
from portal.shipping.carrier_services import CarrierValues, update_carrier
from portal.shipping.models import Carrier
from portal.tenancy import Principal
from tests.support.kpi import NOW, STAFF, History, days, hours


@pytest.fixture
def history(app, factory) -> History:
    return History(app, factory.merchant().id)


def figures_of(app, history: History, *, period: Period | None = None, now=NOW, principal=STAFF):
    with app.app_context():
        return merchant_figures(get_session(), principal, merchant_ids=[history.merchant_id], period=period,
                                now=now)[history.merchant_id]


def test_a_merchant_without_orders_has_no_data_and_no_division_by_zero(app, history):
    figures = figures_of(app, history)
    for key in ("late_shipment_rate", "cancellation_rate", "valid_tracking_rate", "acceptance_time",
                "handling_time", "catalog_completeness", "share_ready", "upload_rejection_rate"):
        assert figures[key].value is None, key
        assert figures[key].status == "no_data", key
    assert figures["late_shipment_rate"].as_dict()["denominator"] == 0
    assert figures["orders"].value == 0 and figures["revenue"].value == Decimal("0.00")
    assert figures["overdue_fill_in_requests"].value == 0
    assert figures["overdue_fill_in_requests"].status == "green"
    assert figures["open_fill_in_requests"].status == "none"


def test_late_shipment_rate_counts_handovers_after_ship_by_within_thirty_days(app, history):
    history.shipped(NOW - days(1))
    history.shipped(NOW - days(2), late=True)
    history.shipped(NOW - days(3), late=True, status="delivered", delivered=NOW - days(2))
    # Handed over exactly at its ship-by: on time (late means after).
    history.order(created=NOW - days(5), accepted=NOW - days(5), shipped=NOW - days(4), ship_by=NOW - days(4))
    # On time at handover, delivered ten days late by the carrier: never the merchant's lateness.
    history.order(created=NOW - days(20), accepted=NOW - days(20), shipped=NOW - days(19), ship_by=NOW - days(18),
                  delivered=NOW - days(5), status="delivered")
    # The window's first instant is in, one before it out; a late order returned later still counts.
    history.shipped(NOW - days(30), late=True, status="returned")
    history.shipped(NOW - days(30) - timedelta(seconds=1), late=True)
    # Not handed over yet, even if past ship-by: not counted until it ships.
    history.order(created=NOW - days(10), accepted=NOW - days(10), ship_by=NOW - days(7), status="accepted")
    late = figures_of(app, history)["late_shipment_rate"]
    assert (late.numerator, late.denominator) == (3, 6)
    assert late.value == 0.5
    assert late.status == "red"
    assert late.as_dict() | {"from": None, "to": None} == {
        "value": 0.5, "threshold": 0.04, "warning": 0.03, "status": "red", "numerator": 3, "denominator": 6,
        "unit": "rate", "from": None, "to": None}


def test_cancellation_rate_counts_the_merchants_refusals_and_cancellations_of_orders_received_in_seven_days(app, history):
    received = NOW - days(2)
    history.order(created=received, status="refused", closed_by="merchant")
    history.order(created=received, status="refused", closed_by="system")  # deadline passed: refused automatically
    history.order(created=received, status="cancelled", closed_by="merchant")
    history.order(created=received, status="cancelled", closed_by="marketplace")  # the buyer's doing
    history.order(created=received, status="delivered", accepted=received, shipped=received + hours(5))
    history.order(created=received, status="awaiting_acceptance")
    history.order(created=NOW - days(7), status="accepted", accepted=NOW - days(7))  # first instant: in
    history.order(created=NOW - days(7) - timedelta(seconds=1), status="refused", closed_by="merchant")  # out
    history.order(created=NOW, status="refused", closed_by="merchant")  # the period's end is open: out
    cancel = figures_of(app, history)["cancellation_rate"]
    assert (cancel.numerator, cancel.denominator) == (3, 7)
    assert cancel.value == pytest.approx(3 / 7)
    assert cancel.status == "red"


def test_valid_tracking_rate_checks_each_number_against_its_carriers_formats(app, history):
    at = NOW - days(3)
    history.shipped(at, carrier="cdek", tracking="1234567890")
    history.shipped(at, carrier="cdek", tracking="12345")  # CDEK numbers have ten digits
    history.shipped(at, carrier="russian_post", tracking="RA123456789RU")
    history.shipped(at, carrier="russian_post", tracking="12345678901234")
    history.shipped(at, carrier="dpd", tracking="RU123456789X")  # a character too many: the match is in full
    history.shipped(at, carrier="nobody", tracking="1234567890")  # not a carrier the marketplace knows
    history.shipped(at, carrier="boxberry", tracking="")
    history.shipped(at, carrier="own_courier", tracking="CUR-0001")
    tracking = figures_of(app, history)["valid_tracking_rate"]
    assert (tracking.numerator, tracking.denominator) == (4, 8)
    assert tracking.status == "red"
    # An operator's change of a carrier's formats checks its orders again: with no formats, any number that is
    # not empty is valid; with a format the old numbers do not match, they all turn invalid. Python's own
    # regular expressions, as the handover reads them (an inline flag, a named group: no database engine's).
    for formats, expected in (([], 5), ([r"CD\d{10}"], 3), ([r"(?i)cd\d{8}", r"(?P<n>\d{5})"], 4)):
        with app.app_context():
            db = get_session()
            cdek = db.scalar(select(Carrier).where(Carrier.code == "cdek"))
            update_carrier(db, cdek, replace(CarrierValues.of(cdek), tracking_patterns=formats))
        tracking = figures_of(app, history)["valid_tracking_rate"]
        assert (tracking.numerator, tracking.denominator) == (expected, 8)


def test_acceptance_and_handling_times_are_the_median_and_ninetieth_percentile_in_hours(app, history):
    for waited in (1, 2, 3, 4, 10):
        created = NOW - days(3)
        history.order(created=created, accepted=created + hours(waited), status="accepted")
    history.order(created=NOW - days(40), accepted=NOW - days(40) + hours(100), status="accepted")  # outside
    for took in (24, 48):
        accepted = NOW - days(5)
        history.order(created=accepted - hours(1), accepted=accepted, shipped=accepted + hours(took))
    figures = figures_of(app, history)
    acceptance, handling = figures["acceptance_time"], figures["handling_time"]
    # The five and the two shipped ones (accepted an hour after arrival): 1, 1, 1, 2, 3, 4, 10. Interpolated
    # like PostgreSQL's percentile_cont: the median is the 4th, p90 lies at rank 5.4: 4 + 0.4 × (10 − 4).
    assert acceptance.denominator == 7
    assert acceptance.median == pytest.approx(2)
    assert acceptance.value == pytest.approx(6.4)
    assert handling.median == pytest.approx(36)
    assert handling.value == pytest.approx(45.6)
    assert handling.status == "amber"  # 36 h ≤ 45.6 h < 48 h
    assert acceptance.as_dict()["p90"] == acceptance.value and acceptance.as_dict()["median"] == acceptance.median


def test_catalog_metrics_count_active_products_requests_and_applied_uploads(app, history):
    history.product("A", readiness="ready", marketplace_category_id=1, required_count=4, filled_required=4)
    history.product("B", readiness="incomplete", marketplace_category_id=1, required_count=4, filled_required=2)
    history.product("C", readiness="unmapped")
    history.product("D", readiness="incomplete", marketplace_category_id=1, required_count=4, filled_required=0,
                    status="inactive")
    with app.app_context():
        db = get_session()
        mid = history.merchant_id
        db.add_all([
            FillInRequest(merchant_id=mid, status="open", due_at=NOW - days(1)),
            FillInRequest(merchant_id=mid, status="open", due_at=NOW + days(1)),
            FillInRequest(merchant_id=mid, status="open"),
            FillInRequest(merchant_id=mid, status="closed", due_at=NOW - days(3)),
            Upload(merchant_id=mid, filename="a.csv", storage_key="k", status="applied", rows=100, rejected=3,
                   finished_at=NOW - days(2)),
            Upload(merchant_id=mid, filename="b.csv", storage_key="k", status="applied", rows=50, rejected=2,
                   finished_at=NOW - days(29)),
            Upload(merchant_id=mid, filename="c.csv", storage_key="k", status="previewed", rows=10, rejected=10,
                   dry_run=True, finished_at=NOW - days(1)),
            Upload(merchant_id=mid, filename="d.csv", storage_key="k", status="applied", rows=10, rejected=10,
                   finished_at=NOW - days(31)),
        ])
        db.commit()
    figures = figures_of(app, history)
    assert (figures["catalog_completeness"].numerator, figures["catalog_completeness"].denominator) == (6, 8)
    assert figures["catalog_completeness"].status == "red"  # 75 % ≤ 80 %
    assert (figures["share_ready"].numerator, figures["share_ready"].denominator) == (1, 3)
    assert figures["open_fill_in_requests"].value == 3
    assert figures["overdue_fill_in_requests"].value == 1
    assert figures["overdue_fill_in_requests"].status == "amber"
    rejection = figures["upload_rejection_rate"]
    assert (rejection.numerator, rejection.denominator) == (5, 150)
    assert rejection.status == "amber"  # 3.3 %: between 2 % and 5 %


def test_sales_count_kept_orders_and_top_products_rank_by_revenue(app, history):
    at = NOW - days(1)
    history.order(created=at, lines=[("TEA", 2, "150.00"), ("CUP", 1, "99.50")])
    history.order(created=at, lines=[("CUP", 3, "99.50")], status="accepted", accepted=at)
    history.order(created=at, lines=[("TEA", 5, "150.00")], status="refused", closed_by="merchant")
    history.order(created=at, lines=[("POT", 1, "1000.00")], status="cancelled", closed_by="marketplace")
    history.order(created=NOW - days(31), lines=[("PAN", 9, "10.00")])
    figures = figures_of(app, history)
    assert figures["orders"].value == 2
    assert figures["units"].value == 6
    assert figures["revenue"].value == Decimal("698.00")
    with app.app_context():
        top = top_products(get_session(), STAFF, history.merchant_id, Period.last(30, NOW))
    assert [(p["sku"], p["units"], p["revenue"], p["orders"]) for p in top] == [
        ("CUP", 4, Decimal("398.00"), 2), ("TEA", 2, Decimal("300.00"), 1)]


def test_a_chosen_period_applies_to_every_windowed_metric_with_whole_days(app, history):
    history.shipped(NOW - days(60), late=True)
    history.order(created=NOW - days(60), status="refused", closed_by="merchant")
    first, last = (NOW - days(61)).date(), (NOW - days(59)).date()
    figures = figures_of(app, history, period=Period.days(first, last))
    assert (figures["late_shipment_rate"].numerator, figures["late_shipment_rate"].denominator) == (1, 1)
    assert (figures["cancellation_rate"].numerator, figures["cancellation_rate"].denominator) == (1, 2)
    # The same day as a one-day period: its midnight to the next.
    day = (NOW - days(60)).date()
    figures = figures_of(app, history, period=Period.days(day, day))
    assert figures["late_shipment_rate"].denominator == 1
    assert figures_of(app, history, period=Period.days(day + timedelta(days=1), day + timedelta(days=1)))[
        "late_shipment_rate"].status == "no_data"


def test_early_warning_names_the_at_risk_orders_that_would_push_the_rate_over(app, history):
    for i in range(30):
        history.shipped(NOW - days(1 + i % 20))
    at_risk = [history.order(created=NOW - days(2), accepted=NOW - days(2), ship_by=NOW + hours(h), status="accepted")
               for h in (-2, 3)]
    history.order(created=NOW - days(1), accepted=NOW - days(1), ship_by=NOW + days(3), status="accepted")  # not yet
    with app.app_context():
        found = health(get_session(), STAFF, history.merchant_id, now=NOW)
    assert found.figures["late_shipment_rate"].status == "green"
    [warning] = [w for w in found.warnings if w.metric.key == "late_shipment_rate"]
    assert warning.orders == 2 and len(warning.order_numbers) == 2
    assert warning.projected == pytest.approx(2 / 32)
    assert (warning.status, warning.projected_status) == ("green", "red")
    assert len(at_risk) == 2


def test_no_warning_when_the_at_risk_orders_would_not_change_the_status(app, history):
    for i in range(100):
        history.shipped(NOW - days(1 + i % 20))
    history.order(created=NOW - days(2), accepted=NOW - days(2), ship_by=NOW + hours(3), status="accepted")
    with app.app_context():
        found = health(get_session(), STAFF, history.merchant_id, now=NOW)
    assert [w for w in found.warnings if w.metric.key == "late_shipment_rate"] == []  # 1/101 stays under 3 %


def test_early_warning_for_orders_about_to_be_refused_automatically(app, history):
    for _ in range(40):
        history.order(created=NOW - days(1), accepted=NOW - days(1), status="accepted")
    history.order(created=NOW - hours(20), status="awaiting_acceptance")  # deadline in 4 h
    with app.app_context():
        found = health(get_session(), STAFF, history.merchant_id, now=NOW)
    [warning] = [w for w in found.warnings if w.metric.key == "cancellation_rate"]
    assert warning.projected == pytest.approx(1 / 41)
    assert warning.projected_status == "amber"


def test_a_merchant_principal_reads_only_its_own_figures(app, factory, history):
    other = History(app, factory.merchant().id)
    other.shipped(NOW - days(1), late=True)
    mine = Principal(role="merchant_admin", merchant_id=history.merchant_id)
    with app.app_context():
        db = get_session()
        assert merchant_figures(db, mine, merchant_ids=[other.merchant_id], now=NOW) == {}
        found = health(db, mine, other.merchant_id, now=NOW)
        assert found.figures["late_shipment_rate"].denominator == 0
        with pytest.raises(PermissionError):
            ranking(db, mine)


def test_ranking_lists_every_merchant_even_without_data(app, factory, history):
    history.shipped(NOW - days(1), late=True)
    quiet = factory.merchant()
    with app.app_context():
        rows = ranking(get_session(), STAFF, now=NOW)
    by_id = {m.id: f for m, f in rows}
    assert by_id[history.merchant_id]["late_shipment_rate"].value == 1.0
    assert by_id[quiet.id]["late_shipment_rate"].status == "no_data"


def test_rollup_counts_each_day_and_the_trend_sums_the_trailing_window(app, history):
    today = NOW.date()
    history.shipped(NOW - days(1), late=True)
    history.shipped(NOW - days(1))
    history.shipped(NOW - days(3))
    history.order(created=NOW - days(2), status="refused", closed_by="system")
    history.order(created=NOW - days(2), status="delivered", accepted=NOW - days(2) + hours(2),
                  lines=[("TEA", 2, "10.00")])
    with app.app_context():
        db = get_session()
        result = rollup(db, days=5, now=NOW)
        assert result["from"] == (today - timedelta(days=4)).isoformat()
        rows = {r.day: r for r in db.query(KpiDaily).filter(KpiDaily.merchant_id == history.merchant_id)}
        yesterday = rows[today - timedelta(days=1)]
        assert (yesterday.shipped, yesterday.shipped_late, yesterday.shipped_valid_tracking) == (2, 1, 2)
        two_ago = rows[today - timedelta(days=2)]
        # The two handed over yesterday came in 30 hours earlier: day −2 too.
        assert (two_ago.received, two_ago.merchant_cancelled, two_ago.orders, two_ago.units) == (4, 1, 3, 4)
        assert two_ago.revenue == Decimal("220.00")
        # Accepted on day −2: the delivered one after 2 h, yesterday's two handovers after 10 h each.
        assert two_ago.acceptance_median == pytest.approx(10)
        assert two_ago.acceptance_p90 == pytest.approx(10)
        assert rows[today].active_products == 2  # today's catalog snapshot
        assert yesterday.active_products is None  # earlier days' catalog cannot be recounted
        # Run again: the same rows, not twice the counts.
        rollup(db, days=5, now=NOW)
        db.expire_all()
        assert db.get(KpiDaily, (history.merchant_id, today - timedelta(days=1))).shipped == 2
        series = trend(db, STAFF, history.merchant_id, today - timedelta(days=3), today)
    assert series["days"] == [today - timedelta(days=i) for i in (3, 2, 1, 0)]
    # Trailing 30 days: day −3 has one on-time handover; from day −1 on, one late of three.
    assert series["series"]["late_shipment_rate"] == [0.0, 0.0, pytest.approx(1 / 3), pytest.approx(1 / 3)]
    # Trailing 7 days of arrivals: one on day −4, four more on day −2 of which one refused automatically.
    assert series["series"]["cancellation_rate"] == [0.0, 0.2, 0.2, 0.2]
    assert series["series"]["orders"] == [0, 3, 0, 0]


def test_rollup_recounts_a_day_whose_orders_changed(app, history):
    order_id = history.order(created=NOW - days(1), status="accepted", accepted=NOW - days(1))
    with app.app_context():
        db = get_session()
        rollup(db, days=3, now=NOW)
        from portal.orders.models import Order

        order = db.get(Order, order_id)
        order.status, order.closed_by = "cancelled", "merchant"
        db.commit()
        rollup(db, days=3, now=NOW)
        db.expire_all()
        row = db.get(KpiDaily, (history.merchant_id, (NOW - days(1)).date()))
        assert (row.received, row.merchant_cancelled, row.orders) == (1, 1, 0)


def test_rollup_refuses_a_silly_number_of_days(app):
    with app.app_context(), pytest.raises(ValueError):
        rollup(get_session(), days=0, now=NOW)


def test_period_of_whole_days_is_inclusive():
    period = Period.days(date(2026, 11, 1), date(2026, 11, 3))
    assert period.length_days == 3
    assert period.last_day == date(2026, 11, 3)


def test_the_first_rollup_counts_the_whole_history_and_later_ones_the_last_days(app, history):
    history.shipped(NOW - days(100), late=True)
    history.shipped(NOW - days(1))
    with app.app_context():
        db = get_session()
        first = rollup(db, now=NOW)
        assert first["from"] == (NOW - days(100) - hours(30)).date().isoformat()  # the oldest order's arrival
        again = rollup(db, now=NOW)
        assert again["from"] == (NOW.date() - timedelta(days=7)).isoformat()
        assert db.get(KpiDaily, (history.merchant_id, (NOW - days(100)).date())).shipped_late == 1


def test_warnings_speak_of_the_metrics_now_whatever_period_the_page_shows(app, history):
    for i in range(50):
        history.shipped(NOW - days(1 + i % 20))
    history.order(created=NOW - days(2), accepted=NOW - days(2), ship_by=NOW + hours(3), status="accepted")
    long_ago = Period.days((NOW - days(200)).date(), (NOW - days(170)).date())
    with app.app_context():
        shown = health(get_session(), STAFF, history.merchant_id, period=long_ago, now=NOW)
    assert shown.figures["late_shipment_rate"].denominator == 0  # nothing handed over back then
    assert shown.warnings == []  # 1 of 51 handed over in the last 30 days would stay green
