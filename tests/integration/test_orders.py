"""Order services on the real database: reservations, every transition from every state, expiry, concurrency.

The concurrency tests run threads with their own sessions; on PostgreSQL (CI) they exercise the row locks,
on SQLite the single writer.
"""
from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import func, select

from portal.catalog.services import update_offer
from portal.catalog.models import Product
from portal.db import get_session
from portal.errors import PortalError
from portal.orders import services
from portal.orders.exceptions import IllegalTransition, OrderError, StockShort, TransitionForbidden
from portal.orders.machine import STATES, TRANSITIONS
from portal.orders.models import Order, OrderEvent
from portal.tenancy import Principal
from tests.support.catalog import csv_bytes, import_file
from tests.support.orders import SHIP, carriers, order_payload, set_carrier_active, shop, stock_of

OPERATOR = Principal(role="operator_admin", merchant_id=None)
NOW = datetime.now(timezone.utc)


def _data(shop_or_slug, lines=None, **extra) -> dict[str, Any]:
    """A payload as the API schema loads it (Decimal prices, datetimes)."""
    data = order_payload(shop_or_slug, lines, **extra)
    for line in data["lines"]:
        line["unit_price"] = Decimal(line["unit_price"])
    for key in ("created_at", "acceptance_deadline", "ship_by"):
        data.setdefault(key, None)
    return data


def create(app, data) -> services.Intake:
    with app.app_context():
        return services.create_order(get_session(), data, principal=OPERATOR)


def fire(app, order_id: int, name: str, principal: Principal, **kwargs) -> services.Applied:
    with app.app_context():
        return services.apply_transition(get_session(), order_id, name, principal=principal, **kwargs)


def merchant_principal(s) -> Principal:
    return Principal(role="merchant_admin", merchant_id=s.merchant.id, user_id=s.admin.id)


@pytest.fixture(autouse=True)
def _carriers(app):
    """Shipping needs a configured carrier."""
    carriers(app)


@pytest.fixture
def s(app, factory):
    return shop(app, factory)


def test_an_order_reserves_its_lines_and_refusal_gives_them_back(app, s):
    order = create(app, _data(s, [("TEA-1", 3), ("CUP-2", 2)])).order
    assert stock_of(app, s.merchant.id, "TEA-1") == (10, 3)
    assert stock_of(app, s.merchant.id, "CUP-2") == (5, 2)
    fire(app, order.id, "refuse", merchant_principal(s), reason="Нет в наличии")
    assert stock_of(app, s.merchant.id, "TEA-1") == (10, 0)
    assert stock_of(app, s.merchant.id, "CUP-2") == (5, 0)


def test_shipping_consumes_the_reservation_and_cancellation_releases_it(app, s):
    shipped = create(app, _data(s, [("TEA-1", 4)])).order
    cancelled = create(app, _data(s, [("TEA-1", 2)])).order
    for order in (shipped, cancelled):
        fire(app, order.id, "accept", merchant_principal(s))
    fire(app, shipped.id, "ship", merchant_principal(s), tracking_number="RA123456789RU", carrier="russian_post")
    assert stock_of(app, s.merchant.id, "TEA-1") == (6, 2)
    fire(app, cancelled.id, "cancel", OPERATOR, reason="Покупатель передумал")
    assert stock_of(app, s.merchant.id, "TEA-1") == (6, 0)
    with app.app_context():
        cancelled_row = get_session().get(Order, cancelled.id)
        assert (cancelled_row.closed_by, cancelled_row.reason) == ("marketplace", "Покупатель передумал")


