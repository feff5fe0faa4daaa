"""The order desk in the browser: the list and its filters, bulk accept and refuse, the order page, exports."""
from __future__ import annotations

import csv
import html
import io
import re
from datetime import datetime, timedelta, timezone

import fastexcel
import pytest

from portal.jobs.services import get_runner
from tests.support.auth import csrf_from
from tests.support.orders import (ADDRESS, SHIP, bearer, carriers, order_status, post_order, set_carrier_active, shop,
                                  stock_of)

MERCHANT_SIDE = {"accept", "refuse", "cancel", "ship"}
REASONS = {"refuse": "Нет в наличии", "cancel": "Покупатель передумал", "return": "Брак"}


@pytest.fixture(autouse=True)
def _carriers(app):
    """Shipping needs a configured carrier."""
    carriers(app)


def _at(hours: float) -> str:
    """A moment ``hours`` from now (negative: ago), the way the marketplace sends it."""
    return (datetime.now(timezone.utc) + timedelta(hours=hours)).isoformat()


def _post(client, a_shop, lines=None, **extra) -> dict:
    response = post_order(client, a_shop, lines, **extra)
    assert response.status_code == 201, response.get_json()
    return response.get_json()


def _advance(client, a_shop, order_id: int, *transitions: str) -> None:
    """Move an order through the API, each step fired by the side allowed to fire it."""
    for name in transitions:
        secret = a_shop.merchant_secret if name in MERCHANT_SIDE else a_shop.operator_secret
        body = {"reason": REASONS[name]} if name in REASONS else dict(SHIP) if name == "ship" else {}
        response = client.post(f"/api/v1/orders/{order_id}/{name}", json=body, headers=bearer(secret))
        assert response.status_code == 200, response.get_json()


def _text(response) -> str:
    return html.unescape(response.get_data(as_text=True))


def _rows(page: str) -> dict[str, str]:
    """The desk's table: order number -> the row's HTML, in the order listed."""
    return dict(re.findall(r'<tr data-order="([^"]+)">(.*?)</tr>', page, re.S))


def _listed(auth, **params) -> list[str]:
    response = auth.client.get("/orders", query_string=params)
    assert response.status_code == 200
    return list(_rows(response.get_data(as_text=True)))


def _counts(page: str) -> dict[str, int]:
    return {name: int(n) for name, n in re.findall(r'data-count="(\w+)">(\d+)<', page)}


def _element(page: str, tag: str, element_id: str) -> str:
    match = re.search(rf'<{tag}[^>]*id="{element_id}".*?</{tag}>', page, re.S)
    assert match, f"no <{tag} id={element_id}> on the page"
    return match.group(0)


def _actions(auth, order_id: int) -> set[str]:
    """The transitions the order page offers as forms."""
    return set(re.findall(r'id="action-(\w+)"', auth.client.get(f"/orders/{order_id}").get_data(as_text=True)))


def _form_data(auth, order_id: int, name: str, **fields: str) -> dict[str, str]:
    """What the browser submits with one of the order page's forms: its CSRF token and idempotency key."""
    form = _element(auth.client.get(f"/orders/{order_id}").get_data(as_text=True), "form", f"action-{name}")
    key = re.search(r'name="idempotency_key"[^>]*value="([^"]+)"', form)
    assert key, "the form carries no idempotency key"
    return {"csrf_token": csrf_from(form), "idempotency_key": key.group(1), **fields}


def _act(auth, order_id: int, name: str, **fields: str) -> str:
    data = _form_data(auth, order_id, name, **fields)
    return _text(auth.client.post(f"/orders/{order_id}/{name}", data=data, follow_redirects=True))


def _history(auth, order_id: int) -> list[str]:
    page = _text(auth.client.get(f"/orders/{order_id}"))
    return re.findall(r'<li class="list-group-item">(.*?)</li>', _element(page, "ol", "order-history"), re.S)


def _bulk(auth, action: str, ids: list[int], reason: str = "") -> str:
    data = {"action": action, "order_id": [str(i) for i in ids], "reason": reason}
    return _text(auth.post("/orders/bulk", data, csrf_page="/orders", follow_redirects=True))


# -- who sees what -------------------------------------------------------------------------------


def test_merchant_admin_and_staff_see_their_own_orders_and_never_another_merchants(app, client, factory, auth):
    a, b = shop(app, factory), shop(app, factory)
    staff = factory.user("merchant_staff", a.merchant)
    own = {_post(client, a)["order_number"] for _ in range(2)}
    other = _post(client, b)
    for user in (a.admin, staff):
        auth.login(user.email)
        page = auth.client.get("/orders").get_data(as_text=True)
        assert set(_rows(page)) == own
        assert other["order_number"] not in page
        assert "<th>Merchant</th>" not in page
        # Naming the other merchant in the address opens nothing of theirs.
        assert _listed(auth, merchant=b.merchant.id) == []
        assert _listed(auth, q=other["order_number"]) == []
        assert _counts(auth.client.get("/orders", query_string={"merchant": b.merchant.id}).get_data(as_text=True)) == {
            "awaiting_acceptance": 0, "accepted": 0, "at_risk": 0}
        assert auth.client.get(f"/orders/{other['id']}").status_code == 404
        auth.logout()


