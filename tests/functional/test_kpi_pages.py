"""The merchant's Performance page, staff's drill-down and the home page's account health, through the test client."""
from __future__ import annotations

import json
import re
from datetime import datetime, timedelta, timezone

import pytest

from portal.db import get_session
from portal.kpi.services import rollup
from tests.support.kpi import History, days, hours

CHART_RE = r'<script type="application/json" id="{}">(.*?)</script>'


def chart(html: str, chart_id: str) -> dict:
    match = re.search(CHART_RE.format(re.escape(chart_id)), html, re.S)
    assert match, f"no chart {chart_id} on the page"
    return json.loads(match.group(1))


def card(html: str, key: str) -> str:
    """The HTML of one metric's card."""
    match = re.search(rf'<div class="card h-100 kpi-card[^"]*" id="kpi-{key}".*?<script', html, re.S)
    assert match, f"no card for {key}"
    return match.group(0)


def active_period(html: str) -> str | None:
    match = re.search(r'class="nav-link py-1 active" data-period="([^"]+)"', html)
    return match.group(1) if match else None


@pytest.fixture
def now() -> datetime:
    """The pages read the real clock: the orders are placed relative to it, taken when the test runs."""
    return datetime.now(timezone.utc)


@pytest.fixture
def merchant(factory):
    return factory.merchant(name="Чайная лавка")


@pytest.fixture
def history(app, merchant) -> History:
    return History(app, merchant.id)


@pytest.fixture
def admin(factory, merchant):
    return factory.user("merchant_admin", merchant)


def roll_up(app, now: datetime, days_back: int = 40) -> None:
    with app.app_context():
        rollup(get_session(), days=days_back, now=now)


@pytest.fixture
def at_risk_story(app, history, now):
    """40 orders handed over in the last 20 days, one of them late (2.5 %), and three at risk now: shipped
    late they would make it 4 of 43 (9.3 %)."""
    for i in range(40):
        history.shipped(now - days(1 + i % 20), late=(i == 0), lines=[("TEA", 2, "50.00")])
    risky = [history.order(created=now - days(2), accepted=now - days(2), ship_by=now + hours(h), status="accepted")
             for h in (-1, 3, 5)]
    history.order(created=now - days(1), accepted=now - days(1), ship_by=now + days(3), status="accepted")  # not yet
    roll_up(app, now)
    return risky


def test_merchant_sees_each_metric_with_its_status_formula_counts_and_thresholds(at_risk_story, admin, auth):
    auth.login(admin.email)
    response = auth.client.get("/kpi/")
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    late = card(html, "late_shipment_rate")
    assert "2.5 %" in late
    assert 'data-status="green"' in late and "Good" in late
    assert "1 of 40 orders handed to the carrier" in late
    assert "last 30 days" in late
    assert "target below 4.0 %" in late and "amber from 3.0 %" in late
    assert "orders handed to the carrier after their ship-by time / orders handed to the carrier" in late
    tracking = card(html, "valid_tracking_rate")
    assert "100.0 %" in tracking and "target above 95.0 %" in tracking and "amber at 97.0 % or below" in tracking
    assert "the catalog as it is now" in card(html, "share_ready")
    assert 'id="kpi-group-orders"' in html and 'id="kpi-group-catalog"' in html
    # Nothing the CSP would block: no inline code, no style attributes.
    assert not re.search(r"<script(?![^>]*(src=|type=\"application/json\"))", html)
    assert " style=" not in html


def test_early_warning_names_the_count_the_orders_and_the_projected_rate(at_risk_story, admin, auth, app):
    auth.login(admin.email)
    html = auth.client.get("/kpi/").get_data(as_text=True)
    warnings = re.search(r'id="kpi-warnings".*?</div>', html, re.S).group(0)
    assert "Shipping these 3 at-risk orders late would take your late shipment rate to 9.3 %." in warnings
    for order_id in at_risk_story:
        assert f'href="/orders/{order_id}"' in warnings
    # The overall status stays green: the warning is about what may come.
    assert re.search(r'id="kpi-overall">.*?data-status="green"', html, re.S)