@pytest.mark.parametrize("carrier, tracking, field, words", [
    ("pigeon", "1234567890", "carrier", ["pigeon", "cdek", "russian_post"]),
    (None, "1234567890", "carrier", ["cdek"]),
    ("dpd", "RU123456789", "carrier", ["dpd", "not active"]),
    ("cdek", None, "tracking_number", ["СДЭК", "required"]),
    ("cdek", "RA123456789RU", "tracking_number", ["RA123456789RU", "СДЭК", r"\d{10}"]),
])
def test_shipping_needs_an_active_carrier_and_a_tracking_number_in_its_format(app, s, carrier, tracking, field,
                                                                              words):
    set_carrier_active(app, "dpd", False)
    order = create(app, _data(s, [("TEA-1", 2)])).order
    fire(app, order.id, "accept", merchant_principal(s))
    with pytest.raises(OrderError) as caught:
        fire(app, order.id, "ship", merchant_principal(s), carrier=carrier, tracking_number=tracking)
    assert caught.value.details["field"] == field
    assert all(word in caught.value.message for word in words), caught.value.message
    with app.app_context():
        row = get_session().get(Order, order.id)
        assert (row.status, row.carrier, row.tracking_number) == ("accepted", None, None)
    assert stock_of(app, s.merchant.id, "TEA-1") == (10, 2)


def test_shipping_stores_the_carriers_code_and_the_number_in_the_history(app, s):
    order = create(app, _data(s, [("TEA-1", 1)])).order
    fire(app, order.id, "accept", merchant_principal(s))
    applied = fire(app, order.id, "ship", merchant_principal(s), carrier=" CDEK ", tracking_number=" 1234567890 ")
    assert (applied.order.carrier, applied.order.tracking_number) == ("cdek", "1234567890")
    assert applied.event.details == {"carrier": "cdek", "tracking_number": "1234567890"}


def test_an_order_beyond_available_stock_is_refused_naming_the_short_lines_and_reserves_nothing(app, s):
    create(app, _data(s, [("CUP-2", 4)]))
    with pytest.raises(StockShort) as caught:
        create(app, _data(s, [("TEA-1", 1), ("CUP-2", 2)]))
    assert caught.value.details == {"lines": [{"line": 2, "sku": "CUP-2", "requested": 2, "available": 1}]}
    assert "CUP-2" in caught.value.message
    assert stock_of(app, s.merchant.id, "TEA-1") == (10, 0)
    assert stock_of(app, s.merchant.id, "CUP-2") == (5, 4)


def test_a_catalog_upload_changes_stock_on_hand_and_keeps_reservations(app, s):
    create(app, _data(s, [("TEA-1", 3)]))
    import_file(app, s.merchant.id, csv_bytes([["sku", "title", "price", "stock"], ["TEA-1", "Товар TEA-1", "100", "20"]]))
    assert stock_of(app, s.merchant.id, "TEA-1") == (20, 3)
    with app.app_context():
        db = get_session()
        product = db.scalar(select(Product).where(Product.merchant_id == s.merchant.id, Product.sku == "TEA-1"))
        update_offer(db, product, principal=merchant_principal(s), stock=2)
    assert stock_of(app, s.merchant.id, "TEA-1") == (2, 3)
    with pytest.raises(StockShort):  # available is -1 now: nothing more can be sold
        create(app, _data(s, [("TEA-1", 1)]))


def test_shipping_after_the_merchant_lowered_stock_below_the_reservation_leaves_zero_not_less(app, s):
    order = create(app, _data(s, [("CUP-2", 3)])).order
    fire(app, order.id, "accept", merchant_principal(s))
    with app.app_context():
        db = get_session()
        product = db.scalar(select(Product).where(Product.merchant_id == s.merchant.id, Product.sku == "CUP-2"))
        update_offer(db, product, principal=merchant_principal(s), stock=1)
    fire(app, order.id, "ship", merchant_principal(s), **SHIP)
    assert stock_of(app, s.merchant.id, "CUP-2") == (0, 0)


@pytest.mark.parametrize("lines, field", [
    ([("TEA-1", 0)], "lines[0].quantity"),
    ([("TEA-1", -2)], "lines[0].quantity"),
    ([("NOPE-9", 1)], "lines[0].sku"),
    ([("TEA-1", 1), ("TEA-1", 2)], "lines[1].sku"),
    ([], "lines"),
])
def test_bad_lines_are_refused_with_the_field_named_and_nothing_reserved(app, s, lines, field):
    with pytest.raises(OrderError) as caught:
        create(app, _data(s, lines))
    assert caught.value.details["field"] == field
    assert stock_of(app, s.merchant.id, "TEA-1") == (10, 0)