def test_operator_sees_every_merchants_orders_with_the_merchant_and_narrows_to_one(app, client, factory, auth):
    a, b = shop(app, factory), shop(app, factory)
    of_a = _post(client, a)["order_number"]
    of_b = _post(client, b)["order_number"]
    _post(client, b)
    auth.login(factory.user("operator_admin").email)
    page = auth.client.get("/orders").get_data(as_text=True)
    rows = _rows(page)
    assert len(rows) == 3 and {of_a, of_b} <= set(rows)
    assert "<th>Merchant</th>" in page
    assert f'<td class="small">{a.merchant.name}</td>' in rows[of_a]
    assert f'<td class="small">{b.merchant.name}</td>' in rows[of_b]
    assert _counts(page)["awaiting_acceptance"] == 3

    assert _listed(auth, merchant=a.merchant.id) == [of_a]
    narrowed = auth.client.get("/orders", query_string={"merchant": b.merchant.id}).get_data(as_text=True)
    assert len(_rows(narrowed)) == 2 and of_a not in narrowed
    assert _counts(narrowed)["awaiting_acceptance"] == 2
    assert f'<option value="{b.merchant.id}" selected>' in narrowed


def test_operators_cannot_bulk_accept_or_refuse_for_a_merchant(app, client, factory, auth):
    a = shop(app, factory)
    order = _post(client, a)
    auth.login(factory.user("operator_admin").email)
    response = auth.post("/orders/bulk", {"action": "accept", "order_id": str(order["id"])}, csrf_page="/orders")
    assert response.status_code == 403
    assert order_status(app, order["id"]) == "awaiting_acceptance"


def test_a_category_manager_has_no_order_desk(app, client, factory, auth):
    a = shop(app, factory)
    order = _post(client, a)
    auth.login(factory.user("category_manager").email)
    assert auth.client.get("/orders").status_code == 403
    assert auth.client.get(f"/orders/{order['id']}").status_code == 403
    assert auth.post(f"/orders/{order['id']}/cancel", {"reason": "x"}).status_code == 403
    assert auth.post("/orders/export", {"format": "csv"}).status_code == 403
    assert order_status(app, order["id"]) == "awaiting_acceptance"


def test_the_desk_asks_a_signed_out_visitor_to_sign_in(app, client, factory):
    order = _post(client, shop(app, factory))
    for path in ("/orders", f"/orders/{order['id']}"):
        response = client.get(path)
        assert response.status_code == 302 and "/login" in response.headers["Location"]


# -- filters and counts --------------------------------------------------------------------------


def test_status_filter_picks_one_state_or_every_open_one(app, client, factory, auth):
    a = shop(app, factory)
    waiting, accepted, refused, shipped = (_post(client, a)["order_number"] for _ in range(4))
    ids = {o["order_number"]: o["id"] for o in client.get("/api/v1/orders", headers=bearer(a.merchant_secret))
           .get_json()["items"]}
    _advance(client, a, ids[accepted], "accept")
    _advance(client, a, ids[refused], "refuse")
    _advance(client, a, ids[shipped], "accept", "ship")
    auth.login(a.admin.email)
    assert _listed(auth, status="awaiting_acceptance") == [waiting]
    assert _listed(auth, status="accepted") == [accepted]
    assert _listed(auth, status="refused") == [refused]
    assert _listed(auth, status="shipped") == [shipped]
    assert _listed(auth, status="delivered") == []
    assert set(_listed(auth, status="open")) == {waiting, accepted}
    # Newest first when no filter is set; a status the desk does not know filters nothing.
    assert _listed(auth) == [shipped, refused, accepted, waiting]
    assert _listed(auth, status="lost") == [shipped, refused, accepted, waiting]
    counts = _counts(auth.client.get("/orders", query_string={"status": "refused"}).get_data(as_text=True))
    assert (counts["awaiting_acceptance"], counts["accepted"]) == (1, 1)


def test_date_filters_take_whole_utc_days_of_the_creation_time(app, client, factory, auth):
    a = shop(app, factory)
    created = {
        "D-BEFORE": "2025-03-09T23:59:59+00:00",
        "D-MSK-EARLY": "2025-03-10T02:00:00+03:00",  # 23:00 UTC on the 9th
        "D-FIRST": "2025-03-10T00:00:00+00:00",
        "D-LAST": "2025-03-10T23:59:59+00:00",
        "D-MSK-LATE": "2025-03-11T02:30:00+03:00",  # 23:30 UTC on the 10th
        "D-AFTER": "2025-03-11T00:00:00+00:00",
    }
    for number, at in created.items():
        _post(client, a, number=number, created_at=at)
    auth.login(a.admin.email)
    assert set(_listed(auth, date_from="2025-03-10", date_to="2025-03-10")) == {"D-FIRST", "D-LAST", "D-MSK-LATE"}
    assert set(_listed(auth, date_from="2025-03-11")) == {"D-AFTER"}
    assert set(_listed(auth, date_to="2025-03-09")) == {"D-BEFORE", "D-MSK-EARLY"}
    assert set(_listed(auth, date_from="2025-03-10")) == {"D-FIRST", "D-LAST", "D-MSK-LATE", "D-AFTER"}
    assert _listed(auth, date_from="2025-03-12") == []
    assert len(_listed(auth, date_from="2025-13-40")) == 6  # not a day: no filter, rather than an error page


