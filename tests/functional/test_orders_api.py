"""The orders API: intake by the marketplace, reading orders, transitions with idempotency keys."""
from __future__ import annotations

import pytest

from tests.support.orders import SHIP, bearer, carriers, order_payload, post_order, set_carrier_active, shop, stock_of


@pytest.fixture(autouse=True)
def _carriers(app):
    """Shipping needs a configured carrier."""
    carriers(app)


@pytest.fixture
def s(app, factory):
    return shop(app, factory)


def test_the_marketplace_posts_an_order_and_gets_its_id_number_and_status(client, s, app):
    response = post_order(client, s, [("TEA-1", 2)], number="MP-100")
    assert response.status_code == 201
    body = response.get_json()
    assert (body["order_number"], body["status"], body["merchant"], body["total"]) == ("MP-100", "awaiting_acceptance",
                                                                                      s.slug, "200.00")
    assert isinstance(body["id"], int)
    assert body["shipping_address"]["city"] == "Казань"
    assert stock_of(app, s.merchant.id, "TEA-1") == (10, 2)


def test_posting_the_same_order_again_answers_200_with_the_stored_order(client, s, app):
    payload = order_payload(s, [("TEA-1", 2)])
    first = client.post("/api/v1/orders", json=payload, headers=bearer(s.operator_secret))
    again = client.post("/api/v1/orders", json=payload, headers=bearer(s.operator_secret))
    assert (first.status_code, again.status_code) == (201, 200)
    assert again.get_json()["id"] == first.get_json()["id"]
    assert stock_of(app, s.merchant.id, "TEA-1") == (10, 2)
    changed = dict(payload, lines=[{"sku": "CUP-2", "quantity": 1, "unit_price": "5.00"}])
    conflict = client.post("/api/v1/orders", json=changed, headers=bearer(s.operator_secret))
    assert conflict.status_code == 409
    assert conflict.get_json()["error"]["code"] == "order_number_conflict"


def test_only_an_operator_token_may_post_orders(client, s):
    payload = order_payload(s)
    assert client.post("/api/v1/orders", json=payload, headers=bearer(s.merchant_secret)).status_code == 403
    assert client.post("/api/v1/orders", json=payload).status_code == 401


def test_a_short_order_answers_409_naming_the_lines(client, s, app):
    response = post_order(client, s, [("TEA-1", 1), ("CUP-2", 6)])
    assert response.status_code == 409
    error = response.get_json()["error"]
    assert error["code"] == "insufficient_stock"
    assert error["details"]["lines"] == [{"line": 2, "sku": "CUP-2", "requested": 6, "available": 5}]
    assert "CUP-2" in error["message"]
    assert stock_of(app, s.merchant.id, "TEA-1") == (10, 0)


@pytest.mark.parametrize("change, where", [
    ({"merchant": "nobody"}, "merchant"),
    ({"lines": [{"sku": "NOPE", "quantity": 1, "unit_price": "1.00"}]}, "lines[0].sku"),
    ({"lines": [{"sku": "TEA-1", "quantity": -1, "unit_price": "1.00"}]}, "lines[0].quantity"),
    ({"lines": [{"sku": "TEA-1", "quantity": 1, "unit_price": "0.001"}]}, "lines[0].unit_price"),
    ({"lines": [{"sku": "TEA-1", "quantity": 1, "unit_price": "-5"}]}, "lines[0].unit_price"),
])
def test_domain_errors_answer_422_with_the_field_named(client, s, change, where):
    response = client.post("/api/v1/orders", json={**order_payload(s), **change}, headers=bearer(s.operator_secret))
    assert response.status_code == 422
    error = response.get_json()["error"]
    assert error["code"] == "invalid_order"
    assert error["details"]["field"] == where
    assert error["message"]


@pytest.mark.parametrize("change", [
    {"lines": [{"sku": "TEA-1", "quantity": 1.5, "unit_price": "1.00"}]},
    {"lines": [{"sku": "TEA-1", "quantity": "2", "unit_price": "1.00"}]},
    {"lines": [{"sku": "TEA-1", "unit_price": "1.00"}]},
    {"lines": [{"sku": "TEA-1", "quantity": 1, "unit_price": "cheap"}]},
    {"shipping_address": {"name": "A"}},
    {"created_at": "2026-11-01T10:00:00"},  # no time zone
    {"order_number": "bad number with spaces"},
])
def test_malformed_orders_answer_422_with_the_fields_in_details(client, s, app, change):
    response = client.post("/api/v1/orders", json={**order_payload(s), **change}, headers=bearer(s.operator_secret))
    assert response.status_code == 422
    assert response.get_json()["error"]["details"]
    assert stock_of(app, s.merchant.id, "TEA-1") == (10, 0)