def test_prices_with_fractions_of_a_cent_or_zero_are_refused(app, s):
    for price in ("0", "-1.00", "10.005"):
        data = _data(s)
        data["lines"][0]["unit_price"] = Decimal(price)
        with pytest.raises(OrderError) as caught:
            create(app, data)
        assert caught.value.details["field"] == "lines[0].unit_price"


def test_an_inactive_product_an_unknown_or_a_deactivated_merchant_takes_no_orders(app, s):
    from portal.accounts.models import Merchant

    import_file(app, s.merchant.id, csv_bytes([["sku", "title", "price", "stock"], ["TEA-1", "Товар TEA-1", "100", "10"]]),
                deactivate_missing=True)
    with pytest.raises(OrderError, match="inactive") as caught:
        create(app, _data(s, [("TEA-1", 1), ("CUP-2", 1)]))
    assert caught.value.details["field"] == "lines[1].sku"
    with pytest.raises(OrderError) as caught:
        create(app, _data("no-such-shop"))
    assert caught.value.details["field"] == "merchant"
    with app.app_context():
        db = get_session()
        db.get(Merchant, s.merchant.id).is_active = False
        db.commit()
    with pytest.raises(OrderError, match="deactivated"):
        create(app, _data(s, [("TEA-1", 1)]))
    assert stock_of(app, s.merchant.id, "TEA-1") == (10, 0)


def test_deadlines_out_of_order_are_refused(app, s):
    with pytest.raises(OrderError) as caught:
        create(app, _data(s, created_at=NOW + timedelta(days=2)))
    assert caught.value.details["field"] == "created_at"
    with pytest.raises(OrderError) as caught:
        create(app, _data(s, created_at=NOW, acceptance_deadline=NOW - timedelta(hours=1)))
    assert caught.value.details["field"] == "acceptance_deadline"
    with pytest.raises(OrderError) as caught:
        create(app, _data(s, created_at=NOW, acceptance_deadline=NOW + timedelta(hours=5), ship_by=NOW + timedelta(hours=1)))
    assert caught.value.details["field"] == "ship_by"


def test_the_same_order_posted_again_is_stored_once_and_another_order_under_its_number_is_refused(app, s):
    data = _data(s, [("TEA-1", 2)])
    first = create(app, data)
    again = create(app, dict(data))
    assert (first.created, again.created, again.order.id) == (True, False, first.order.id)
    other = dict(data, lines=[{"sku": "TEA-1", "quantity": 3, "unit_price": Decimal("100.00")}])
    with pytest.raises(PortalError) as caught:
        create(app, other)
    assert caught.value.code == "order_number_conflict"
    assert stock_of(app, s.merchant.id, "TEA-1") == (10, 2)


def test_a_repeat_answers_with_the_stored_order_even_when_it_could_not_be_taken_now(app, s):
    data = _data(s, [("CUP-2", 5)])
    first = create(app, data)
    assert stock_of(app, s.merchant.id, "CUP-2") == (5, 5)  # nothing left to sell
    assert create(app, dict(data)).order.id == first.order.id
    import_file(app, s.merchant.id, csv_bytes([["sku", "title", "price", "stock"], ["TEA-1", "Товар TEA-1", "100", "10"]]),
                deactivate_missing=True)  # CUP-2 is inactive now
    assert create(app, dict(data)).order.id == first.order.id
    other = dict(data, lines=[{"sku": "CUP-2", "quantity": 1, "unit_price": Decimal("100.00")}])
    with pytest.raises(PortalError) as caught:
        create(app, other)
    assert caught.value.code == "order_number_conflict"  # the number, not the product, is what is wrong
    with app.app_context():
        from portal.accounts.models import Merchant

        get_session().get(Merchant, s.merchant.id).is_active = False
        get_session().commit()
    assert create(app, dict(data)).order.id == first.order.id  # the merchant deactivated since
    with pytest.raises(PortalError) as caught:
        create(app, other)
    assert caught.value.code == "order_number_conflict"
    with app.app_context():
        stored = get_session().scalar(select(func.count()).select_from(Order).where(Order.merchant_id == s.merchant.id))
    assert stored == 1 and stock_of(app, s.merchant.id, "CUP-2") == (5, 5)