def test_at_risk_lists_open_orders_due_to_ship_within_the_window_soonest_first(app, client, factory, auth):
    a = shop(app, factory)

    def placed(number: str, ship_in: float, created: float = -1, deadline: float = 0.5) -> int:
        return _post(client, a, number=number, created_at=_at(created), acceptance_deadline=_at(deadline),
                     ship_by=_at(ship_in))["id"]

    placed("R-SOON", 2)
    _advance(client, a, placed("R-ACCEPTED", 20), "accept")
    placed("R-OVERDUE", -1, created=-30, deadline=-10)
    placed("R-LATER", 30)
    _advance(client, a, placed("R-REFUSED", 2), "refuse")
    _advance(client, a, placed("R-SHIPPED", 2), "accept", "ship")
    auth.login(a.admin.email)

    assert _listed(auth, at_risk=1) == ["R-OVERDUE", "R-SOON", "R-ACCEPTED"]
    page = auth.client.get("/orders").get_data(as_text=True)
    assert _counts(page) == {"awaiting_acceptance": 3, "accepted": 1, "at_risk": 3}
    rows = _rows(page)
    assert "at risk" in rows["R-SOON"] and "at risk" not in rows["R-LATER"] and "at risk" not in rows["R-SHIPPED"]
    assert set(_listed(auth, at_risk=1, status="accepted")) == {"R-ACCEPTED"}
    # An unticked box (or at_risk=0 in a link) means no at-risk filter.
    assert len(_listed(auth, at_risk=0)) == 6

    app.config["AT_RISK_HOURS"] = 48
    assert _listed(auth, at_risk=1) == ["R-OVERDUE", "R-SOON", "R-ACCEPTED", "R-LATER"]
    page = auth.client.get("/orders").get_data(as_text=True)
    assert _counts(page)["at_risk"] == 4 and "ship-by within 48 h" in page


def test_search_finds_an_order_by_number_number_prefix_sku_or_part_of_the_buyers_name(app, client, factory, auth):
    a = shop(app, factory, {"TEA-1": 10, "CUP-2": 5, "POT-3": 5})
    _post(client, a, [("TEA-1", 1)], number="WB-1001", shipping_address={**ADDRESS, "name": "Иван Петров"})
    _post(client, a, [("CUP-2", 1), ("TEA-1", 1)], number="WB-1002")
    _post(client, a, [("POT-3", 1)], number="OZ-1001", shipping_address={**ADDRESS, "name": "Olga Smith"})
    auth.login(a.admin.email)
    assert _listed(auth, q="WB-1001") == ["WB-1001"]
    assert _listed(auth, q="  WB-1002 ") == ["WB-1002"]
    assert set(_listed(auth, q="WB-")) == {"WB-1001", "WB-1002"}
    assert _listed(auth, q="OZ") == ["OZ-1001"]
    assert _listed(auth, q="CUP-2") == ["WB-1002"]
    assert set(_listed(auth, q="TEA-1")) == {"WB-1001", "WB-1002"}
    assert _listed(auth, q="Смирн") == ["WB-1002"]
    assert _listed(auth, q="Петров") == ["WB-1001"]
    assert _listed(auth, q="smith") == ["OZ-1001"]
    assert _listed(auth, q="wb-1001") == ["WB-1001"]
    # Wildcards are taken literally.
    assert _listed(auth, q="WB_") == [] and _listed(auth, q="%") == []
    assert _listed(auth, q="NOPE-1") == []
    page = auth.client.get("/orders", query_string={"q": "NOPE-1"}).get_data(as_text=True)
    assert "No orders match." in page and 'value="NOPE-1"' in page


def test_search_by_buyer_ignores_the_case_of_cyrillic_letters(app, client, factory, auth):
    a = shop(app, factory)
    _post(client, a, number="WB-2001")
    auth.login(a.admin.email)
    assert _listed(auth, q="смирнова") == ["WB-2001"]


def test_the_list_pages_fifty_orders_at_a_time_and_keeps_the_filters(app, client, factory, auth):
    a = shop(app, factory, {"TEA-1": 60})
    numbers = [_post(client, a, number=f"P-{n:03d}", created_at=f"2025-05-01T10:{n:02d}:00+00:00")["order_number"]
               for n in range(51)]
    _post(client, a, number="P-ACCEPTED")
    _advance(client, a, client.get("/api/v1/orders", query_string={"q": "P-ACCEPTED"},
                                   headers=bearer(a.merchant_secret)).get_json()["items"][0]["id"], "accept")
    auth.login(a.admin.email)
    first = auth.client.get("/orders", query_string={"status": "awaiting_acceptance"}).get_data(as_text=True)
    assert list(_rows(first)) == numbers[::-1][:50]
    next_link = re.search(r'href="([^"]*page=2[^"]*)">Next<', first)
    assert next_link and "status=awaiting_acceptance" in next_link.group(1)
    second = auth.client.get(html.unescape(next_link.group(1))).get_data(as_text=True)
    assert list(_rows(second)) == [numbers[0]]


# -- bulk accept and refuse ----------------------------------------------------------------------


def test_bulk_accept_moves_the_ticked_orders_and_leaves_the_others(app, client, factory, auth):
    a = shop(app, factory)
    one, two, three = (_post(client, a) for _ in range(3))
    auth.login(a.admin.email)
    page = auth.client.get("/orders").get_data(as_text=True)
    for order in (one, two, three):
        assert f'name="order_id" value="{order["id"]}"' in page
    # A refusal reason left in the box does not follow an accept into the history.
    text = _bulk(auth, "accept", [one["id"], two["id"]], reason="typed, then changed my mind")
    assert "2 orders accepted." in text
    assert [order_status(app, o["id"]) for o in (one, two, three)] == ["accepted", "accepted", "awaiting_acceptance"]
    assert stock_of(app, a.merchant.id, "TEA-1") == (10, 3)
    accepted = _history(auth, one["id"])[-1]
    assert "Accepted" in accepted and a.admin.email in accepted and "changed my mind" not in accepted
    # Accepted orders stay tickable, for "Create shipment"; a shipped one is not.
    page = auth.client.get("/orders").get_data(as_text=True)
    assert f'name="order_id" value="{one["id"]}"' in page
    _advance(client, a, one["id"], "ship")
    page = auth.client.get("/orders").get_data(as_text=True)
    assert f'name="order_id" value="{one["id"]}"' not in page


