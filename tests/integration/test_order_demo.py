"""The demo's order history: every state, histories the machine allows, exact stock, made once."""
from __future__ import annotations

import random
import re
from collections import Counter, defaultdict
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import func, select

from portal.catalog.models import Product
from portal.db import get_session
from portal.orders import demo
from portal.orders.machine import OPEN_STATES, STATES, TRANSITIONS
from portal.orders.models import Order, OrderEvent, OrderLine
from tests.support.orders import shop

NUMBER = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._/-]{0,63}$")
STOCK = {f"SKU-{n}": units for n, units in enumerate((100, 50, 25, 25, 10, 10, 5, 2, 1, 0), start=1)}


def _seed(app, s, count: int, **kwargs) -> bool:
    with app.app_context():
        return demo.seed_orders(get_session(), s.merchant, count, seed=1, admin=s.admin, **kwargs)


def _orders(app, merchant_id: int) -> list[Order]:
    with app.app_context():
        db = get_session()
        orders = db.scalars(select(Order).where(Order.merchant_id == merchant_id).order_by(Order.id)).all()
        for order in orders:
            order.lines  # noqa: B018 - loaded while the session is open
        return list(orders)


def _events(app, merchant_id: int) -> dict[int, list[OrderEvent]]:
    with app.app_context():
        by_order: dict[int, list[OrderEvent]] = defaultdict(list)
        for event in get_session().scalars(select(OrderEvent).where(OrderEvent.merchant_id == merchant_id)
                                           .order_by(OrderEvent.order_id, OrderEvent.id)):
            by_order[event.order_id].append(event)
        return by_order


@pytest.fixture
def seeded(app, factory):
    """A shop with a small catalog and sixty orders of demo history."""
    s = shop(app, factory, stock=STOCK)
    assert _seed(app, s, 60) is True
    return s


def test_demo_orders_reach_every_state_and_each_way_of_ending(app, seeded):
    orders = _orders(app, seeded.merchant.id)
    assert len(orders) == 60
    assert {o.status for o in orders} == set(STATES)
    ended = Counter((o.status, o.closed_by) for o in orders if o.closed_by)
    assert {("refused", "merchant"), ("refused", "system"), ("cancelled", "merchant"),
            ("cancelled", "marketplace"), ("returned", "marketplace")} <= set(ended)
    assert max(Counter(o.status for o in orders).items(), key=lambda item: item[1])[0] == "delivered"
    assert all(o.reason for o in orders if o.status in ("refused", "cancelled", "returned") and o.closed_by != "system")
    assert all(o.tracking_number and o.carrier for o in orders if o.shipped_at)


def test_each_demo_order_history_is_a_legal_path_through_the_machine(app, seeded):
    now = datetime.now(timezone.utc)
    histories = _events(app, seeded.merchant.id)
    for order in _orders(app, seeded.merchant.id):
        events = histories[order.id]
        assert (events[0].transition, events[0].from_status, events[0].to_status) == ("create", None,
                                                                                      "awaiting_acceptance")
        assert events[0].at == order.created_at
        for before, event in zip(events, events[1:]):
            transition = TRANSITIONS[event.transition]
            assert event.from_status == before.to_status, order.order_number
            assert event.from_status in transition.sources and event.to_status == transition.target
            assert before.at < event.at <= now, order.order_number
        assert events[-1].to_status == order.status
        assert all(e.actor_user_id for e in events if e.actor_kind == "user"), "the history names who acted"
        assert all(e.actor_token_id for e in events if e.actor_kind == "token")


def test_demo_orders_keep_marketplace_times(app, seeded):
    now = datetime.now(timezone.utc)
    orders = _orders(app, seeded.merchant.id)
    for order in orders:
        assert order.acceptance_deadline == order.created_at + timedelta(hours=24)
        assert order.ship_by == order.created_at + timedelta(hours=48)
        assert now - timedelta(days=125) < order.created_at < now
        if order.accepted_at:
            assert order.created_at < order.accepted_at <= order.acceptance_deadline
        if order.delivered_at:
            assert order.shipped_at < order.delivered_at
    assert min(o.created_at for o in orders) < now - timedelta(days=60), "months of history"
    awaiting = [o for o in orders if o.status == "awaiting_acceptance"]
    assert awaiting and all(o.acceptance_deadline > now for o in awaiting)
    accepted = [o for o in orders if o.status == "accepted"]
    assert any(now < o.ship_by <= now + timedelta(hours=24) for o in accepted), "the at-risk list shows something"
    assert any(o.ship_by < now for o in accepted), "one is already past its ship-by"
    assert any(o.ship_by > now + timedelta(hours=24) for o in accepted)
    assert all(o.shipped_at > now - timedelta(days=7) for o in orders if o.status == "shipped")
    assert all(NUMBER.match(o.order_number) for o in orders)
    assert len({o.order_number for o in orders}) == len(orders)


def test_demo_orders_leave_stock_exact(app, seeded):
    orders = _orders(app, seeded.merchant.id)
    held: Counter[int] = Counter()
    for order in orders:
        assert 1 <= len(order.lines) <= 3
        assert len({line.sku for line in order.lines}) == len(order.lines)
        if order.status in OPEN_STATES:
            for line in order.lines:
                held[line.product_id] += line.quantity
    with app.app_context():
        products = get_session().scalars(select(Product).where(Product.merchant_id == seeded.merchant.id)).all()
    for product in products:
        assert product.stock >= 0 and product.available >= 0, product.sku
        assert product.reserved == held[product.id], product.sku
    assert not any(line.sku == "SKU-10" for order in orders for line in order.lines), "no stock, never ordered"


def test_seeding_demo_orders_again_creates_nothing(app, seeded):
    assert _seed(app, seeded, 60) is False
    assert len(_orders(app, seeded.merchant.id)) == 60


def test_demo_orders_on_a_thin_catalog_skip_what_is_short_and_never_fail(app, factory):
    s = shop(app, factory, stock={"ONE": 1, "NONE": 0, "TWO": 2})
    assert _seed(app, s, 40) is True
    orders = _orders(app, s.merchant.id)
    assert 1 <= len(orders) <= 3
    assert "awaiting_acceptance" in {o.status for o in orders}, "open orders take the little stock there is first"
    assert sum(line.quantity for order in orders for line in order.lines) <= 3
    with app.app_context():
        db = get_session()
        assert db.scalar(select(func.count()).select_from(Product).where(Product.merchant_id == s.merchant.id,
                                                                         Product.stock < 0)) == 0
        assert db.scalar(select(func.count()).select_from(OrderLine).where(OrderLine.sku == "NONE")) == 0


def test_a_merchant_without_stock_gets_no_orders(app, factory):
    s = shop(app, factory, stock={"NONE": 0})
    assert _seed(app, s, 20) is False
    assert _orders(app, s.merchant.id) == []


def test_seven_orders_already_show_every_state(app, factory):
    s = shop(app, factory, stock=STOCK)
    assert _seed(app, s, 7) is True
    assert {o.status for o in _orders(app, s.merchant.id)} == set(STATES)


def test_the_same_seed_plans_the_same_orders():
    now = datetime(2026, 3, 1, 12, tzinfo=timezone.utc)

    def plans(seed: int) -> list:
        rng = random.Random(seed)
        return [demo._plan(rng, fate, now) for fate in demo._fates(120)]

    assert plans(1) == plans(1)
    assert plans(1) != plans(2)