def test_charts_hold_the_daily_series_with_the_thresholds(at_risk_story, admin, auth, now):
    auth.login(admin.email)
    html = auth.client.get("/kpi/").get_data(as_text=True)
    late = chart(html, "kpi-chart-late-shipment-rate")
    assert late["kind"] == "trend" and late["unit"] == "percent" and late["better"] == "lower"
    assert (late["warning"], late["threshold"]) == (0.03, 0.04)
    assert late["labels_text"] == {"warning": "Amber line", "threshold": "Red line"}
    values = late["series"][0]["values"]
    assert len(late["labels"]) == len(values) == 90  # standard windows: the last 90 days
    # Today's trailing 30 days hold every handover: one late of 40.
    assert values[-1] == pytest.approx(1 / 40)
    assert values[0] is None  # nothing handed over in the 30 days before the chart's first day
    handling = chart(html, "kpi-chart-handling-time")
    assert handling["unit"] == "hours" and handling["unit_suffix"] == "h"
    assert handling["series"][0]["values"][-2] == pytest.approx(20)  # handed over 20 h after acceptance
    sales = chart(html, "kpi-chart-sales")
    assert sales["kind"] == "sales"
    # The 40 handed over (2 units of 50.00 each) and the 4 accepted ones still to ship (1 unit of 100.00).
    assert sum(sales["orders"]) == 44 and sum(sales["units"]) == 84
    assert sum(float(v) for v in sales["revenue"]) == pytest.approx(4400)
    assert sales["labels_text"] == {"orders": "Orders", "units": "Units", "revenue": "Revenue"}
    assert 'id="kpi-sales-orders">44<' in html and 'id="kpi-sales-revenue">4,400.00<' in html
    assert "<code>TEA</code>" in re.search(r'id="kpi-top-products".*?</table>', html, re.S).group(0)
    assert "Charts from the daily figures, up to" in html


@pytest.mark.parametrize("days_chosen", [7, 30, 90])
def test_a_period_of_days_applies_to_every_metric_and_chart(days_chosen, app, history, admin, auth, now):
    history.shipped(now - days(3), late=True)
    history.shipped(now - days(20))
    history.shipped(now - days(60))
    roll_up(app, now, days_back=100)
    auth.login(admin.email)
    html = auth.client.get(f"/kpi/?days={days_chosen}").get_data(as_text=True)
    assert active_period(html) == str(days_chosen)
    expected = {7: "1 of 1 order", 30: "1 of 2 orders", 90: "1 of 3 orders"}[days_chosen]
    late = card(html, "late_shipment_rate")
    assert expected in late
    assert f"last {days_chosen} days" in late
    # The cancellation rate too is counted over the chosen days, not its own seven.
    assert f"last {days_chosen} days" in card(html, "cancellation_rate")
    assert len(chart(html, "kpi-chart-late-shipment-rate")["labels"]) == days_chosen + 1  # partial first day
    assert 'id="kpi-period-errors"' not in html


def test_a_custom_period_of_whole_days(app, history, admin, auth, now):
    history.shipped(now - days(60), late=True)
    history.shipped(now - days(10))
    roll_up(app, now, days_back=100)
    first, last = (now - days(61)).date(), (now - days(59)).date()
    auth.login(admin.email)
    html = auth.client.get(f"/kpi/?date_from={first}&date_to={last}").get_data(as_text=True)
    assert active_period(html) is None
    assert 'class="btn btn-sm btn-primary" type="submit"' in html  # the custom period's button is on
    late = card(html, "late_shipment_rate")
    assert "1 of 1 order handed" in late and "100.0 %" in late
    values = chart(html, "kpi-chart-late-shipment-rate")["series"][0]["values"]
    assert len(values) == 3 and values[1] == 1.0
    assert f'value="{first}"' in html and f'value="{last}"' in html