def test_bulk_refuse_with_a_reason_refuses_and_releases_the_stock(app, client, factory, auth):
    a = shop(app, factory)
    one, two = _post(client, a, [("TEA-1", 2)]), _post(client, a, [("CUP-2", 1)])
    assert stock_of(app, a.merchant.id, "TEA-1") == (10, 2)
    auth.login(a.admin.email)
    text = _bulk(auth, "refuse", [one["id"], two["id"]], reason="Склад закрыт на инвентаризацию")
    assert "2 orders refused." in text
    assert order_status(app, one["id"]) == order_status(app, two["id"]) == "refused"
    assert stock_of(app, a.merchant.id, "TEA-1") == (10, 0) and stock_of(app, a.merchant.id, "CUP-2") == (5, 0)
    last = _history(auth, one["id"])[-1]
    assert "Refused" in last and "Склад закрыт на инвентаризацию" in last and a.admin.email in last


def test_bulk_refuse_without_a_reason_changes_nothing_and_says_why(app, client, factory, auth):
    a = shop(app, factory)
    order = _post(client, a)
    auth.login(a.admin.email)
    for reason in ("", "   "):
        text = _bulk(auth, "refuse", [order["id"]], reason=reason)
        assert "Say why the orders are refused: a reason is required." in text
        assert "refused." not in text
    assert order_status(app, order["id"]) == "awaiting_acceptance"
    assert stock_of(app, a.merchant.id, "TEA-1") == (10, 1)


def test_bulk_without_ticks_or_with_an_unknown_action_changes_nothing(app, client, factory, auth):
    a = shop(app, factory)
    order = _post(client, a)
    auth.login(a.admin.email)
    assert "Tick the orders first." in _bulk(auth, "accept", [])
    assert "Choose accept or refuse." in _bulk(auth, "ship", [order["id"]])
    assert order_status(app, order["id"]) == "awaiting_acceptance"


def test_bulk_reports_an_order_that_cannot_move_and_still_moves_the_others(app, client, factory, auth):
    a = shop(app, factory)
    refused, waiting = _post(client, a), _post(client, a)
    _advance(client, a, refused["id"], "refuse")
    auth.login(a.admin.email)
    text = _bulk(auth, "accept", [refused["id"], waiting["id"]])
    assert "1 order accepted." in text
    assert f"{refused['order_number']}: The order is refused; it cannot be accepted." in text
    assert order_status(app, refused["id"]) == "refused" and order_status(app, waiting["id"]) == "accepted"


def test_bulk_leaves_another_merchants_orders_alone(app, client, factory, auth):
    a, b = shop(app, factory), shop(app, factory)
    own, theirs = _post(client, a), _post(client, b)
    auth.login(a.admin.email)
    text = _bulk(auth, "refuse", [theirs["id"], own["id"]], reason="Нет в наличии")
    assert "1 order refused." in text
    assert theirs["order_number"] not in text
    assert order_status(app, theirs["id"]) == "awaiting_acceptance" and order_status(app, own["id"]) == "refused"
    assert stock_of(app, b.merchant.id, "TEA-1") == (10, 1)


def test_bulk_returns_to_the_filtered_list(app, client, factory, auth):
    a = shop(app, factory)
    order = _post(client, a)
    auth.login(a.admin.email)
    response = auth.post("/orders/bulk", {"action": "accept", "order_id": str(order["id"]),
                                          "back": "status=awaiting_acceptance&q=MP"}, csrf_page="/orders")
    assert response.status_code == 302
    assert response.headers["Location"].endswith("/orders?status=awaiting_acceptance&q=MP")
    for back in ("//evil.example/x", "https://evil.example/"):
        response = auth.post("/orders/bulk", {"action": "accept", "order_id": str(order["id"]), "back": back},
                             csrf_page="/orders")
        assert "evil.example" not in response.headers["Location"]


# -- the order page ------------------------------------------------------------------------------


def test_order_page_shows_lines_address_deadlines_and_who_did_what(app, client, factory, auth):
    a = shop(app, factory)
    order = _post(client, a, [("TEA-1", 2), ("CUP-2", 1)], created_at=_at(-1),
                  acceptance_deadline="2099-01-03T09:15:00+00:00", ship_by="2099-01-04T18:45:00+00:00")
    auth.login(a.admin.email)
    page = _text(auth.client.get(f"/orders/{order['id']}"))
    assert order["order_number"] in page
    lines = _element(page, "table", "order-lines")
    assert re.search(r"TEA-1</a></td><td>Товар TEA-1</td>\s*<td class=\"text-end\">2</td>", lines)
    assert "CUP-2" in lines and "300.00 RUB" in lines
    address = _element(page, "address", "order-address")
    for part in ("Анна Смирнова", "ул. Баумана, д. 1, кв. 2", "420111 Казань, RU", "+7 912 345-67-89"):
        assert part in address
    facts = _element(page, "dl", "order-facts")
    assert re.search(r"Acceptance deadline</dt><dd[^>]*>Jan 3, 2099, 9:15:00\sAM", facts)
    assert re.search(r"Ship by</dt><dd[^>]*>Jan 4, 2099, 6:45:00\sPM", facts)
    (created,) = _history(auth, order["id"])
    assert "Received from the marketplace" in created and "API token #" in created

    _act(auth, order["id"], "accept")
    created, accepted = _history(auth, order["id"])
    assert "Accepted" in accepted and "awaiting acceptance → accepted" in accepted and a.admin.email in accepted