def test_the_marketplaces_own_times_are_kept(client, s):
    response = post_order(client, s, created_at="2026-10-01T08:00:00+03:00", acceptance_deadline="2026-10-02T08:00:00+03:00",
                          ship_by="2026-10-03T20:00:00Z")
    body = response.get_json()
    assert (body["created_at"], body["acceptance_deadline"], body["ship_by"]) == (
        "2026-10-01T05:00:00+00:00", "2026-10-02T05:00:00+00:00", "2026-10-03T20:00:00+00:00")


def test_merchants_read_their_own_orders_and_operators_everyones(client, app, factory, s):
    other = shop(app, factory)
    mine = post_order(client, s).get_json()["id"]
    theirs = post_order(client, other).get_json()["id"]
    own = client.get("/api/v1/orders", headers=bearer(s.merchant_secret)).get_json()
    assert [o["id"] for o in own["items"]] == [mine]
    everyone = client.get("/api/v1/orders", headers=bearer(s.operator_secret)).get_json()
    assert {o["id"] for o in everyone["items"]} == {mine, theirs}
    one = client.get(f"/api/v1/orders?merchant={other.slug}", headers=bearer(s.operator_secret)).get_json()
    assert [o["id"] for o in one["items"]] == [theirs]
    unknown = client.get("/api/v1/orders?merchant=nobody", headers=bearer(s.operator_secret))
    assert unknown.status_code == 422
    assert client.get(f"/api/v1/orders/{theirs}", headers=bearer(s.merchant_secret)).status_code == 404


def test_the_list_pages_with_next_and_filters_by_status(client, s):
    ids = [post_order(client, s).get_json()["id"] for _ in range(3)]
    client.post(f"/api/v1/orders/{ids[1]}/accept", headers=bearer(s.merchant_secret))
    first = client.get("/api/v1/orders?limit=2", headers=bearer(s.merchant_secret)).get_json()
    assert [o["id"] for o in first["items"]] == ids[:2]
    second = client.get(first["next"], headers=bearer(s.merchant_secret)).get_json()
    assert ([o["id"] for o in second["items"]], second["next"]) == ([ids[2]], None)
    accepted = client.get("/api/v1/orders?status=accepted", headers=bearer(s.merchant_secret)).get_json()
    assert [o["id"] for o in accepted["items"]] == [ids[1]]


def test_an_order_comes_with_its_history(client, s):
    order_id = post_order(client, s).get_json()["id"]
    client.post(f"/api/v1/orders/{order_id}/accept", headers=bearer(s.merchant_secret))
    body = client.get(f"/api/v1/orders/{order_id}", headers=bearer(s.merchant_secret)).get_json()
    assert [(e["transition"], e["to_status"], e["actor"]) for e in body["history"]] == [
        ("create", "awaiting_acceptance", "token"), ("accept", "accepted", "token")]


def test_merchant_accepts_ships_and_the_marketplace_delivers(client, s, app):
    order_id = post_order(client, s, [("CUP-2", 2)]).get_json()["id"]
    merchant, operator = bearer(s.merchant_secret), bearer(s.operator_secret)
    assert client.post(f"/api/v1/orders/{order_id}/accept", headers=merchant).get_json()["status"] == "accepted"
    shipped = client.post(f"/api/v1/orders/{order_id}/ship",
                          json={"tracking_number": "RA123456789RU", "carrier": "russian_post"},
                          headers=merchant).get_json()
    assert (shipped["status"], shipped["carrier"], shipped["tracking_number"]) == ("shipped", "russian_post",
                                                                                 "RA123456789RU")
    assert stock_of(app, s.merchant.id, "CUP-2") == (3, 0)
    assert client.post(f"/api/v1/orders/{order_id}/deliver", headers=merchant).status_code == 403
    assert client.post(f"/api/v1/orders/{order_id}/deliver", headers=operator).get_json()["status"] == "delivered"


def _accepted(client, s) -> int:
    order_id = post_order(client, s, [("CUP-2", 2)]).get_json()["id"]
    assert client.post(f"/api/v1/orders/{order_id}/accept", headers=bearer(s.merchant_secret)).status_code == 200
    return order_id


def _ship(client, s, order_id: int, **body):
    return client.post(f"/api/v1/orders/{order_id}/ship", json=body, headers=bearer(s.merchant_secret))


