"""Help against late shipment: the at-risk list on a merchant's home with the next cut-offs, the daily digest."""
from __future__ import annotations

import html
import json
import re
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest

from portal.db import get_session
from portal.orders.models import Order
from portal.shipping.carriers import DEFAULT_CARRIERS, load_default_carriers, next_cutoff, tracking_is_valid
from portal.shipping.models import Carrier
from portal.shipping.services import create_shipment
from portal.tenancy import Principal
from tests.support.orders import bearer, pickup_day, post_order, shop

MOSCOW = ZoneInfo("Europe/Moscow")


def _at(hours: float) -> str:
    return (datetime.now(timezone.utc) + timedelta(hours=hours)).isoformat()


def _order(client, a_shop, ship_in_hours: float, accept: bool = True) -> dict:
    """An order (accepted unless told) whose ship-by is ``ship_in_hours`` away (negative: passed)."""
    response = post_order(client, a_shop, [("TEA-1", 1)], created_at=_at(-2), acceptance_deadline=_at(0.5),
                          ship_by=_at(max(ship_in_hours, 1)))
    assert response.status_code == 201, response.get_json()
    order = response.get_json()
    if accept:
        answer = client.post(f"/api/v1/orders/{order['id']}/accept", headers=bearer(a_shop.merchant_secret))
        assert answer.status_code == 200, answer.get_json()
    if ship_in_hours < 1:  # time passes: the ship-by comes closer than any deadline allows to post
        with client.application.app_context():
            db = get_session()
            db.get(Order, order["id"]).ship_by = datetime.fromisoformat(_at(ship_in_hours))
            db.commit()
    return order


@pytest.fixture
def s(app, factory):
    with app.app_context():
        load_default_carriers(get_session())
    return shop(app, factory, {"TEA-1": 50})


def _help(auth) -> str:
    page = html.unescape(auth.client.get("/").get_data(as_text=True))
    found = re.search(r'<div class="card mb-4[^"]*" id="late-shipment-help">(.*?)\n</div>\n', page, re.S)
    assert found, "the late-shipment help is not on the home page"
    assert page.index('id="late-shipment-help"') < page.index('id="home-orders"')  # at the top
    return found.group(1)


def test_the_merchants_home_lists_the_orders_at_risk_first_with_the_next_cutoffs(app, client, auth, s, factory):
    late = _order(client, s, ship_in_hours=-1)
    soon = _order(client, s, ship_in_hours=3)
    waiting = _order(client, s, ship_in_hours=5, accept=False)
    calm = _order(client, s, ship_in_hours=24 * 5)
    with app.app_context():
        create_shipment(get_session(), principal=Principal(role="merchant_admin", merchant_id=s.merchant.id),
                        order_ids=[soon["id"]], carrier="cdek", pickup_date=pickup_day())
    other = shop(app, factory, {"TEA-1": 5})
    theirs = _order(client, other, ship_in_hours=1)
    auth.login(s.admin.email)
    text = _help(auth)
    listed = re.findall(r"<code>([^<]+)</code>", text)
    assert listed == [late["order_number"], soon["order_number"], waiting["order_number"]]  # most urgent first
    assert calm["order_number"] not in text and theirs["order_number"] not in text
    assert "ship-by passed" in text and "in shipment SHP-" in text and "in no shipment yet" in text
    assert "СДЭК" in text and "★" in text  # the carrier of the open shipment comes first
    client.post(f"/api/v1/orders/{late['id']}/ship", headers=bearer(s.merchant_secret),
                json={"carrier": "cdek", "tracking_number": "1234567890"})
    assert late["order_number"] not in _help(auth)  # handed over: no longer at risk


def test_a_merchant_with_nothing_at_risk_is_told_so_and_staff_have_no_such_card(client, auth, s, factory):
    _order(client, s, ship_in_hours=24 * 5)
    auth.login(s.admin.email)
    assert 'id="at-risk-none"' in _help(auth)
    auth.logout()
    auth.login(factory.user("operator_admin").email)
    assert "late-shipment-help" not in auth.client.get("/").get_data(as_text=True)


def test_the_daily_digest_lists_what_to_ship_in_russian_or_english(app, client, s):
    late = _order(client, s, ship_in_hours=-1)
    _order(client, s, ship_in_hours=24 * 5)
    runner = app.test_cli_runner()
    result = runner.invoke(args=["shipping", "digest", "--merchant", s.slug, "--json"])
    assert result.exit_code == 0, result.output
    [digest] = json.loads(result.output)
    assert (digest["merchant"], digest["at_risk"], digest["overdue"]) == (s.slug, 1, 1)
    assert late["order_number"] in digest["text"] and "под риском" in digest["subject"]
    english = runner.invoke(args=["shipping", "digest", "--merchant", s.slug, "--lang", "en"])
    assert "1 order at risk of late shipment" in english.output and late["order_number"] in english.output
    missing = runner.invoke(args=["shipping", "digest", "--merchant", "no-such-shop"])
    assert missing.exit_code != 0 and "no-such-shop" in missing.output


def _carrier(**fields) -> Carrier:
    base = {"code": "x", "name": "X", "pickup_days": [0, 1, 2, 3, 4], "cutoff_time": "16:00",
            "timezone": "Europe/Moscow", "tracking_patterns": []}
    return Carrier(**{**base, **fields})


@pytest.mark.parametrize(("local_now", "expected"), [
    (datetime(2026, 11, 23, 15, 0), datetime(2026, 11, 23, 16, 0)),   # Monday before the cut-off: today
    (datetime(2026, 11, 23, 16, 0), datetime(2026, 11, 24, 16, 0)),   # at the cut-off: tomorrow
    (datetime(2026, 11, 27, 18, 0), datetime(2026, 11, 30, 16, 0)),   # Friday evening: Monday
    (datetime(2026, 11, 28, 9, 0), datetime(2026, 11, 30, 16, 0)),    # Saturday: Monday
])
def test_the_next_cutoff_is_the_next_pickup_day_at_the_carriers_local_time(local_now, expected):
    now = local_now.replace(tzinfo=MOSCOW)
    assert next_cutoff(_carrier(), now) == expected.replace(tzinfo=MOSCOW).astimezone(timezone.utc)
    assert next_cutoff(_carrier(pickup_days=[]), now) is None


def test_the_default_carriers_accept_their_own_formats_and_nothing_else():
    carriers = {item["code"]: Carrier(**item) for item in DEFAULT_CARRIERS}
    good = {"russian_post": ["12345678901234", "RA123456789RU"], "cdek": ["1234567890"],
            "boxberry": ["BB123456789", "1234567890"], "dpd": ["RU123456789", "12345678901234"],
            "own_courier": ["COURIER-0001"]}
    bad = {"russian_post": ["1234", "ra123456789ru", "RA123456789RUS"], "cdek": ["123456789", "12345678901"],
           "boxberry": ["12-34"], "dpd": ["RU12345678"], "own_courier": ["", "ab", "with space"]}
    for code, numbers in good.items():
        assert all(tracking_is_valid(carriers[code], n) for n in numbers), code
    for code, numbers in bad.items():
        assert not any(tracking_is_valid(carriers[code], n) for n in numbers), code