def test_merchant_accepts_and_ships_through_the_page_and_stock_leaves_the_shelf(app, client, factory, auth):
    a = shop(app, factory)
    order = _post(client, a, [("TEA-1", 2)])
    auth.login(a.admin.email)
    assert _actions(auth, order["id"]) == {"accept", "refuse"}
    text = _act(auth, order["id"], "accept")
    assert f"Order {order['order_number']} is now accepted." in text
    assert order_status(app, order["id"]) == "accepted" and stock_of(app, a.merchant.id, "TEA-1") == (10, 2)
    assert _actions(auth, order["id"]) == {"cancel", "ship"}

    text = _act(auth, order["id"], "ship", carrier="russian_post", tracking_number="RA123456789RU")
    assert f"Order {order['order_number']} is now shipped." in text
    assert order_status(app, order["id"]) == "shipped" and stock_of(app, a.merchant.id, "TEA-1") == (8, 0)
    shipped = _history(auth, order["id"])[-1]
    assert "Shipped" in shipped and "RA123456789RU" in shipped and "Почта России" in shipped
    facts = _element(_text(auth.client.get(f"/orders/{order['id']}")), "dl", "order-facts")
    assert "RA123456789RU" in facts and "Почта России" in facts
    assert 'href="https://www.pochta.ru/tracking?barcode=RA123456789RU"' in facts
    assert _actions(auth, order["id"]) == set()


def test_the_ship_form_offers_the_active_carriers_with_their_formats(app, client, factory, auth):
    set_carrier_active(app, "dpd", False)
    a = shop(app, factory)
    order = _post(client, a)
    _advance(client, a, order["id"], "accept")
    auth.login(a.admin.email)
    form = _element(_text(auth.client.get(f"/orders/{order['id']}")), "form", "action-ship")
    options = dict(re.findall(r'<option[^>]*value="(\w*)"[^>]*>([^<]+)</option>', form))
    assert options == {"": "— choose the carrier —", "boxberry": "Boxberry", "cdek": "СДЭК", "own_courier":
                       "Собственный курьер продавца", "russian_post": "Почта России"}
    assert '<select' in form and 'name="carrier"' in form
    formats = _element(form, "ul", "tracking-formats")
    assert r"СДЭК: <code>\d{10}</code>" in formats and "DPD" not in formats


@pytest.mark.parametrize("fields, message", [
    ({"carrier": "pigeon", "tracking_number": "1234567890"},
     "There is no carrier pigeon; the carriers are boxberry, cdek, own_courier, russian_post."),
    ({"tracking_number": "1234567890"}, "Say which carrier ships the order: one of "),
    ({"carrier": "dpd", "tracking_number": "RU123456789"}, "The carrier dpd is not active;"),
    ({"carrier": "cdek", "tracking_number": "RA123456789RU"},
     r"RA123456789RU is not a tracking number of СДЭК (expected: \d{10})."),
    ({"carrier": "cdek", "tracking_number": ""}, "A tracking number of СДЭК is required."),
])
def test_shipping_on_the_page_with_a_bad_carrier_or_number_flashes_why_and_changes_nothing(app, client, factory, auth,
                                                                                          fields, message):
    set_carrier_active(app, "dpd", False)
    a = shop(app, factory)
    order = _post(client, a, [("TEA-1", 2)])
    _advance(client, a, order["id"], "accept")
    auth.login(a.admin.email)
    text = _act(auth, order["id"], "ship", **fields)
    assert message in text
    assert re.search(r'alert-danger[^>]*>\s*' + re.escape(message), text)
    assert order_status(app, order["id"]) == "accepted" and stock_of(app, a.merchant.id, "TEA-1") == (10, 2)
    assert len(_history(auth, order["id"])) == 2
    assert "Tracking number" not in _element(_text(auth.client.get(f"/orders/{order['id']}")), "dl", "order-facts")


def test_an_order_shipped_with_a_carrier_without_a_tracking_page_shows_the_number_without_a_link(app, client, factory,
                                                                                                  auth):
    a = shop(app, factory)
    order = _post(client, a)
    _advance(client, a, order["id"], "accept")
    auth.login(a.admin.email)
    text = _act(auth, order["id"], "ship", carrier="own_courier", tracking_number="ACME-00042")
    assert "is now shipped." in text
    facts = _element(_text(auth.client.get(f"/orders/{order['id']}")), "dl", "order-facts")
    assert "Собственный курьер продавца" in facts and "<code>ACME-00042</code>" in facts and "<a " not in facts


def test_refusing_on_the_page_needs_a_reason_and_releases_the_stock(app, client, factory, auth):
    a = shop(app, factory)
    order = _post(client, a)
    auth.login(a.admin.email)
    text = _act(auth, order["id"], "refuse", reason="  ")
    assert "Say why: a reason is required." in text
    assert order_status(app, order["id"]) == "awaiting_acceptance" and stock_of(app, a.merchant.id, "TEA-1") == (10, 1)
    assert len(_history(auth, order["id"])) == 1

    text = _act(auth, order["id"], "refuse", reason="Товар снят с продажи")
    assert f"Order {order['order_number']} is now refused." in text
    assert order_status(app, order["id"]) == "refused" and stock_of(app, a.merchant.id, "TEA-1") == (10, 0)
    refused = _history(auth, order["id"])[-1]
    assert "Refused" in refused and "Reason: Товар снят с продажи" in refused and a.admin.email in refused