def test_shipping_with_an_unknown_carrier_answers_422_naming_it_and_the_valid_codes(client, s, app):
    order_id = _accepted(client, s)
    response = _ship(client, s, order_id, carrier="pigeon_post", tracking_number="1234567890")
    assert response.status_code == 422
    error = response.get_json()["error"]
    assert (error["code"], error["details"]["field"]) == ("invalid_order", "carrier")
    assert error["message"].startswith("There is no carrier pigeon_post; the carriers are ")
    assert {"boxberry", "cdek", "dpd", "own_courier", "russian_post"} <= set(error["details"]["carriers"])
    assert all(code in error["message"] for code in error["details"]["carriers"])
    order = client.get(f"/api/v1/orders/{order_id}", headers=bearer(s.merchant_secret)).get_json()
    assert (order["status"], order["carrier"], order["tracking_number"]) == ("accepted", None, None)
    assert stock_of(app, s.merchant.id, "CUP-2") == (5, 2)


def test_shipping_without_a_carrier_answers_422_for_the_carrier(client, s):
    response = _ship(client, s, _accepted(client, s), tracking_number="1234567890")
    assert (response.status_code, response.get_json()["error"]["details"]["field"]) == (422, "carrier")


def test_a_tracking_number_in_another_format_answers_422_naming_the_expected_format(client, s, app):
    order_id = _accepted(client, s)
    response = _ship(client, s, order_id, carrier="cdek", tracking_number="RA123456789RU")
    assert response.status_code == 422
    error = response.get_json()["error"]
    assert error["details"] == {"field": "tracking_number", "carrier": "cdek", "formats": [r"\d{10}"]}
    assert error["message"] == r"RA123456789RU is not a tracking number of СДЭК (expected: \d{10})."
    assert stock_of(app, s.merchant.id, "CUP-2") == (5, 2)


def test_shipping_without_a_tracking_number_answers_422(client, s):
    order_id = _accepted(client, s)
    for body in ({"carrier": "cdek"}, {"carrier": "cdek", "tracking_number": "   "}):
        response = _ship(client, s, order_id, **body)
        assert response.status_code == 422
        error = response.get_json()["error"]
        assert (error["details"]["field"], error["message"]) == ("tracking_number",
                                                                 "A tracking number of СДЭК is required.")


def test_an_inactive_carrier_cannot_ship(client, s, app):
    set_carrier_active(app, "dpd", False)
    order_id = _accepted(client, s)
    response = _ship(client, s, order_id, carrier="dpd", tracking_number="RU123456789")
    assert response.status_code == 422
    error = response.get_json()["error"]
    assert error["details"]["field"] == "carrier" and "dpd" not in error["details"]["carriers"]
    assert error["message"].startswith("The carrier dpd is not active; the active carriers are ")


def test_a_valid_carrier_and_tracking_number_ship_the_order_and_are_stored(client, s, app):
    order_id = _accepted(client, s)
    response = _ship(client, s, order_id, carrier="boxberry", tracking_number="BB12345678")
    assert response.status_code == 200
    assert {k: response.get_json()[k] for k in ("status", "carrier", "tracking_number")} == {
        "status": "shipped", "carrier": "boxberry", "tracking_number": "BB12345678"}
    stored = client.get(f"/api/v1/orders/{order_id}", headers=bearer(s.merchant_secret)).get_json()
    assert (stored["carrier"], stored["tracking_number"]) == ("boxberry", "BB12345678")
    assert stock_of(app, s.merchant.id, "CUP-2") == (3, 0)


def test_an_illegal_transition_answers_409_with_the_current_state(client, s):
    order_id = post_order(client, s).get_json()["id"]
    response = client.post(f"/api/v1/orders/{order_id}/ship", headers=bearer(s.merchant_secret))
    assert response.status_code == 409
    error = response.get_json()["error"]
    assert (error["code"], error["details"]["status"]) == ("illegal_transition", "awaiting_acceptance")
    assert "awaiting acceptance" in error["message"]


def test_refusing_without_a_reason_answers_422_and_with_one_releases_the_stock(client, s, app):
    order_id = post_order(client, s, [("TEA-1", 4)]).get_json()["id"]
    no_reason = client.post(f"/api/v1/orders/{order_id}/refuse", json={}, headers=bearer(s.merchant_secret))
    assert no_reason.status_code == 422
    assert no_reason.get_json()["error"]["details"] == {"field": "reason"}
    refused = client.post(f"/api/v1/orders/{order_id}/refuse", json={"reason": "Нет на складе"},
                          headers=bearer(s.merchant_secret))
    assert (refused.status_code, refused.get_json()["closed_by"]) == (200, "merchant")
    assert stock_of(app, s.merchant.id, "TEA-1") == (10, 0)