def test_defaults_give_a_day_to_accept_and_two_to_ship(app, s):
    created = datetime(2026, 11, 1, 9, tzinfo=timezone.utc)
    order = create(app, _data(s, created_at=created)).order
    assert order.acceptance_deadline == created + timedelta(hours=24)
    assert order.ship_by == created + timedelta(hours=48)


# -- every state to every other state -----------------------------------------------------------

# The path from a new order to each state, and who fires each step.
PATHS = {
    "awaiting_acceptance": [],
    "accepted": ["accept"],
    "shipped": ["accept", "ship"],
    "delivered": ["accept", "ship", "deliver"],
    "returned": ["accept", "ship", "deliver", "return"],
    "refused": ["refuse"],
    "cancelled": ["accept", "cancel"],
}


def _actor(s, name: str) -> Principal:
    return merchant_principal(s) if "merchant" in TRANSITIONS[name].actors else OPERATOR


def _extra(name: str) -> dict[str, str]:
    """What a transition needs beyond a reason: shipping names a carrier and a tracking number."""
    return SHIP if TRANSITIONS[name].tracking else {}


def _order_in(app, s, state: str) -> int:
    order_id = create(app, _data(s, [("TEA-1", 1)])).order.id
    for step in PATHS[state]:
        fire(app, order_id, step, _actor(s, step), reason="причина", **_extra(step))
    return order_id


def test_from_every_state_only_the_legal_transitions_pass(app, factory):
    s = shop(app, factory, {"TEA-1": 1000})
    outcomes = {}
    for state in STATES:
        for name in TRANSITIONS:
            if name == "expire":
                continue
            order_id = _order_in(app, s, state)
            try:
                applied = fire(app, order_id, name, _actor(s, name), reason="причина", **_extra(name))
            except IllegalTransition as exc:
                assert exc.details["status"] == state
                assert state in exc.message or exc.details["status"] == state
                outcomes[(state, name)] = None
                with app.app_context():
                    assert get_session().get(Order, order_id).status == state  # nothing changed
            else:
                outcomes[(state, name)] = applied.order.status
    legal = {(state, name): status for (state, name), status in outcomes.items() if status}
    assert legal == {(source, t.name): t.target for t in TRANSITIONS.values() for source in t.sources if t.name != "expire"}


def test_each_transition_records_who_when_and_why(app, s):
    order_id = _order_in(app, s, "returned")
    with app.app_context():
        events = get_session().scalars(select(OrderEvent).where(OrderEvent.order_id == order_id).order_by(OrderEvent.id)).all()
    assert [(e.transition, e.from_status, e.to_status) for e in events] == [
        ("create", None, "awaiting_acceptance"), ("accept", "awaiting_acceptance", "accepted"),
        ("ship", "accepted", "shipped"), ("deliver", "shipped", "delivered"), ("return", "delivered", "returned")]
    assert events[1].actor_user_id == s.admin.id
    assert events[4].reason == "причина" and events[4].actor_user_id is None


def test_a_merchant_cannot_fire_the_marketplaces_transitions_nor_touch_another_merchants_order(app, s, factory):
    order_id = _order_in(app, s, "shipped")
    with pytest.raises(TransitionForbidden):
        fire(app, order_id, "deliver", merchant_principal(s))
    other = Principal(role="merchant_admin", merchant_id=factory.merchant().id)
    with pytest.raises(PortalError) as caught:
        fire(app, order_id, "deliver", other)
    assert caught.value.status == 404


