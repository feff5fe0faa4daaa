"""GET /api/v1/kpi: a merchant's figures, thresholds and early warnings, for its own token or an operator's."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone

import pytest

from tests.support.kpi import History, days, hours
from tests.support.orders import bearer

METRIC_KEYS = {"late_shipment_rate", "cancellation_rate", "valid_tracking_rate", "acceptance_time", "handling_time",
               "catalog_completeness", "share_ready", "open_fill_in_requests", "overdue_fill_in_requests",
               "upload_rejection_rate", "orders", "units", "revenue"}


@dataclass
class Known:
    """A merchant with a history whose figures are known, built relative to the real clock."""

    slug: str
    merchant_id: int
    secret: str
    operator: str
    at_risk_number: str
    now: datetime


def known_history(app, factory, slug: str = "known-shop") -> Known:
    """30 orders handed over on time ten days ago (created 30 h and accepted 20 h before it), one accepted order
    due to ship within two hours (at risk), one refused by the merchant and one cancelled by the marketplace two
    days ago."""
    merchant = factory.merchant(slug=slug)
    history = History(app, merchant.id)
    now = datetime.now(timezone.utc)
    for _ in range(30):
        history.shipped(now - days(10))
    at_risk = history.order(created=now - days(2), accepted=now - days(2) + hours(2), ship_by=now + hours(2),
                            status="accepted")
    history.order(created=now - days(2), status="refused", closed_by="merchant")
    history.order(created=now - days(2), status="cancelled", closed_by="marketplace")
    from portal.db import get_session
    from portal.orders.models import Order

    with app.app_context():
        number = get_session().get(Order, at_risk).order_number
    _, secret = factory.token(merchant)
    _, operator = factory.token(None)
    return Known(slug, merchant.id, secret, operator, number, now)


@pytest.fixture
def known(app, factory) -> Known:
    return known_history(app, factory)


def get_kpi(client, secret: str, **query):
    return client.get("/api/v1/kpi", query_string=query, headers=bearer(secret))


def without_times(payload: dict) -> dict:
    """The payload without each window's bounds, which move with the clock between two calls."""
    return {k: ({f: v for f, v in value.items() if f not in ("from", "to")} if k in METRIC_KEYS else value)
            for k, value in payload.items()}


def test_a_merchant_token_gets_its_own_figures_with_their_thresholds(client, known):
    response = get_kpi(client, known.secret)
    assert response.status_code == 200, response.get_json()
    kpi = response.get_json()
    assert set(kpi) == METRIC_KEYS | {"merchant", "warnings"}
    assert kpi["merchant"] == known.slug
    late = kpi["late_shipment_rate"]
    assert {k: late[k] for k in ("value", "threshold", "warning", "status", "numerator", "denominator", "unit")} == {
        "value": 0.0, "threshold": 0.04, "warning": 0.03, "status": "green", "numerator": 0, "denominator": 30,
        "unit": "rate"}
    # Each metric over its own window, ending now: 30 days for late shipment, 7 for cancellations.
    start, end = (datetime.fromisoformat(late[k]) for k in ("from", "to"))
    assert end - start == timedelta(days=30) and abs(end - datetime.now(timezone.utc)) < timedelta(minutes=5)
    cancel = kpi["cancellation_rate"]
    assert (cancel["numerator"], cancel["denominator"], cancel["status"]) == (1, 3, "red")
    assert cancel["value"] == pytest.approx(1 / 3)
    assert datetime.fromisoformat(cancel["to"]) - datetime.fromisoformat(cancel["from"]) == timedelta(days=7)
    assert (kpi["valid_tracking_rate"]["value"], kpi["valid_tracking_rate"]["numerator"]) == (1.0, 30)
    acceptance = kpi["acceptance_time"]
    assert acceptance["denominator"] == 31 and acceptance["numerator"] is None
    assert acceptance["value"] == pytest.approx(10) and acceptance["p90"] == acceptance["value"]
    assert acceptance["median"] == pytest.approx(10)
    assert kpi["handling_time"]["value"] == pytest.approx(20) and kpi["handling_time"]["status"] == "green"
    assert (kpi["orders"]["value"], kpi["units"]["value"], kpi["revenue"]["value"]) == (31, 31, "3100.00")
    ready = kpi["share_ready"]
    assert (ready["numerator"], ready["denominator"], ready["value"]) == (1, 1, 1.0)
    assert kpi["catalog_completeness"]["status"] == "no_data" and kpi["catalog_completeness"]["from"] is None
    # Shipping the order at risk late would take the late shipment rate from 0 % to 1/31: amber.
    assert kpi["warnings"] == [{"metric": "late_shipment_rate", "orders": 1, "order_numbers": [known.at_risk_number],
                                "value": 0.0, "projected": pytest.approx(1 / 31), "status": "green",
                                "projected_status": "amber"}]


def test_a_merchant_token_naming_another_merchant_still_gets_its_own(client, factory, known):
    other = factory.merchant(slug="someone-else")
    History(app=client.application, merchant_id=other.id).shipped(datetime.now(timezone.utc) - days(1), late=True)
    kpi = get_kpi(client, known.secret, merchant="someone-else").get_json()
    assert kpi["merchant"] == known.slug
    assert kpi["late_shipment_rate"]["denominator"] == 30