def test_a_retried_call_with_the_same_idempotency_key_returns_the_first_answer(client, s, app):
    order_id = post_order(client, s).get_json()["id"]
    headers = {**bearer(s.merchant_secret), "Idempotency-Key": "accept-once"}
    first = client.post(f"/api/v1/orders/{order_id}/accept", headers=headers)
    again = client.post(f"/api/v1/orders/{order_id}/accept", headers=headers)
    assert (first.status_code, again.status_code) == (200, 200)
    assert again.get_json() == first.get_json()
    without_key = client.post(f"/api/v1/orders/{order_id}/accept", headers=bearer(s.merchant_secret))
    assert without_key.status_code == 409


def test_the_openapi_document_describes_the_order_routes(client):
    paths = client.get("/api/v1/openapi.json").get_json()["paths"]
    assert {"/api/v1/orders", "/api/v1/orders/{order_id}", "/api/v1/orders/{order_id}/{transition}"} <= set(paths)
    assert "post" in paths["/api/v1/orders"] and "get" in paths["/api/v1/orders"]


def test_a_repeat_gets_the_first_answer_even_after_the_order_moved_on(client, s):
    order_id = post_order(client, s).get_json()["id"]
    headers = {**bearer(s.merchant_secret), "Idempotency-Key": "k-accept"}
    first = client.post(f"/api/v1/orders/{order_id}/accept", headers=headers).get_json()
    shipped = client.post(f"/api/v1/orders/{order_id}/ship", json=SHIP, headers=bearer(s.merchant_secret))
    assert shipped.status_code == 200
    again = client.post(f"/api/v1/orders/{order_id}/accept", headers=headers)
    assert (again.status_code, again.get_json()) == (200, first)
    assert first["status"] == "accepted"


def test_idempotency_keys_do_not_let_a_merchant_replay_the_marketplaces_transitions(client, s):
    order_id = post_order(client, s).get_json()["id"]
    client.post(f"/api/v1/orders/{order_id}/accept", headers=bearer(s.merchant_secret))
    client.post(f"/api/v1/orders/{order_id}/ship", json=SHIP, headers=bearer(s.merchant_secret))
    key = {"Idempotency-Key": "deliver-1"}
    assert client.post(f"/api/v1/orders/{order_id}/deliver", headers={**bearer(s.operator_secret), **key}).status_code == 200
    assert client.post(f"/api/v1/orders/{order_id}/deliver", headers={**bearer(s.merchant_secret), **key}).status_code == 403
    too_long = client.post(f"/api/v1/orders/{order_id}/return", json={"reason": "брак"},
                           headers={**bearer(s.operator_secret), "Idempotency-Key": "x" * 129})
    assert too_long.status_code == 422


def test_a_retry_writing_the_same_times_in_another_zone_is_the_same_order(client, s):
    payload = order_payload(s, created_at="2026-11-20T13:00:00+03:00", ship_by="2026-11-22T10:00:00Z")
    first = client.post("/api/v1/orders", json=payload, headers=bearer(s.operator_secret))
    retry = dict(payload, created_at="2026-11-20T10:00:00Z", ship_by="2026-11-22T13:00:00+03:00",
                 shipping_address={**payload["shipping_address"], "country": "ru"})
    again = client.post("/api/v1/orders", json=retry, headers=bearer(s.operator_secret))
    assert (first.status_code, again.status_code, again.get_json()["id"]) == (201, 200, first.get_json()["id"])


def test_a_merchant_token_naming_another_merchant_still_lists_only_its_own_orders(client, app, factory, s):
    other = shop(app, factory)
    post_order(client, other)
    mine = post_order(client, s).get_json()["id"]
    for slug in (other.slug, "no-such-shop"):
        response = client.get(f"/api/v1/orders?merchant={slug}", headers=bearer(s.merchant_secret))
        assert response.status_code == 200
        assert [o["id"] for o in response.get_json()["items"]] == [mine]


def test_the_next_link_is_built_from_the_query_not_echoed(client, s):
    for _ in range(2):
        post_order(client, s)
    response = client.get("/api/v1/orders?limit=1&_external=0&status=awaiting_acceptance", headers=bearer(s.merchant_secret))
    assert response.status_code == 200
    next_url = response.get_json()["next"]
    assert "status=awaiting_acceptance" in next_url and "_external" not in next_url
