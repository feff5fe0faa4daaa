"""The order state machine as data: the spec's graph, who may fire what, and the guards."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

from portal.orders.machine import (
    CLOSED_STATES,
    MARKETPLACE,
    MERCHANT,
    OPEN_STATES,
    STATES,
    SYSTEM,
    TRANSITIONS,
    allowed_from,
    available_to,
    legal_pairs,
)
from portal.orders.models import Order

SPEC_GRAPH = {
    ("awaiting_acceptance", "accepted"), ("accepted", "shipped"), ("shipped", "delivered"),
    ("awaiting_acceptance", "refused"), ("accepted", "cancelled"), ("delivered", "returned"),
}


def test_the_machine_connects_exactly_the_states_the_spec_names():
    assert legal_pairs() == SPEC_GRAPH
    assert set(STATES) == {state for pair in SPEC_GRAPH for state in pair}


def test_closed_states_have_no_way_out_but_a_return_after_delivery():
    for state in CLOSED_STATES:
        assert allowed_from(state) == (["return"] if state == "delivered" else [])


def test_open_states_are_those_the_merchant_still_has_to_act_on():
    assert set(OPEN_STATES) == {"awaiting_acceptance", "accepted"}
    assert not set(OPEN_STATES) & set(CLOSED_STATES)


def test_only_the_portal_refuses_automatically_and_only_the_marketplace_delivers_and_returns():
    assert TRANSITIONS["expire"].actors == {SYSTEM}
    assert MERCHANT not in TRANSITIONS["deliver"].actors
    assert TRANSITIONS["return"].actors == {MARKETPLACE}
    assert TRANSITIONS["accept"].actors == {MERCHANT}
    assert TRANSITIONS["cancel"].actors == {MERCHANT, MARKETPLACE}


def test_refusing_cancelling_and_returning_need_a_reason():
    assert {name for name, t in TRANSITIONS.items() if t.needs_reason} == {"refuse", "cancel", "return"}


def test_stock_is_released_by_refusal_and_cancellation_and_consumed_by_shipping():
    assert {name: t.stock for name, t in TRANSITIONS.items() if t.stock} == {
        "refuse": "release", "expire": "release", "cancel": "release", "ship": "consume"}


def _order(status: str, deadline: datetime) -> Order:
    return Order(status=status, acceptance_deadline=deadline, ship_by=deadline + timedelta(days=1))


def test_acceptance_is_guarded_by_the_deadline_and_expiry_waits_for_it():
    now = datetime(2026, 11, 23, 12, tzinfo=timezone.utc)
    before, after = _order("awaiting_acceptance", now + timedelta(hours=1)), _order("awaiting_acceptance", now - timedelta(seconds=1))
    accept, expire = TRANSITIONS["accept"], TRANSITIONS["expire"]
    assert all(guard(before, now) is None for guard in accept.guards)
    assert any(guard(after, now) for guard in accept.guards)
    assert any(guard(before, now) for guard in expire.guards)
    assert all(guard(after, now) is None for guard in expire.guards)


def test_the_order_page_offers_each_side_only_its_own_buttons():
    order = _order("accepted", datetime(2026, 11, 23, tzinfo=timezone.utc))
    assert [t.name for t in available_to(order, MERCHANT)] == ["cancel", "ship"]
    assert [t.name for t in available_to(order, MARKETPLACE)] == ["cancel"]
    awaiting = _order("awaiting_acceptance", datetime(2026, 11, 23, tzinfo=timezone.utc))
    assert [t.name for t in available_to(awaiting, MERCHANT)] == ["accept", "refuse"]
    assert available_to(awaiting, SYSTEM) == []  # expiry is the job's, never a button