def test_merchant_staff_cancels_an_accepted_order_with_a_reason(app, client, factory, auth):
    a = shop(app, factory)
    staff = factory.user("merchant_staff", a.merchant)
    order = _post(client, a, [("CUP-2", 3)])
    _advance(client, a, order["id"], "accept")
    auth.login(staff.email)
    assert "Say why: a reason is required." in _act(auth, order["id"], "cancel")
    assert order_status(app, order["id"]) == "accepted"
    text = _act(auth, order["id"], "cancel", reason="Повреждён при упаковке")
    assert f"Order {order['order_number']} is now cancelled." in text
    assert order_status(app, order["id"]) == "cancelled" and stock_of(app, a.merchant.id, "CUP-2") == (5, 0)
    cancelled = _history(auth, order["id"])[-1]
    assert "Cancelled" in cancelled and "Повреждён при упаковке" in cancelled and staff.email in cancelled


def test_the_same_form_posted_twice_applies_once_and_says_so(app, client, factory, auth):
    a = shop(app, factory)
    order = _post(client, a)
    auth.login(a.admin.email)
    data = _form_data(auth, order["id"], "accept")
    first = _text(auth.client.post(f"/orders/{order['id']}/accept", data=data, follow_redirects=True))
    second = _text(auth.client.post(f"/orders/{order['id']}/accept", data=data, follow_redirects=True))
    assert "is now accepted." in first
    assert "This was already done; nothing more was changed." in second and "is now accepted." not in second
    assert [("Accepted" in item) for item in _history(auth, order["id"])] == [False, True]
    # A fresh page hands out fresh keys: the next action is a new request.
    assert _form_data(auth, order["id"], "ship")["idempotency_key"] != _form_data(auth, order["id"], "ship")[
        "idempotency_key"]


def test_another_button_of_a_stale_page_is_a_request_of_its_own(app, client, factory, auth):
    """Ship, then go back and click cancel on the old page: the answer is about the order, not the key."""
    a = shop(app, factory)
    order = _post(client, a)
    _advance(client, a, order["id"], "accept")
    auth.login(a.admin.email)
    stale = _element(auth.client.get(f"/orders/{order['id']}").get_data(as_text=True), "div", "order-actions")
    keys = dict(re.findall(r'id="action-(\w+)".*?name="idempotency_key"[^>]*value="([^"]+)"', stale, re.S))
    assert set(keys) == {"cancel", "ship"} and keys["cancel"] != keys["ship"]
    csrf = csrf_from(stale)
    auth.client.post(f"/orders/{order['id']}/ship", data={"csrf_token": csrf, "idempotency_key": keys["ship"], **SHIP})
    text = _text(auth.client.post(f"/orders/{order['id']}/cancel", follow_redirects=True, data={
        "csrf_token": csrf, "idempotency_key": keys["cancel"], "reason": "Передумали"}))
    assert "The order is shipped; it cannot be cancelled." in text
    assert order_status(app, order["id"]) == "shipped"


def test_an_illegal_transition_flashes_why_and_changes_nothing(app, client, factory, auth):
    a = shop(app, factory)
    refused, shipped = _post(client, a), _post(client, a)
    _advance(client, a, refused["id"], "refuse")
    _advance(client, a, shipped["id"], "accept", "ship")
    auth.login(a.admin.email)
    csrf = auth.csrf(f"/orders/{refused['id']}")
    text = _text(auth.client.post(f"/orders/{refused['id']}/accept", data={"csrf_token": csrf}, follow_redirects=True))
    assert "The order is refused; it cannot be accepted." in text
    assert order_status(app, refused["id"]) == "refused" and len(_history(auth, refused["id"])) == 2
    # Delivery is the marketplace's to record, not the merchant's.
    text = _text(auth.client.post(f"/orders/{shipped['id']}/deliver", data={"csrf_token": csrf},
                                  follow_redirects=True))
    assert "Your role may not do “Mark delivered” on orders." in text
    assert order_status(app, shipped["id"]) == "shipped"


def test_a_transition_without_a_csrf_token_changes_nothing(app, client, factory, auth):
    a = shop(app, factory)
    order = _post(client, a)
    auth.login(a.admin.email)
    response = auth.client.post(f"/orders/{order['id']}/accept", data={})
    assert response.status_code in (302, 400)
    assert order_status(app, order["id"]) == "awaiting_acceptance"