def test_an_operator_token_names_the_merchant_and_gets_what_its_token_gets(client, known):
    as_operator = get_kpi(client, known.operator, merchant=known.slug)
    assert as_operator.status_code == 200
    assert without_times(as_operator.get_json()) == without_times(get_kpi(client, known.secret).get_json())


def test_an_operator_token_without_a_merchant_answers_422_naming_the_parameter(client, known):
    response = get_kpi(client, known.operator)
    assert response.status_code == 422
    error = response.get_json()["error"]
    assert error["details"] == {"field": "merchant"} and "merchant" in error["message"]


def test_an_unknown_merchant_answers_404(client, known):
    response = get_kpi(client, known.operator, merchant="no-such-shop")
    assert response.status_code == 404
    assert response.get_json()["error"]["details"] == {"field": "merchant"}


def test_without_a_token_the_kpi_answers_401(client, known):
    assert client.get("/api/v1/kpi", query_string={"merchant": known.slug}).status_code == 401


@pytest.mark.parametrize("query, field", [
    ({"days": "5"}, "days"),
    ({"days": "thirty"}, "days"),
    ({"from": "2026-13-01", "to": "2026-12-31"}, "from"),
    ({"from": "2026-01-01", "to": "yesterday"}, "to"),
])
def test_malformed_periods_answer_422_with_the_parameter_in_details(client, known, query, field):
    response = get_kpi(client, known.operator, merchant=known.slug, **query)
    assert response.status_code == 422
    assert list(response.get_json()["error"]["details"]["query"]) == [field]


@pytest.mark.parametrize("query, field", [
    ({"from": "2026-03-02", "to": "2026-03-01"}, "from"),  # from after to
    ({"from": "2025-01-01", "to": "2026-01-02"}, "to"),  # 366 days is the longest: this is 367
    ({"from": "2026-03-01"}, "to"),
    ({"to": "2026-03-01"}, "from"),
    ({"days": "7", "from": "2026-03-01", "to": "2026-03-02"}, "days"),
    ({"from": "9999-12-31", "to": "9999-12-31"}, "from"),  # after today (and past the last date there is)
    ({"from": "0001-01-01", "to": "0001-01-02"}, "from"),  # before 2000
    ({"from": "2026-01-01", "to": "2099-01-01"}, "to"),
])
def test_periods_that_cannot_be_answered_give_422_naming_the_field(client, known, query, field):
    response = get_kpi(client, known.secret, **query)
    assert response.status_code == 422
    error = response.get_json()["error"]
    assert error["details"] == {"field": field} and field in error["message"]


def test_a_year_of_366_days_is_allowed(client, known):
    assert get_kpi(client, known.secret, **{"from": "2024-01-01", "to": "2024-12-31"}).status_code == 200


def test_days_apply_one_window_to_every_windowed_metric(client, known):
    week = get_kpi(client, known.secret, days="7").get_json()
    # The handovers ten days ago fall outside the last 7 days; the catalog is as it is whatever the period.
    assert week["late_shipment_rate"]["denominator"] == 0 and week["late_shipment_rate"]["status"] == "no_data"
    assert week["orders"]["value"] == 1
    assert week["share_ready"]["from"] is None
    for key in ("late_shipment_rate", "cancellation_rate", "orders", "upload_rejection_rate"):
        assert datetime.fromisoformat(week[key]["to"]) - datetime.fromisoformat(week[key]["from"]) == timedelta(days=7)
    quarter = get_kpi(client, known.secret, days="90").get_json()
    assert quarter["cancellation_rate"]["denominator"] == 33  # the 30 handed over were received 11 days ago


def test_from_and_to_are_whole_utc_days_both_included(client, known):
    first, last = (known.now - days(12)).date(), (known.now - days(9)).date()
    kpi = get_kpi(client, known.secret, **{"from": first.isoformat(), "to": last.isoformat()}).get_json()
    late = kpi["late_shipment_rate"]
    assert (late["from"], late["to"]) == (f"{first.isoformat()}T00:00:00+00:00",
                                          f"{(last + timedelta(days=1)).isoformat()}T00:00:00+00:00")
    assert (late["numerator"], late["denominator"]) == (0, 30)
    assert (kpi["cancellation_rate"]["numerator"], kpi["cancellation_rate"]["denominator"]) == (0, 30)
    assert kpi["orders"]["value"] == 30
    one_day = date(2020, 2, 29).isoformat()
    nothing = get_kpi(client, known.secret, **{"from": one_day, "to": one_day}).get_json()
    assert nothing["late_shipment_rate"]["status"] == "no_data" and nothing["orders"]["value"] == 0


def test_the_openapi_document_describes_the_kpi_route_and_its_answer(client):
    spec = client.get("/api/v1/openapi.json").get_json()
    route = spec["paths"]["/api/v1/kpi"]["get"]
    assert {p["name"] for p in route["parameters"]} == {"merchant", "days", "from", "to"}
    assert {"200", "404", "422"} <= set(route["responses"])
    answer = spec["components"]["schemas"]["Kpi"]["properties"]
    assert set(answer) == METRIC_KEYS | {"merchant", "warnings"}
    figure = spec["components"]["schemas"]["Figure"]["properties"]
    assert {"value", "threshold", "status", "numerator", "denominator", "from", "to"} <= set(figure)
    warning = spec["components"]["schemas"]["KpiWarning"]["properties"]
    assert set(warning) == {"metric", "orders", "order_numbers", "value", "projected", "status", "projected_status"}