@pytest.mark.parametrize("query, message", [
    ("days=5", "“5” is not a period the page offers: choose 7, 30 or 90 days."),
    ("days=abc", "“abc” is not a period the page offers"),
    ("date_from=yesterday&date_to=2026-01-01", "“yesterday” is not a date: give the first day as YYYY-MM-DD."),
    ("date_from=2026-02-30&date_to=2026-03-01", "“2026-02-30” is not a date"),
    ("date_from=2025-03-10&date_to=2025-03-01", "The first day (Mar 10, 2025) is after the last day (Mar 1, 2025)."),
    ("date_from=2023-01-01&date_to=2024-12-31", "A period can cover at most 366 days; this one covers 731."),
    ("date_from=2024-01-01", "Choose the last day of the period."),
    ("date_to=2024-01-01", "Choose the first day of the period."),
    ("date_from={today}&date_to={tomorrow}", "The period cannot end in the future"),
    ("date_from=0001-01-01&date_to=0001-01-02", "The period cannot start before Jan 1, 2000."),
    ("date_from=9999-12-31&date_to=9999-12-31", "The period cannot end in the future"),
])
def test_a_period_that_cannot_be_used_says_why_and_shows_the_standard_windows(query, message, admin, auth, now):
    today = now.date()
    auth.login(admin.email)
    response = auth.client.get("/kpi/?" + query.format(today=today, tomorrow=today + timedelta(days=1)))
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    errors = re.search(r'id="kpi-period-errors">.*?</div>\s*</div>', html, re.S).group(0)
    assert message in errors.replace("&#34;", '"').replace("&#39;", "'")
    assert "Showing the standard windows instead." in errors
    assert active_period(html) == "standard"
    assert len(chart(html, "kpi-chart-late-shipment-rate")["labels"]) == 90


def test_a_whole_year_ending_today_is_allowed(admin, auth, now):
    today = now.date()
    auth.login(admin.email)
    html = auth.client.get(f"/kpi/?date_from={today - timedelta(days=365)}&date_to={today}").get_data(as_text=True)
    assert 'id="kpi-period-errors"' not in html
    assert len(chart(html, "kpi-chart-late-shipment-rate")["labels"]) == 366


def test_a_merchant_without_orders_sees_no_data_and_empty_charts(admin, auth):
    auth.login(admin.email)
    response = auth.client.get("/kpi/")
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    assert 'data-status="no_data"' in card(html, "late_shipment_rate") and "No data" in html
    assert "0 of 0 orders handed to the carrier" in card(html, "late_shipment_rate")
    assert 'id="kpi-warnings"' not in html
    assert 'id="kpi-no-sales"' in html
    assert "have not been counted yet" in html
    assert set(chart(html, "kpi-chart-late-shipment-rate")["series"][0]["values"]) == {None}
    assert re.search(r'id="kpi-overall">.*?data-status="no_data"', html, re.S)


def test_the_page_in_russian(at_risk_story, admin, auth):
    auth.login(admin.email)
    auth.post("/language", {"lang": "ru", "next": "/kpi/"})
    response = auth.client.get("/kpi/?days=30")
    assert response.status_code == 200
    assert '<html lang="ru">' in response.get_data(as_text=True)


def test_the_report_downloads_get_the_period_and_the_merchant(app, admin, auth, factory, merchant):
    """The reports' part of the page (kpi/_reports.html) is given the current period's arguments."""
    from flask import template_rendered

    seen: list[dict] = []

    def record(sender, template, context, **extra):
        if template.name == "kpi/index.html":
            seen.append(context["period_args"])

    with template_rendered.connected_to(record, app):
        auth.login(admin.email)
        auth.client.get("/kpi/?days=7")
        auth.client.get("/kpi/?date_from=2025-01-01&date_to=2025-01-31")
        auth.client.get("/kpi/?days=8")  # refused: the standard windows, no period arguments
        auth.logout()
        auth.login(factory.user("operator_admin").email)
        auth.client.get(f"/kpi/merchants/{merchant.id}?days=30")
    assert seen == [{"days": 7}, {"date_from": "2025-01-01", "date_to": "2025-01-31"}, {},
                    {"days": 30, "merchant": merchant.id}]


