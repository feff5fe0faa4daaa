"""The shipments API: a merchant builds, packs and hands over a shipment; the marketplace reports its journey."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from tests.support.orders import bearer, carriers, pickup_day, post_order, set_carrier_active, shop, stock_of

TOMORROW = pickup_day().isoformat()  # the next weekday: the carriers pick up on weekdays
CDEK_TRACKING = "1234567890"
PACKED = {"weight_grams": 1200, "length_mm": 300, "width_mm": 200, "height_mm": 100}


@pytest.fixture(autouse=True)
def _carriers(app):
    """Shipping needs the configured carriers; every test starts with empty tables."""
    carriers(app)


@pytest.fixture
def s(app, factory):
    return shop(app, factory, {"TEA-1": 10, "CUP-2": 5})


def _accepted(client, s, lines=(("TEA-1", 1),)) -> int:
    order_id = post_order(client, s, list(lines)).get_json()["id"]
    assert client.post(f"/api/v1/orders/{order_id}/accept", headers=bearer(s.merchant_secret)).status_code == 200
    return order_id


def _create(client, s, order_ids, **changes):
    body = {"order_ids": order_ids, "carrier": "cdek", "pickup_date": TOMORROW, **changes}
    return client.post("/api/v1/shipments", json=body, headers=bearer(s.merchant_secret))


def _shipment(client, s, order_ids, **changes) -> dict:
    response = _create(client, s, order_ids, **changes)
    assert response.status_code == 201, response.get_json()
    return response.get_json()


def _get(client, s, shipment_id, secret=None):
    return client.get(f"/api/v1/shipments/{shipment_id}", headers=bearer(secret or s.merchant_secret))


def _patch(client, s, shipment_id, package_id, **body):
    return client.patch(f"/api/v1/shipments/{shipment_id}/packages/{package_id}", json=body,
                        headers=bearer(s.merchant_secret))


def _pack(client, s, shipment: dict, first_tracking: int = int(CDEK_TRACKING)) -> dict:
    """Weigh, measure and track every package (tracking numbers counting up from ``first_tracking``)."""
    for n, package in enumerate(shipment["packages"]):
        response = _patch(client, s, shipment["id"], package["id"], **PACKED,
                          tracking_number=f"{first_tracking + n:010d}")
        assert response.status_code == 200, response.get_json()
    return _get(client, s, shipment["id"]).get_json()


def _post(client, secret, path, body=None):
    return client.post(path, json=body, headers=bearer(secret))


def _order(client, s, order_id) -> dict:
    return client.get(f"/api/v1/orders/{order_id}", headers=bearer(s.merchant_secret)).get_json()


def _error(response, status):
    assert response.status_code == status, response.get_json()
    return response.get_json()["error"]


# --- the journey --------------------------------------------------------------------------------------------------


def test_a_merchant_packs_splits_and_hands_over_in_one_call_and_the_orders_are_shipped(client, s, app):
    first, second = _accepted(client, s, [("TEA-1", 3), ("CUP-2", 1)]), _accepted(client, s, [("CUP-2", 2)])
    shipment = _shipment(client, s, [first, second])
    assert (shipment["status"], shipment["carrier"], shipment["carrier_name"], shipment["merchant"]) == (
        "draft", "cdek", "СДЭК", s.slug)
    assert shipment["number"] == f"SHP-{shipment['id']:06d}" and shipment["pickup_date"] == TOMORROW
    assert [(o["id"], o["status"]) for o in shipment["orders"]] == [(first, "accepted"), (second, "accepted")]
    assert [(p["order_id"], sorted(line["quantity"] for line in p["lines"])) for p in shipment["packages"]] == [
        (first, [1, 3]), (second, [2])]
    assert any("no weight" in problem for problem in shipment["problems"])

    shipment = _pack(client, s, shipment)
    assert shipment["problems"] == []
    package = shipment["packages"][0]
    assert (package["tracking_number"], package["tracking_url"]) == (
        CDEK_TRACKING, f"https://www.cdek.ru/ru/tracking?order_id={CDEK_TRACKING}")
    tea = next(line for line in package["lines"] if line["sku"] == "TEA-1")
    split = _post(client, s.merchant_secret, f"/api/v1/shipments/{shipment['id']}/packages/{package['id']}/split",
                  {"lines": [{"order_line_id": tea["order_line_id"], "quantity": 2}]})
    assert split.status_code == 201, split.get_json()
    shipment = split.get_json()
    new = shipment["packages"][-1]
    assert (new["order_id"], new["lines"]) == (first, [{"order_line_id": tea["order_line_id"], "sku": "TEA-1",
                                                        "quantity": 2}])
    assert any(new["code"] in problem for problem in shipment["problems"])
    # The split package's contents changed: it is weighed and measured again, like the new one.
    assert any(f"{package['code']} has no weight" in problem for problem in shipment["problems"])
    assert _patch(client, s, shipment["id"], new["id"], **PACKED, tracking_number="1234567899").status_code == 200
    assert _patch(client, s, shipment["id"], package["id"], **PACKED).status_code == 200

    handed = _post(client, s.merchant_secret, f"/api/v1/shipments/{shipment['id']}/handover")
    assert handed.status_code == 200, handed.get_json()
    body = handed.get_json()
    assert body["status"] == "handed_over" and body["ready_at"] and body["handed_over_at"]
    assert [e["transition"] for e in body["history"]][-2:] == ["ready", "handover"]
    assert [(e["from_status"], e["to_status"], e["actor"]) for e in body["history"][-2:]] == [
        ("draft", "ready", "token"), ("ready", "handed_over", "token")]
    for order_id, tracking in ((first, CDEK_TRACKING), (second, "1234567891")):
        order = _order(client, s, order_id)
        assert (order["status"], order["tracking_number"], order["carrier"]) == ("shipped", tracking, "cdek")
        assert order["shipped_at"] == body["handed_over_at"]
    assert stock_of(app, s.merchant.id, "TEA-1") == (7, 0) and stock_of(app, s.merchant.id, "CUP-2") == (2, 0)

    events = f"/api/v1/shipments/{body['id']}/events"
    assert _error(_post(client, s.merchant_secret, events, {"event": "in_transit"}), 403)["code"] == (
        "operator_token_required")
    in_transit = _post(client, s.operator_secret, events, {"event": "in_transit"})
    assert (in_transit.status_code, in_transit.get_json()["status"]) == (200, "in_transit")
    future = (datetime.now(timezone.utc) + timedelta(hours=1)).isoformat()
    too_early = (datetime.fromisoformat(body["handed_over_at"]) - timedelta(hours=1)).isoformat()
    for at in (future, too_early):  # a carrier's event comes after the last step, and not from the future
        wrong = _error(_post(client, s.operator_secret, events, {"event": "delivered", "at": at}), 422)
        assert wrong["details"]["field"] == "at"
    moment = (datetime.now(timezone.utc) + timedelta(minutes=2)).replace(microsecond=0)  # clocks differ a little
    delivered = _post(client, s.operator_secret, events, {"event": "delivered", "at": moment.isoformat()})
    assert delivered.get_json()["status"] == "delivered", delivered.get_json()
    assert delivered.get_json()["delivered_at"] == moment.isoformat()
    assert [_order(client, s, order_id)["status"] for order_id in (first, second)] == ["delivered", "delivered"]
    again = _error(_post(client, s.operator_secret, events, {"event": "in_transit"}), 409)
    assert (again["code"], again["details"]["status"]) == ("illegal_transition", "delivered")


def test_ready_and_reopen_are_separate_steps_and_an_illegal_one_answers_409(client, s):
    shipment = _pack(client, s, _shipment(client, s, [_accepted(client, s)]))
    path = f"/api/v1/shipments/{shipment['id']}"
    error = _error(_post(client, s.merchant_secret, f"{path}/reopen"), 409)
    assert (error["code"], error["details"]["status"], error["details"]["allowed"]) == (
        "illegal_transition", "draft", ["ready"])
    assert _post(client, s.merchant_secret, f"{path}/ready").get_json()["status"] == "ready"
    changed = _error(_patch(client, s, shipment["id"], shipment["packages"][0]["id"], weight_grams=5), 409)
    assert changed["details"]["status"] == "ready"
    assert _post(client, s.merchant_secret, f"{path}/reopen").get_json()["status"] == "draft"
    assert _error(_post(client, s.operator_secret, f"{path}/ready"), 403)["code"] == "transition_forbidden"
    assert _error(_post(client, s.operator_secret, f"{path}/handover"), 403)["code"] == "transition_forbidden"
    assert _get(client, s, shipment["id"]).get_json()["status"] == "draft"


def test_orders_and_packages_come_and_go_while_the_shipment_is_a_draft(client, s):
    first, second = _accepted(client, s, [("TEA-1", 2)]), _accepted(client, s)
    shipment = _shipment(client, s, [first])
    path = f"/api/v1/shipments/{shipment['id']}"
    added = _post(client, s.merchant_secret, f"{path}/orders", {"order_ids": [second]})
    assert [o["id"] for o in added.get_json()["orders"]] == [first, second]
    package = added.get_json()["packages"][0]
    split = _post(client, s.merchant_secret, f"{path}/packages/{package['id']}/split",
                  {"lines": [{"order_line_id": package["lines"][0]["order_line_id"], "quantity": 1}]}).get_json()
    assert len(split["packages"]) == 3
    merged = client.delete(f"{path}/packages/{split['packages'][-1]['id']}", headers=bearer(s.merchant_secret))
    assert merged.status_code == 200
    assert [[line["quantity"] for line in p["lines"]] for p in merged.get_json()["packages"]] == [[2], [1]]
    only = client.delete(f"{path}/packages/{package['id']}", headers=bearer(s.merchant_secret))
    assert _error(only, 422)["details"]["field"] == "package"
    removed = client.delete(f"{path}/orders/{second}", headers=bearer(s.merchant_secret))
    assert [o["id"] for o in removed.get_json()["orders"]] == [first]
    assert _error(client.delete(f"{path}/orders/{second}", headers=bearer(s.merchant_secret)), 404)
    assert client.delete(path, headers=bearer(s.merchant_secret)).status_code == 204
    assert _get(client, s, shipment["id"]).status_code == 404
    assert _shipment(client, s, [first, second])["status"] == "draft"  # the orders are free again


def test_a_package_is_addressed_through_its_own_shipment(client, s):
    one, other = _shipment(client, s, [_accepted(client, s)]), _shipment(client, s, [_accepted(client, s)])
    wrong = _patch(client, s, one["id"], other["packages"][0]["id"], weight_grams=100)
    assert _error(wrong, 404)["code"] == "not_found"
    assert _get(client, s, other["id"]).get_json()["packages"][0]["weight_grams"] == 0


# --- what is refused ----------------------------------------------------------------------------------------------


def test_a_tracking_number_in_the_wrong_format_answers_422_naming_the_field(client, s):
    shipment = _shipment(client, s, [_accepted(client, s)])
    package = shipment["packages"][0]
    error = _error(_patch(client, s, shipment["id"], package["id"], tracking_number="RA123456789RU"), 422)
    assert (error["code"], error["details"]["field"], error["details"]["package"]) == (
        "invalid_shipment", "tracking_number", package["code"])
    assert "СДЭК" in error["message"]
    assert _get(client, s, shipment["id"]).get_json()["packages"][0]["tracking_number"] is None


def test_a_package_heavier_than_the_carrier_takes_answers_422_for_the_weight(client, s):
    shipment = _shipment(client, s, [_accepted(client, s)], carrier="boxberry")  # 15 kg at most
    package = shipment["packages"][0]
    error = _error(_patch(client, s, shipment["id"], package["id"], weight_grams=15_001), 422)
    assert error["details"]["field"] == "weight_grams" and "15 kg" in error["message"]
    assert _error(_patch(client, s, shipment["id"], package["id"], length_mm=0), 422)["details"]["field"] == "length_mm"
    assert _get(client, s, shipment["id"]).get_json()["packages"][0]["weight_grams"] == 0


def test_another_merchants_order_is_not_found_and_nothing_is_stored(client, s, app, factory):
    theirs = _accepted(client, shop(app, factory, {"TEA-1": 3}))
    error = _error(_create(client, s, [_accepted(client, s), theirs]), 422)
    assert error["details"]["field"] == "order_ids[1]"
    assert error["message"].startswith("There is no order")
    assert client.get("/api/v1/shipments", headers=bearer(s.merchant_secret)).get_json()["items"] == []


@pytest.mark.parametrize("changes, field", [
    ({"carrier": "pigeon"}, "carrier"),
    ({"pickup_date": (datetime.now(timezone.utc) - timedelta(days=1)).date().isoformat()}, "pickup_date"),
    ({"pickup_date": (datetime.now(timezone.utc) + timedelta(days=90)).date().isoformat()}, "pickup_date"),
    ({"order_ids": []}, "order_ids"),
])
def test_a_bad_carrier_date_or_order_list_answers_422_naming_the_field(client, s, changes, field):
    body = {"order_ids": [_accepted(client, s)], **changes}
    error = _error(_create(client, s, **body), 422)
    assert (error["code"], error["details"]["field"]) == ("invalid_shipment", field)


def test_an_inactive_carrier_is_refused(client, s, app):
    set_carrier_active(app, "dpd", False)
    assert _error(_create(client, s, [_accepted(client, s)], carrier="dpd"), 422)["details"]["field"] == "carrier"


def test_an_order_not_yet_accepted_answers_422(client, s):
    waiting = post_order(client, s).get_json()["id"]
    error = _error(_create(client, s, [waiting]), 422)
    assert error["details"]["field"] == "order_ids[0]" and "only accepted orders" in error["message"]


@pytest.mark.parametrize("body, field", [
    ({"order_ids": "1", "carrier": "cdek", "pickup_date": TOMORROW}, "order_ids"),
    ({"order_ids": [1.5], "carrier": "cdek", "pickup_date": TOMORROW}, "order_ids"),
    ({"order_ids": [1], "pickup_date": TOMORROW}, "carrier"),
    ({"order_ids": [1], "carrier": "cdek", "pickup_date": "tomorrow"}, "pickup_date"),
])
def test_a_malformed_body_answers_422_from_the_schema(client, s, body, field):
    response = client.post("/api/v1/shipments", json=body, headers=bearer(s.merchant_secret))
    error = _error(response, 422)
    assert field in error["details"]["json"]


def test_a_malformed_package_or_split_answers_422(client, s):
    shipment = _shipment(client, s, [_accepted(client, s, [("TEA-1", 2)])])
    package = shipment["packages"][0]
    path = f"/api/v1/shipments/{shipment['id']}/packages/{package['id']}"
    assert "weight_grams" in _error(_patch(client, s, shipment["id"], package["id"], weight_grams="1kg"),
                                    422)["details"]["json"]
    line_id = package["lines"][0]["order_line_id"]
    twice = _post(client, s.merchant_secret, f"{path}/split",
                  {"lines": [{"order_line_id": line_id, "quantity": 1}, {"order_line_id": line_id, "quantity": 1}]})
    assert _error(twice, 422)["details"]["field"] == "lines[1].order_line_id"
    everything = _post(client, s.merchant_secret, f"{path}/split",
                       {"lines": [{"order_line_id": line_id, "quantity": 2}]})
    assert _error(everything, 422)["details"]["field"] == "lines"
    assert "lines" in _error(_post(client, s.merchant_secret, f"{path}/split", {}), 422)["details"]["json"]


def test_an_order_already_in_another_shipment_answers_409(client, s):
    order_id = _accepted(client, s)
    first = _shipment(client, s, [order_id])
    error = _error(_create(client, s, [order_id]), 409)
    assert error["code"] == "order_in_shipment"
    assert error["details"] == {"order_id": order_id, "shipment_id": first["id"]}
    assert first["number"] in error["message"]


def test_an_operator_token_cannot_build_a_shipment(client, s):
    body = {"order_ids": [_accepted(client, s)], "carrier": "cdek", "pickup_date": TOMORROW}
    response = client.post("/api/v1/shipments", json=body, headers=bearer(s.operator_secret))
    assert _error(response, 403)["code"] == "transition_forbidden"


def test_an_empty_shipment_cannot_be_handed_over(client, s):
    order_id = _accepted(client, s)
    shipment = _shipment(client, s, [order_id])
    client.delete(f"/api/v1/shipments/{shipment['id']}/orders/{order_id}", headers=bearer(s.merchant_secret))
    error = _error(_post(client, s.merchant_secret, f"/api/v1/shipments/{shipment['id']}/handover"), 422)
    assert "no orders" in error["message"] and error["details"]["problems"] == ["The shipment has no orders."]
    body = _get(client, s, shipment["id"]).get_json()
    assert body["status"] == "draft" and [e["transition"] for e in body["history"]] == ["create", "remove_order"]


def test_handing_over_an_unpacked_draft_changes_nothing(client, s):
    order_id = _accepted(client, s)
    shipment = _shipment(client, s, [order_id])
    error = _error(_post(client, s.merchant_secret, f"/api/v1/shipments/{shipment['id']}/handover"), 422)
    assert error["code"] == "invalid_shipment" and len(error["details"]["problems"]) > 1
    assert _get(client, s, shipment["id"]).get_json()["status"] == "draft"
    assert _order(client, s, order_id)["status"] == "accepted"


def test_a_failed_handover_changes_nothing(client, s, app):
    first, second = _accepted(client, s, [("TEA-1", 3)]), _accepted(client, s, [("CUP-2", 1)])
    shipment = _pack(client, s, _shipment(client, s, [first, second]))
    path = f"/api/v1/shipments/{shipment['id']}"
    assert _post(client, s.merchant_secret, f"{path}/ready").get_json()["status"] == "ready"
    cancelled = _post(client, s.operator_secret, f"/api/v1/orders/{second}/cancel", {"reason": "the buyer left"})
    assert cancelled.status_code == 200
    number = _order(client, s, second)["order_number"]
    error = _error(_post(client, s.merchant_secret, f"{path}/handover"), 422)
    assert number in error["message"] and "cancelled" in error["message"]
    body = _get(client, s, shipment["id"]).get_json()
    assert body["status"] == "ready" and body["handed_over_at"] is None
    assert any(number in problem for problem in body["problems"])
    assert _order(client, s, first)["status"] == "accepted" and _order(client, s, first)["tracking_number"] is None
    assert stock_of(app, s.merchant.id, "TEA-1") == (10, 3)


# --- documents ----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["labels", "packing-slips", "handover-act"])
def test_the_documents_download_as_pdf_attachments(client, s, name):
    shipment = _pack(client, s, _shipment(client, s, [_accepted(client, s)]))
    path = f"/api/v1/shipments/{shipment['id']}/documents/{name}.pdf"
    for url in (path, f"{path}?lang=ru"):
        response = client.get(url, headers=bearer(s.merchant_secret))
        assert response.status_code == 200
        assert response.mimetype == "application/pdf"
        assert response.headers["Content-Disposition"] == f'attachment; filename="{shipment["number"]}-{name}.pdf"'
        assert response.data.startswith(b"%PDF")
    assert _error(client.get(f"{path}?lang=de", headers=bearer(s.merchant_secret)), 422)
    assert client.get(path, headers=bearer(s.operator_secret)).status_code == 200


def test_labels_of_a_shipment_without_packages_answer_422(client, s):
    order_id = _accepted(client, s)
    shipment = _shipment(client, s, [order_id])
    client.delete(f"/api/v1/shipments/{shipment['id']}/orders/{order_id}", headers=bearer(s.merchant_secret))
    for name in ("labels", "packing-slips", "handover-act"):
        response = client.get(f"/api/v1/shipments/{shipment['id']}/documents/{name}.pdf",
                              headers=bearer(s.merchant_secret))
        error = _error(response, 422)
        assert (error["code"], error["details"]) == ("invalid_shipment", {"document": name})
        assert shipment["number"] in error["message"]
    unknown = client.get(f"/api/v1/shipments/{shipment['id']}/documents/invoice.pdf", headers=bearer(s.merchant_secret))
    assert unknown.status_code == 404


# --- lists and tenancy --------------------------------------------------------------------------------------------


def test_the_list_pages_with_next_and_filters_by_status(client, s):
    ids = [_shipment(client, s, [_accepted(client, s)])["id"] for _ in range(3)]
    ready = _pack(client, s, _get(client, s, ids[1]).get_json())
    assert _post(client, s.merchant_secret, f"/api/v1/shipments/{ready['id']}/ready").status_code == 200
    first = client.get("/api/v1/shipments?limit=2", headers=bearer(s.merchant_secret)).get_json()
    assert [item["id"] for item in first["items"]] == ids[:2]
    assert "history" not in first["items"][0] and first["items"][0]["packages"][0]["lines"]
    second = client.get(first["next"], headers=bearer(s.merchant_secret)).get_json()
    assert ([item["id"] for item in second["items"]], second["next"]) == ([ids[2]], None)
    by_status = client.get("/api/v1/shipments?status=ready", headers=bearer(s.merchant_secret)).get_json()
    assert [item["id"] for item in by_status["items"]] == [ids[1]]
    open_ones = client.get("/api/v1/shipments?status=open", headers=bearer(s.merchant_secret)).get_json()
    assert [item["id"] for item in open_ones["items"]] == ids
    assert _error(client.get("/api/v1/shipments?status=lost", headers=bearer(s.merchant_secret)), 422)


def test_merchants_list_their_own_shipments_and_an_operator_everyones(client, s, app, factory):
    other = shop(app, factory, {"TEA-1": 3})
    mine, theirs = _shipment(client, s, [_accepted(client, s)]), _shipment(client, other, [_accepted(client, other)])
    own = client.get(f"/api/v1/shipments?merchant={other.slug}", headers=bearer(s.merchant_secret)).get_json()
    assert [item["id"] for item in own["items"]] == [mine["id"]]
    everyone = client.get("/api/v1/shipments", headers=bearer(s.operator_secret)).get_json()
    assert [(item["id"], item["merchant"]) for item in everyone["items"]] == [(mine["id"], s.slug),
                                                                             (theirs["id"], other.slug)]
    one = client.get(f"/api/v1/shipments?merchant={other.slug}", headers=bearer(s.operator_secret)).get_json()
    assert [item["id"] for item in one["items"]] == [theirs["id"]]
    unknown = _error(client.get("/api/v1/shipments?merchant=nobody", headers=bearer(s.operator_secret)), 422)
    assert unknown["details"] == {"field": "merchant"}
    assert _get(client, s, theirs["id"], secret=s.operator_secret).status_code == 200


def test_another_merchants_token_gets_404_and_changes_nothing(client, s, app, factory):
    order_id = _accepted(client, s)
    shipment = _pack(client, s, _shipment(client, s, [order_id]))
    package = shipment["packages"][0]
    path = f"/api/v1/shipments/{shipment['id']}"
    other = shop(app, factory, {"TEA-1": 3})
    other_order = _accepted(client, other)
    headers = bearer(other.merchant_secret)
    for response in (
        client.get(path, headers=headers),
        client.post(f"{path}/orders", json={"order_ids": [other_order]}, headers=headers),
        client.delete(f"{path}/orders/{order_id}", headers=headers),
        client.patch(f"{path}/packages/{package['id']}", json={"weight_grams": 5}, headers=headers),
        client.post(f"{path}/packages/{package['id']}/split", json={"lines": []}, headers=headers),
        client.delete(f"{path}/packages/{package['id']}", headers=headers),
        client.post(f"{path}/ready", headers=headers),
        client.post(f"{path}/handover", headers=headers),
        client.get(f"{path}/documents/labels.pdf", headers=headers),
        client.delete(path, headers=headers),
    ):
        assert _error(response, 404)["code"] == "not_found"
    after = _get(client, s, shipment["id"]).get_json()
    assert (after["status"], after["packages"][0]["weight_grams"], [o["id"] for o in after["orders"]]) == (
        "draft", PACKED["weight_grams"], [order_id])


def test_carrier_events_need_an_operator_token_whoever_owns_the_shipment(client, s, app, factory):
    """Why the events route is staff-only in tests/functional/test_tenancy.py: 403 for every merchant token."""
    shipment = _shipment(client, s, [_accepted(client, s)])
    other = shop(app, factory, {"TEA-1": 3})
    for secret in (s.merchant_secret, other.merchant_secret):
        response = _post(client, secret, f"/api/v1/shipments/{shipment['id']}/events", {"event": "delivered"})
        assert _error(response, 403)["code"] == "operator_token_required"
    early = _error(_post(client, s.operator_secret, f"/api/v1/shipments/{shipment['id']}/events",
                         {"event": "delivered"}), 409)
    assert early["details"]["status"] == "draft"
    bad = _post(client, s.operator_secret, f"/api/v1/shipments/{shipment['id']}/events", {"event": "lost"})
    assert "event" in _error(bad, 422)["details"]["json"]
    missing = _post(client, s.operator_secret, "/api/v1/shipments/999999/events", {"event": "delivered"})
    assert _error(missing, 404)["code"] == "not_found"


def test_the_openapi_document_describes_the_shipment_routes(client):
    paths = client.get("/api/v1/openapi.json").get_json()["paths"]
    assert {"/api/v1/shipments", "/api/v1/shipments/{shipment_id}", "/api/v1/shipments/{shipment_id}/{transition}",
            "/api/v1/shipments/{shipment_id}/events",
            "/api/v1/shipments/{shipment_id}/documents/{name}.pdf"} <= set(paths)
    document = paths["/api/v1/shipments/{shipment_id}/documents/{name}.pdf"]["get"]["responses"]["200"]
    assert "application/pdf" in document["content"]
    handover = paths["/api/v1/shipments/{shipment_id}/{transition}"]["post"]["responses"]
    assert {"200", "403", "404", "409", "422"} <= set(handover)