def test_operators_cancel_deliver_and_return_but_never_accept_refuse_or_ship(app, client, factory, auth):
    a = shop(app, factory)
    waiting, to_cancel, to_deliver = _post(client, a), _post(client, a), _post(client, a, [("CUP-2", 1)])
    _advance(client, a, to_cancel["id"], "accept")
    _advance(client, a, to_deliver["id"], "accept", "ship")
    operator = factory.user("operator_admin")
    auth.login(operator.email)
    assert _actions(auth, waiting["id"]) == set()
    assert _actions(auth, to_cancel["id"]) == {"cancel"}
    assert _actions(auth, to_deliver["id"]) == {"deliver"}
    assert a.merchant.name in _text(auth.client.get(f"/orders/{waiting['id']}"))

    assert "is now cancelled." in _act(auth, to_cancel["id"], "cancel", reason="Покупатель отменил")
    assert order_status(app, to_cancel["id"]) == "cancelled" and stock_of(app, a.merchant.id, "TEA-1") == (10, 1)
    assert operator.email in _history(auth, to_cancel["id"])[-1]

    assert "is now delivered." in _act(auth, to_deliver["id"], "deliver")
    assert _actions(auth, to_deliver["id"]) == {"return"}
    assert "is now returned." in _act(auth, to_deliver["id"], "return", reason="Брак")
    assert order_status(app, to_deliver["id"]) == "returned"
    assert _actions(auth, to_deliver["id"]) == set()

    csrf = auth.csrf(f"/orders/{waiting['id']}")
    text = _text(auth.client.post(f"/orders/{waiting['id']}/accept", data={"csrf_token": csrf}, follow_redirects=True))
    assert "Your role may not do “Accept” on orders." in text
    assert order_status(app, waiting["id"]) == "awaiting_acceptance"


# -- exports -------------------------------------------------------------------------------------

FORMULA_NAME = '=HYPERLINK("http://evil.example","Открыть")'


def _export(auth, app, fmt: str, **filters) -> bytes:
    response = auth.post("/orders/export", {"format": fmt, **filters}, csrf_page="/orders")
    assert response.status_code == 302, response.get_data(as_text=True)
    job_id = response.headers["Location"].rstrip("/").rsplit("/", 1)[-1]
    get_runner(app).wait(timeout=30)
    download = auth.client.get(f"/jobs/{job_id}/download")
    assert download.status_code == 200
    assert "attachment" in download.headers["Content-Disposition"]
    assert f"orders.{fmt}" in download.headers["Content-Disposition"]
    return download.data


def _csv(data: bytes) -> dict[str, dict[str, str]]:
    """Order number -> the row, by the header's column names."""
    return {row["Order number"]: row for row in csv.DictReader(io.StringIO(data.decode("utf-8-sig")))}


def _xlsx(data: bytes) -> dict[str, dict]:
    rows = fastexcel.read_excel(data).load_sheet(0, dtypes="string").to_arrow().to_pylist()
    return {row["Order number"]: row for row in rows}


def _export_world(app, client, factory):
    """One order in every state for merchant A (the open one with a formula for a name), one for merchant B."""
    a, b = shop(app, factory), shop(app, factory)
    steps = {"EX-WAITING": (), "EX-ACCEPTED": ("accept",), "EX-SHIPPED": ("accept", "ship"),
             "EX-REFUSED": ("refuse",), "EX-CANCELLED": ("accept", "cancel"),
             "EX-DELIVERED": ("accept", "ship", "deliver"), "EX-RETURNED": ("accept", "ship", "deliver", "return")}
    for number, path in steps.items():
        address = {**ADDRESS, "name": FORMULA_NAME} if number == "EX-WAITING" else ADDRESS
        _advance(client, a, _post(client, a, number=number, shipping_address=address)["id"], *path)
    _post(client, b, number="EX-OTHER")
    return a, b


OPEN = {"EX-WAITING", "EX-ACCEPTED", "EX-SHIPPED"}
CLOSED = {"EX-REFUSED", "EX-CANCELLED", "EX-DELIVERED", "EX-RETURNED"}


def _assert_buyers(rows: dict[str, dict], phone: str = ADDRESS["phone"]) -> None:
    """Open orders keep the buyer whole; closed ones keep only the city and country."""
    for number in OPEN - {"EX-WAITING"}:
        row = rows[number]
        assert (row["Buyer"], row["Phone"], row["Postal code"], row["Address"]) == (
            "Анна Смирнова", phone, "420111", "ул. Баумана, д. 1, кв. 2"), number
    for number in CLOSED:
        row = rows[number]
        assert (row["Buyer"], row["Phone"], row["Address"]) == ("А***", "***89", "***"), number
        assert "Смирнова" not in str(row) and "345-67" not in str(row) and "Баумана" not in str(row)
        assert row["City"] == "Казань"


def test_csv_export_holds_the_merchants_orders_with_closed_buyers_masked(app, client, factory, auth):
    a, _ = _export_world(app, client, factory)
    auth.login(a.admin.email)
    rows = _csv(_export(auth, app, "csv"))
    assert set(rows) == OPEN | CLOSED
    assert "Merchant" not in next(iter(rows.values()))
    # A CSV cell starting with + is a formula to a spreadsheet too: the phone is kept as text.
    _assert_buyers(rows, phone="'" + ADDRESS["phone"])
    assert rows["EX-SHIPPED"]["Status"] == "shipped" and rows["EX-REFUSED"]["Reason"] == REASONS["refuse"]
    assert rows["EX-CANCELLED"]["Closed by"] == "merchant" and rows["EX-WAITING"]["Closed by"] == ""
    assert rows["EX-ACCEPTED"]["Total"] == "100.00" and rows["EX-ACCEPTED"]["Lines"] == "TEA-1 × 1"
    # A spreadsheet would run the buyer's "name" as a formula; the export keeps it as text.
    assert rows["EX-WAITING"]["Buyer"] == "'" + FORMULA_NAME