@pytest.mark.parametrize("role", ["operator_admin", "category_manager"])
def test_staff_drill_down_to_one_merchant(role, at_risk_story, merchant, factory, auth):
    auth.login(factory.user(role).email)
    response = auth.client.get(f"/kpi/merchants/{merchant.id}?days=30")
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    assert "Performance of Чайная лавка" in html
    assert "1 of 40 orders handed to the carrier" in card(html, "late_shipment_rate")
    assert "would take the merchant's late shipment rate to 9.3 %" in html.replace("&#39;", "'")
    # Category managers have no order desk: the numbers are shown, not linked.
    assert ('href="/orders/' in html) is (role == "operator_admin")
    assert f'href="/kpi/merchants/{merchant.id}?days=7"' in html  # the selector stays on this merchant
    assert auth.client.get("/kpi/merchants/999999").status_code == 404


@pytest.mark.parametrize("role", ["operator_admin", "category_manager"])
def test_staff_opening_the_merchant_page_go_to_the_ranking(role, factory, auth, app):
    auth.login(factory.user(role).email)
    response = auth.client.get("/kpi/")
    assert response.status_code == 302
    target = "/kpi/ranking" if "kpi.ranking" in app.view_functions else "/"
    with app.test_request_context():
        from flask import url_for

        if "kpi.ranking" in app.view_functions:
            target = url_for("kpi.ranking")
    assert response.headers["Location"].endswith(target)


@pytest.mark.parametrize("role", ["merchant_admin", "merchant_staff"])
def test_merchant_users_cannot_drill_down_even_into_their_own_merchant(role, at_risk_story, merchant, factory, auth):
    other = factory.merchant(name="Другой магазин")
    auth.login(factory.user(role, merchant).email)
    for target in (other.id, merchant.id, 999999):
        response = auth.client.get(f"/kpi/merchants/{target}")
        assert response.status_code == 403
        assert "Другой магазин" not in response.get_data(as_text=True)


def test_a_merchant_user_sees_only_their_own_figures(app, at_risk_story, factory, auth):
    """Another merchant's orders never show on a merchant's page, whatever the query asks."""
    other = factory.merchant()
    stranger = factory.user("merchant_admin", other)
    auth.login(stranger.email)
    html = auth.client.get(f"/kpi/?merchant={at_risk_story[0]}&merchant_id=1").get_data(as_text=True)
    assert "0 of 0 orders handed to the carrier" in card(html, "late_shipment_rate")
    assert 'id="kpi-warnings"' not in html
    assert set(chart(html, "kpi-chart-late-shipment-rate")["series"][0]["values"]) == {None}
    assert sum(chart(html, "kpi-chart-sales")["orders"]) == 0


def test_anonymous_visitors_are_sent_to_sign_in(client):
    response = client.get("/kpi/")
    assert response.status_code == 302 and "/login" in response.headers["Location"]


@pytest.mark.parametrize("role", ["merchant_admin", "merchant_staff"])
def test_home_shows_the_account_health_with_the_warnings(role, at_risk_story, merchant, factory, auth):
    auth.login(factory.user(role, merchant).email)
    html = auth.client.get("/").get_data(as_text=True)
    health = re.search(r'id="account-health".*?id="account-health-metrics".*?</ul>', html, re.S).group(0)
    assert 'href="/kpi/"' in health
    assert "Shipping these 3 at-risk orders late would take your late shipment rate to 9.3 %." in health
    rows = dict(re.findall(r'data-metric="(\w+)">\s*<a[^>]*>[^<]*</a>\s*<span><span class="me-2 kpi-value">([^<]*)<', health))
    assert rows["late_shipment_rate"] == "2.5 %"
    assert len(rows) == 9


def test_home_of_a_new_merchant_shows_health_without_data(factory, auth):
    auth.login(factory.user("merchant_admin").email)
    html = auth.client.get("/").get_data(as_text=True)
    assert 'id="account-health"' in html and "No data" in html