def test_refusal_without_a_reason_changes_nothing(app, s):
    order_id = _order_in(app, s, "awaiting_acceptance")
    with pytest.raises(OrderError):
        fire(app, order_id, "refuse", merchant_principal(s), reason="   ")
    assert stock_of(app, s.merchant.id, "TEA-1") == (10, 1)


def test_a_repeat_with_the_same_idempotency_key_returns_the_first_result(app, s):
    order_id = _order_in(app, s, "accepted")
    first = fire(app, order_id, "ship", merchant_principal(s), idempotency_key="k-1", **SHIP)
    again = fire(app, order_id, "ship", merchant_principal(s), idempotency_key="k-1", **SHIP)
    assert (first.repeated, again.repeated, again.event.id, again.order.status) == (False, True, first.event.id, "shipped")
    assert stock_of(app, s.merchant.id, "TEA-1") == (9, 0)
    with pytest.raises(OrderError):  # the key of a ship is not a key for a cancel
        fire(app, order_id, "cancel", merchant_principal(s), reason="x", idempotency_key="k-1")


# -- expiry -------------------------------------------------------------------------------------


def test_expiry_refuses_only_orders_past_their_deadline_and_releases_their_stock(app, s):
    now = datetime.now(timezone.utc)  # not the module's NOW: a long suite may reach this test past NOW + 5 min
    late = create(app, _data(s, [("TEA-1", 2)], created_at=now - timedelta(days=2))).order
    fresh = create(app, _data(s, [("TEA-1", 1)])).order
    accepted_late = create(app, _data(s, [("CUP-2", 1)], created_at=now - timedelta(hours=30),
                                      acceptance_deadline=now + timedelta(minutes=5))).order
    fire(app, accepted_late.id, "accept", merchant_principal(s))
    with app.app_context():
        refused = services.expire_orders(get_session())
        db = get_session()
        late_row = db.get(Order, late.id)
        event = db.scalar(select(OrderEvent).where(OrderEvent.order_id == late.id, OrderEvent.transition == "expire"))
    assert refused == [late.order_number]
    assert (late_row.status, late_row.closed_by) == ("refused", "system")
    assert event.actor_kind == "system"
    assert stock_of(app, s.merchant.id, "TEA-1") == (10, 1)
    assert {fresh.id: "awaiting_acceptance", accepted_late.id: "accepted"} == {
        o: status for o, status in ((fresh.id, _status(app, fresh.id)), (accepted_late.id, _status(app, accepted_late.id)))}


def _status(app, order_id: int) -> str:
    with app.app_context():
        return get_session().get(Order, order_id).status


def test_a_merchant_cannot_accept_after_the_deadline_even_before_the_job_has_run(app, s):
    late = create(app, _data(s, created_at=NOW - timedelta(days=2))).order
    with pytest.raises(IllegalTransition, match="deadline"):
        fire(app, late.id, "accept", merchant_principal(s))