def test_csv_export_holds_only_the_filtered_orders(app, client, factory, auth):
    a, _ = _export_world(app, client, factory)
    auth.login(a.admin.email)
    assert set(_csv(_export(auth, app, "csv", status="open"))) == {"EX-WAITING", "EX-ACCEPTED"}
    assert set(_csv(_export(auth, app, "csv", q="EX-DEL"))) == {"EX-DELIVERED"}
    assert set(_csv(_export(auth, app, "csv", q="EX-OTHER"))) == set()
    # The desk's export form carries the list's filters.
    page = auth.client.get("/orders", query_string={"status": "refused"}).get_data(as_text=True)
    assert '<input type="hidden" name="status" value="refused">' in _element(page, "form", "export-form")


def test_xlsx_export_for_the_merchant_masks_closed_buyers_and_keeps_formulas_as_text(app, client, factory, auth):
    a, _ = _export_world(app, client, factory)
    auth.login(a.admin.email)
    rows = _xlsx(_export(auth, app, "xlsx"))
    assert set(rows) == OPEN | CLOSED
    _assert_buyers(rows)
    assert rows["EX-WAITING"]["Buyer"] == FORMULA_NAME  # a text cell, not a formula


def test_operator_exports_every_merchant_or_one_with_the_merchant_column(app, client, factory, auth):
    a, b = _export_world(app, client, factory)
    auth.login(factory.user("operator_admin").email)
    everything = _xlsx(_export(auth, app, "xlsx"))
    assert set(everything) == OPEN | CLOSED | {"EX-OTHER"}
    assert everything["EX-OTHER"]["Merchant"] == b.slug and everything["EX-RETURNED"]["Merchant"] == a.slug
    only_a = _csv(_export(auth, app, "csv", merchant=str(a.merchant.id)))
    assert set(only_a) == OPEN | CLOSED
    _assert_buyers(only_a, phone="'" + ADDRESS["phone"])


def test_a_merchant_cannot_export_another_merchants_orders(app, client, factory, auth):
    _, b = _export_world(app, client, factory)
    auth.login(b.admin.email)
    assert set(_csv(_export(auth, app, "csv"))) == {"EX-OTHER"}
    assert set(_csv(_export(auth, app, "csv", q="EX-WAITING"))) == set()
    assert set(_xlsx(_export(auth, app, "xlsx"))) == {"EX-OTHER"}


def test_export_refuses_an_unknown_format(app, client, factory, auth):
    a = shop(app, factory)
    auth.login(a.admin.email)
    text = _text(auth.post("/orders/export", {"format": "pdf"}, csrf_page="/orders", follow_redirects=True))
    assert "Choose CSV or XLSX." in text


def test_export_is_written_in_the_language_the_user_chose(app, client, factory, auth):
    a = shop(app, factory)
    _post(client, a)
    auth.login(a.admin.email)
    auth.post("/language", {"lang": "ru"})
    data = _export(auth, app, "csv")
    header = next(csv.reader(io.StringIO(data.decode("utf-8-sig"))))
    assert "Статус" in header and "Создан" in header and "Status" not in header


def test_an_order_export_is_downloaded_only_by_whoever_asked_for_it(app, client, factory, auth):
    from portal.jobs.services import get_runner

    a = shop(app, factory)
    post_order(client, a)
    operator = factory.user("operator_admin")
    auth.login(operator.email)
    response = auth.post("/orders/export", {"format": "csv"}, csrf_page="/orders")
    job_path = response.headers["Location"]
    get_runner(app).wait(timeout=30)
    assert auth.client.get(job_path + "/download").status_code == 200
    auth.logout()
    manager = factory.user("category_manager")
    auth.login(manager.email)
    assert auth.client.get(job_path + "/download").status_code == 404


def test_odd_digits_and_line_breaks_in_the_desks_parameters_change_nothing_and_break_nothing(app, client, factory, auth):
    a = shop(app, factory)
    order_id = post_order(client, a).get_json()["id"]
    auth.login(a.admin.email)
    assert auth.client.get("/orders?merchant=%C2%B2").status_code == 200
    response = auth.post("/orders/bulk", {"action": "accept", "order_id": ["²", str(order_id)],
                                          "back": "status=open\r\nLocation: https://evil.example"}, csrf_page="/orders")
    assert response.status_code == 302
    assert response.headers["Location"].startswith("/orders") and "evil" not in response.headers["Location"]
    assert order_status(app, order_id) == "accepted"


def test_the_merchants_home_shows_open_orders_with_links_to_the_desk(app, client, factory, auth):
    a = shop(app, factory)
    post_order(client, a)
    post_order(client, a, ship_by=(datetime.now(timezone.utc) + timedelta(hours=2)).isoformat(),
               acceptance_deadline=(datetime.now(timezone.utc) + timedelta(hours=1)).isoformat())
    auth.login(a.admin.email)
    html = auth.client.get("/").get_data(as_text=True)
    assert re.search(r'id="figure-awaiting">2<', html)
    assert re.search(r'id="figure-at-risk">1<', html)
    assert "/orders?at_risk=1" in html


def test_a_search_matching_more_orders_than_it_looks_up_by_id_still_finds_them_all(app, client, factory, auth, monkeypatch):
    from portal.orders import queries

    a = shop(app, factory)
    for number in ("WB-2001", "WB-2002", "WB-2003"):
        _post(client, a, [("TEA-1", 1)], number=number)
    auth.login(a.admin.email)
    monkeypatch.setattr(queries, "SEARCH_IDS", 2)
    assert set(_listed(auth, q="WB-2")) == {"WB-2001", "WB-2002", "WB-2003"}
    assert _listed(auth, q="WB-2002") == ["WB-2002"]