def test_orders_expire_command_prints_what_it_refused(app, s, runner):
    import json

    late = create(app, _data(s, created_at=NOW - timedelta(days=3))).order
    result = runner.invoke(args=["orders", "expire", "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output) == {"refused": 1, "orders": [late.order_number]}
    again = runner.invoke(args=["orders", "expire"])
    assert "0 orders refused" in again.output


def test_beat_refuses_expired_orders_every_five_minutes(app):
    from portal.jobs.celery_app import BEAT_SCHEDULE

    entry = BEAT_SCHEDULE["orders-expire"]
    assert entry["task"] == "portal.orders_expire"
    assert entry["schedule"].minute == set(range(0, 60, 5))


# -- concurrency --------------------------------------------------------------------------------


def _race(count: int, work: Callable[[int], Any]) -> list[Any]:
    """Run ``work(i)`` in ``count`` threads released together; each result or exception is returned."""
    barrier = threading.Barrier(count)
    results: list[Any] = [None] * count

    def run(i: int) -> None:
        barrier.wait()
        try:
            results[i] = work(i)
        except Exception as exc:  # the outcome is what is being checked
            results[i] = exc

    threads = [threading.Thread(target=run, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    return results


def test_twenty_buyers_racing_for_the_last_five_units_get_exactly_five(app, factory):
    s = shop(app, factory, {"LAST-5": 5, "OTHER": 100})
    results = _race(20, lambda i: create(app, _data(s, [("OTHER", 1), ("LAST-5", 1)])))
    sold = [r for r in results if isinstance(r, services.Intake)]
    refused = [r for r in results if isinstance(r, StockShort)]
    assert (len(sold), len(refused)) == (5, 15), [r for r in results if not isinstance(r, (services.Intake, StockShort))]
    assert stock_of(app, s.merchant.id, "LAST-5") == (5, 5)
    assert stock_of(app, s.merchant.id, "OTHER") == (100, 5)
    with app.app_context():
        assert get_session().scalar(select(func.count(Order.id)).where(Order.merchant_id == s.merchant.id)) == 5


def test_the_same_order_posted_twice_at_once_is_stored_once(app, s):
    data = _data(s, [("TEA-1", 2)])
    results = _race(6, lambda i: create(app, dict(data)))
    assert all(isinstance(r, services.Intake) for r in results), results
    assert sorted(r.created for r in results) == [False] * 5 + [True]
    assert len({r.order.id for r in results}) == 1
    assert stock_of(app, s.merchant.id, "TEA-1") == (10, 2)


def test_accept_and_refuse_of_the_same_order_at_once_exactly_one_wins(app, s):
    for _ in range(3):
        order_id = _order_in(app, s, "awaiting_acceptance")
        results = _race(2, lambda i: fire(app, order_id, ("accept", "refuse")[i], merchant_principal(s), reason="нет"))
        winners = [r for r in results if isinstance(r, services.Applied)]
        losers = [r for r in results if isinstance(r, IllegalTransition)]
        assert (len(winners), len(losers)) == (1, 1), results
        assert losers[0].details["status"] == winners[0].order.status
        with app.app_context():
            events = Counter(get_session().scalars(select(OrderEvent.transition).where(OrderEvent.order_id == order_id)))
        assert events["accept"] + events["refuse"] == 1
    with app.app_context():
        reserved_by_open = get_session().scalar(select(func.count(Order.id)).where(
            Order.merchant_id == s.merchant.id, Order.status == "accepted"))
    assert stock_of(app, s.merchant.id, "TEA-1")[1] == reserved_by_open


def test_the_same_transition_retried_at_once_with_one_key_applies_once(app, s):
    order_id = _order_in(app, s, "accepted")
    results = _race(4, lambda i: fire(app, order_id, "ship", merchant_principal(s), idempotency_key="same", **SHIP))
    assert all(isinstance(r, services.Applied) for r in results), results
    assert sorted(r.repeated for r in results) == [False, True, True, True]
    assert stock_of(app, s.merchant.id, "TEA-1") == (9, 0)


def test_orders_and_transitions_racing_on_shared_products_keep_stock_exact(app, factory):
    """Mixed load on two products locked in different line orders: no deadlock, and the books balance."""
    s = shop(app, factory, {"A-1": 30, "B-2": 30})

    def work(i: int) -> Any:
        lines = [("A-1", 1), ("B-2", 1)] if i % 2 else [("B-2", 1), ("A-1", 1)]
        intake = create(app, _data(s, lines))
        if i % 3 == 0:
            fire(app, intake.order.id, "refuse", merchant_principal(s), reason="нет")
        elif i % 3 == 1:
            fire(app, intake.order.id, "accept", merchant_principal(s))
            fire(app, intake.order.id, "ship", merchant_principal(s), **SHIP)
        return intake

    results = _race(12, work)
    assert all(isinstance(r, services.Intake) for r in results), results
    shipped = sum(1 for i in range(12) if i % 3 == 1)
    open_ = sum(1 for i in range(12) if i % 3 == 2)
    for sku in ("A-1", "B-2"):
        assert stock_of(app, s.merchant.id, sku) == (30 - shipped, open_)


# -- orders beside bulk catalog writes ----------------------------------------------------------


def _bulk_writer(app, merchant_id: int):
    """A transaction that writes the merchant's products in bulk as an upload does: catalog lock first."""
    from portal.catalog.bulk import lock_merchant_catalog

    ctx = app.app_context()
    ctx.push()
    db = get_session()
    lock_merchant_catalog(db, merchant_id)
    return ctx, db


def _product_id(app, merchant_id: int, sku: str) -> int:
    with app.app_context():
        return get_session().scalar(select(Product.id).where(Product.merchant_id == merchant_id, Product.sku == sku))


def test_a_shipment_during_an_upload_waits_for_it_and_is_not_undone(app, s):
    import time

    order_id = _order_in(app, s, "accepted")
    tea = _product_id(app, s.merchant.id, "TEA-1")
    ctx, db = _bulk_writer(app, s.merchant.id)
    results: list[Any] = []
    try:
        seen = db.scalar(select(Product.stock).where(Product.id == tea))
        worker = threading.Thread(target=lambda: results.append(
            _outcome(lambda: fire(app, order_id, "ship", merchant_principal(s), **SHIP))))
        worker.start()
        time.sleep(0.5)  # give the shipment the chance to overtake the upload, which it must not take
        db.execute(Product.__table__.update().where(Product.id == tea).values(stock=seen))
        db.commit()
    finally:
        ctx.pop()
    worker.join(timeout=60)
    assert isinstance(results[0], services.Applied), results
    assert stock_of(app, s.merchant.id, "TEA-1") == (9, 0)


def test_an_order_for_products_an_upload_is_writing_waits_instead_of_deadlocking(app, factory):
    import time

    s = shop(app, factory, {"A-1": 10, "B-2": 10})
    a, b = _product_id(app, s.merchant.id, "A-1"), _product_id(app, s.merchant.id, "B-2")
    ctx, db = _bulk_writer(app, s.merchant.id)
    results: list[Any] = []
    try:
        db.execute(Product.__table__.update().where(Product.id == b).values(title="B, first chunk"))
        worker = threading.Thread(target=lambda: results.append(
            _outcome(lambda: create(app, _data(s, [("A-1", 1), ("B-2", 1)])))))
        worker.start()
        time.sleep(0.5)  # the order would lock A-1 now and wait for B-2, were it not waiting for the upload
        db.execute(Product.__table__.update().where(Product.id == a).values(title="A, second chunk"))
        db.commit()
    finally:
        ctx.pop()
    worker.join(timeout=60)
    assert isinstance(results[0], services.Intake), results
    assert stock_of(app, s.merchant.id, "A-1") == (10, 1)


def _outcome(work: Callable[[], Any]) -> Any:
    try:
        return work()
    except Exception as exc:  # the outcome is what is checked
        return exc


def test_after_a_shipment_the_merchants_own_stock_figure_uploaded_again_is_applied(app, s):
    order_id = _order_in(app, s, "accepted")
    fire(app, order_id, "ship", merchant_principal(s), **SHIP)
    assert stock_of(app, s.merchant.id, "TEA-1") == (9, 0)
    result = import_file(app, s.merchant.id, csv_bytes([["sku", "title", "price", "stock"], ["TEA-1", "Товар TEA-1", "100", "10"]]))
    assert (result["updated"], result["unchanged"]) == (1, 0)
    assert stock_of(app, s.merchant.id, "TEA-1") == (10, 0)
    with app.app_context():
        from portal.catalog.models import ProductEvent

        events = get_session().scalars(select(ProductEvent).where(ProductEvent.source == "order")).all()
    assert [e.changes["stock"] for e in events] == [[10, 9]]


def test_an_order_whose_total_the_portal_cannot_hold_is_refused(app, factory):
    s = shop(app, factory, {"GOLD": 10})
    data = _data(s, [("GOLD", 2)])
    data["lines"][0]["unit_price"] = Decimal("999999999999.99")
    with pytest.raises(OrderError) as caught:
        create(app, data)
    assert caught.value.details["field"] == "lines"
