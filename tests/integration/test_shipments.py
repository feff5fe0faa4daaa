"""Shipment services on the real database: building, packing, splitting, readiness, handover, carrier events."""
from __future__ import annotations

from datetime import date, datetime, timedelta, timezone
from decimal import Decimal

import pytest
from sqlalchemy import select

from portal.db import get_session
from portal.orders import services as orders
from portal.orders.models import Order, OrderEvent
from portal.shipping import services
from portal.shipping.carriers import load_default_carriers
from portal.shipping.exceptions import (
    IllegalShipmentTransition,
    OrderInShipment,
    ShipmentError,
    ShipmentForbidden,
    ShipmentNotFound,
)
from portal.shipping.machine import STATES, TRANSITIONS, legal_pairs
from portal.shipping.models import Shipment, ShipmentEvent
from portal.tenancy import Principal
from tests.support.orders import order_payload, pickup_day, shop, stock_of

OPERATOR = Principal(role="operator_admin", merchant_id=None)
CDEK_TRACKING = "1234567890"


def _today() -> date:
    return datetime.now(timezone.utc).date()  # when called: a suite may run past midnight


def _next_sunday() -> date:
    day = _today() + timedelta(days=1)
    return day + timedelta(days=(6 - day.weekday()) % 7)


def _merchant(s) -> Principal:
    return Principal(role="merchant_admin", merchant_id=s.merchant.id, user_id=s.admin.id)


@pytest.fixture
def s(app, factory):
    with app.app_context():
        load_default_carriers(get_session())
    return shop(app, factory, {"TEA-1": 10, "CUP-2": 5})


def _accepted(app, s, lines=(("TEA-1", 3),)) -> int:
    data = order_payload(s, list(lines))
    for line in data["lines"]:
        line["unit_price"] = Decimal(line["unit_price"])
    for key in ("created_at", "acceptance_deadline", "ship_by"):
        data.setdefault(key, None)
    with app.app_context():
        db = get_session()
        order = orders.create_order(db, data, principal=OPERATOR).order
        orders.apply_transition(db, order.id, "accept", principal=_merchant(s))
        return order.id


def _call(app, func, *args, **kwargs):
    with app.app_context():
        return func(get_session(), *args, **kwargs)


def _build(app, s, order_ids, carrier="cdek"):
    return _call(app, services.create_shipment, principal=_merchant(s), order_ids=order_ids, carrier=carrier,
                 pickup_date=pickup_day()).id


def _pack_all(app, s, shipment_id, tracking=CDEK_TRACKING):
    with app.app_context():
        db = get_session()
        shipment = db.get(Shipment, shipment_id)
        for n, package in enumerate(shipment.packages):
            services.update_package(db, package.id, principal=_merchant(s), weight_grams=1200, length_mm=300,
                                    width_mm=200, height_mm=100, tracking_number=f"{int(tracking) + n:010d}")


def _shipment(app, shipment_id) -> Shipment:
    with app.app_context():
        db = get_session()
        shipment = db.get(Shipment, shipment_id)
        for package in shipment.packages:
            _ = [line.quantity for line in package.lines]
        _ = [m.order.status for m in shipment.orders]
        return shipment


def _order(app, order_id) -> Order:
    with app.app_context():
        return get_session().get(Order, order_id)


def test_the_machine_is_the_spec_graph():
    assert set(STATES) == {"draft", "ready", "handed_over", "in_transit", "delivered"}
    assert {("draft", "ready"), ("ready", "handed_over"), ("handed_over", "in_transit"),
            ("in_transit", "delivered")} <= legal_pairs()
    assert all(t.target in STATES and set(t.sources) <= set(STATES) for t in TRANSITIONS.values())


def test_a_shipment_of_accepted_orders_packs_each_order_in_one_package(app, s):
    first, second = _accepted(app, s), _accepted(app, s, [("TEA-1", 1), ("CUP-2", 2)])
    shipment = _shipment(app, _build(app, s, [first, second]))
    assert shipment.status == "draft" and shipment.carrier.code == "cdek"
    assert [m.order_id for m in shipment.orders] == [first, second]
    assert [(p.order_id, sorted(line.quantity for line in p.lines)) for p in shipment.packages] == [
        (first, [3]), (second, [1, 2])]
    assert shipment.number == f"SHP-{shipment.id:06d}" and shipment.packages[0].code.startswith("PKG-")


def test_bad_orders_carriers_and_dates_are_refused_and_nothing_is_stored(app, s, factory):
    waiting = _call(app, orders.create_order, {**order_payload(s), "created_at": None, "acceptance_deadline": None,
                                                "ship_by": None, "lines": [{"sku": "TEA-1", "quantity": 1,
                                                                             "unit_price": Decimal("100.00")}]},
                    principal=OPERATOR).order.id
    other = shop(app, factory, {"TEA-1": 10})
    theirs = _accepted(app, other)
    mine = _accepted(app, s)
    cases = [
        ({"order_ids": [waiting]}, "order_ids[0]", "only accepted orders"),
        ({"order_ids": [mine, theirs]}, "order_ids[1]", f"no order {theirs}"),
        ({"order_ids": [mine, mine]}, "order_ids[1]", "twice"),
        ({"order_ids": []}, "order_ids", None),
        ({"order_ids": [mine], "carrier": "pigeon"}, "carrier", "pigeon"),
        ({"order_ids": [mine], "pickup_date": _today() - timedelta(days=1)}, "pickup_date", None),
        ({"order_ids": [mine], "pickup_date": _next_sunday()}, "pickup_date", "does not pick up"),
    ]
    for changes, field, words in cases:
        arguments = {"order_ids": [mine], "carrier": "cdek", "pickup_date": pickup_day(0), **changes}
        with pytest.raises(ShipmentError) as caught:
            _call(app, services.create_shipment, principal=_merchant(s), **arguments)
        assert caught.value.details["field"] == field
        if words:
            assert words in caught.value.message
    with app.app_context():
        assert get_session().scalar(select(Shipment.id)) is None
    with pytest.raises(ShipmentForbidden):
        _call(app, services.create_shipment, principal=OPERATOR, order_ids=[mine], carrier="cdek", pickup_date=pickup_day(0))


def test_an_order_goes_in_one_shipment_at_a_time_and_removing_it_from_a_draft_frees_it(app, s):
    order_id = _accepted(app, s)
    first = _build(app, s, [order_id])
    with pytest.raises(OrderInShipment, match="SHP-"):
        _build(app, s, [order_id])
    _call(app, services.remove_order, first, order_id, principal=_merchant(s))
    assert _shipment(app, first).orders == [] and _shipment(app, first).packages == []
    second = _build(app, s, [order_id])
    _pack_all(app, s, second)
    _call(app, services.fire, second, "ready", principal=_merchant(s))
    with pytest.raises(IllegalShipmentTransition) as caught:
        _call(app, services.remove_order, second, order_id, principal=_merchant(s))
    assert caught.value.details["status"] == "ready"


def test_packages_weights_sides_and_tracking_numbers_are_checked_against_the_carrier(app, s):
    shipment_id = _build(app, s, [_accepted(app, s)], carrier="boxberry")  # at most 15 kg
    package_id = _shipment(app, shipment_id).packages[0].id
    with pytest.raises(ShipmentError, match="15 kg") as caught:
        _call(app, services.update_package, package_id, principal=_merchant(s), weight_grams=16_000)
    assert caught.value.details["field"] == "weight_grams"
    with pytest.raises(ShipmentError) as caught:
        _call(app, services.update_package, package_id, principal=_merchant(s), tracking_number="12-34")
    assert caught.value.details["field"] == "tracking_number" and "Boxberry" in caught.value.message
    with pytest.raises(ShipmentError):
        _call(app, services.update_package, package_id, principal=_merchant(s), length_mm=0)
    package = _call(app, services.update_package, package_id, principal=_merchant(s), weight_grams=15_000,
                    length_mm=400, width_mm=300, height_mm=200, tracking_number="BB123456789")
    assert (package.weight_grams, package.tracking_number) == (15_000, "BB123456789")


def test_an_order_split_across_packages_is_packed_whole_and_a_package_merged_back(app, s):
    order_id = _accepted(app, s, [("TEA-1", 3), ("CUP-2", 1)])
    shipment_id = _build(app, s, [order_id])
    package = _shipment(app, shipment_id).packages[0]
    tea = next(line for line in package.lines if line.quantity == 3)
    with pytest.raises(ShipmentError, match="at least one unit"):
        _call(app, services.split_package, package.id, {line.order_line_id: line.quantity for line in package.lines},
              principal=_merchant(s))
    with pytest.raises(ShipmentError, match="1 to 3"):
        _call(app, services.split_package, package.id, {tea.order_line_id: 4}, principal=_merchant(s))
    new = _call(app, services.split_package, package.id, {tea.order_line_id: 2}, principal=_merchant(s))
    shipment = _shipment(app, shipment_id)
    assert [sorted(line.quantity for line in p.lines) for p in shipment.packages] == [[1, 1], [2]]
    _pack_all(app, s, shipment_id)
    with app.app_context():
        assert services.problems(get_session().get(Shipment, shipment_id)) == []
    _call(app, services.remove_package, new.id, principal=_merchant(s))
    assert [sorted(line.quantity for line in p.lines) for p in _shipment(app, shipment_id).packages] == [[1, 3]]
    with pytest.raises(ShipmentError, match="only package"):
        _call(app, services.remove_package, package.id, principal=_merchant(s))


def test_ready_needs_every_unit_packed_weighed_measured_and_tracked(app, s):
    shipment_id = _build(app, s, [_accepted(app, s)])
    with pytest.raises(ShipmentError) as caught:
        _call(app, services.fire, shipment_id, "ready", principal=_merchant(s))
    problems = caught.value.details["problems"]
    assert any("no weight" in p for p in problems) and any("tracking number" in p for p in problems)
    assert _shipment(app, shipment_id).status == "draft"
    _pack_all(app, s, shipment_id)
    assert _call(app, services.fire, shipment_id, "ready", principal=_merchant(s)).status == "ready"
    with pytest.raises(ShipmentForbidden):
        _call(app, services.fire, shipment_id, "handover", principal=OPERATOR)


def test_an_empty_shipment_cannot_be_made_ready_nor_handed_over(app, s):
    order_id = _accepted(app, s)
    shipment_id = _build(app, s, [order_id])
    _call(app, services.remove_order, shipment_id, order_id, principal=_merchant(s))
    with pytest.raises(ShipmentError, match="no orders"):
        _call(app, services.fire, shipment_id, "ready", principal=_merchant(s))
    with pytest.raises(IllegalShipmentTransition):
        _call(app, services.fire, shipment_id, "handover", principal=_merchant(s))


def test_handover_ships_every_order_at_that_moment_with_its_tracking_number(app, s):
    first, second = _accepted(app, s, [("TEA-1", 2)]), _accepted(app, s, [("CUP-2", 1)])
    shipment_id = _build(app, s, [first, second])
    _pack_all(app, s, shipment_id)
    _call(app, services.fire, shipment_id, "ready", principal=_merchant(s))
    moment = datetime.now(timezone.utc).replace(microsecond=0)
    shipment = _call(app, services.fire, shipment_id, "handover", principal=_merchant(s), at=moment)
    assert shipment.status == "handed_over" and shipment.handed_over_at == moment
    for order_id, tracking in ((first, CDEK_TRACKING), (second, f"{int(CDEK_TRACKING) + 1:010d}")):
        order = _order(app, order_id)
        assert (order.status, order.shipped_at, order.tracking_number, order.carrier) == (
            "shipped", moment, tracking, "cdek")
    assert stock_of(app, s.merchant.id, "TEA-1") == (8, 0) and stock_of(app, s.merchant.id, "CUP-2") == (4, 0)
    with app.app_context():
        events = get_session().scalars(select(ShipmentEvent.transition).where(ShipmentEvent.shipment_id == shipment_id)
                                       .order_by(ShipmentEvent.id)).all()
        assert events[0] == "create" and events[-2:] == ["ready", "handover"]
        shipped = get_session().scalars(select(OrderEvent.order_id).where(OrderEvent.transition == "ship")).all()
        assert sorted(shipped) == [first, second]


def test_a_handover_ships_all_its_orders_or_none(app, s):
    first, second = _accepted(app, s), _accepted(app, s, [("CUP-2", 1)])
    shipment_id = _build(app, s, [first, second])
    _pack_all(app, s, shipment_id)
    _call(app, services.fire, shipment_id, "ready", principal=_merchant(s))
    _call(app, orders.apply_transition, second, "cancel", principal=OPERATOR, reason="buyer changed their mind")
    with pytest.raises(ShipmentError, match="cancelled"):
        _call(app, services.fire, shipment_id, "handover", principal=_merchant(s))
    assert _order(app, first).status == "accepted" and _shipment(app, shipment_id).status == "ready"
    assert stock_of(app, s.merchant.id, "TEA-1") == (10, 3)


def test_carrier_events_from_the_marketplace_move_the_shipment_and_deliver_its_orders(app, s):
    order_id = _accepted(app, s)
    shipment_id = _build(app, s, [order_id])
    _pack_all(app, s, shipment_id)
    for name in ("ready", "handover"):
        _call(app, services.fire, shipment_id, name, principal=_merchant(s))
    with pytest.raises(ShipmentForbidden):
        _call(app, services.fire, shipment_id, "in_transit", principal=_merchant(s))
    assert _call(app, services.fire, shipment_id, "in_transit", principal=OPERATOR).status == "in_transit"
    assert _call(app, services.fire, shipment_id, "delivered", principal=OPERATOR).status == "delivered"
    assert _order(app, order_id).status == "delivered"
    with pytest.raises(IllegalShipmentTransition) as caught:
        _call(app, services.fire, shipment_id, "in_transit", principal=OPERATOR)
    assert caught.value.details["status"] == "delivered"


def test_another_merchants_shipment_and_packages_are_not_found(app, s, factory):
    shipment_id = _build(app, s, [_accepted(app, s)])
    package_id = _shipment(app, shipment_id).packages[0].id
    other = shop(app, factory, {"TEA-1": 1})
    for call in (lambda: _call(app, services.fire, shipment_id, "ready", principal=_merchant(other)),
                 lambda: _call(app, services.update_package, package_id, principal=_merchant(other), weight_grams=5),
                 lambda: _call(app, services.delete_draft, shipment_id, principal=_merchant(other))):
        with pytest.raises(ShipmentNotFound):
            call()
    assert _shipment(app, shipment_id).packages[0].weight_grams == 0


def test_a_draft_can_be_thrown_away_and_its_orders_shipped_otherwise(app, s):
    order_id = _accepted(app, s)
    shipment_id = _build(app, s, [order_id])
    _call(app, services.delete_draft, shipment_id, principal=_merchant(s))
    with app.app_context():
        assert get_session().get(Shipment, shipment_id) is None
    assert _build(app, s, [order_id])


def test_the_documents_of_a_shipment_are_built_from_its_packages(app, s):
    from portal.shipping.paperwork import DOCUMENTS, render, shipment_doc

    order_id = _accepted(app, s, [("TEA-1", 3), ("CUP-2", 1)])
    shipment_id = _build(app, s, [order_id])
    package = _shipment(app, shipment_id).packages[0]
    tea = next(line for line in package.lines if line.quantity == 3)
    _call(app, services.split_package, package.id, {tea.order_line_id: 1}, principal=_merchant(s))
    _pack_all(app, s, shipment_id)
    with app.app_context():
        db = get_session()
        shipment = db.get(Shipment, shipment_id)
        doc = shipment_doc(db, shipment, "ru")
        assert [p.code for p in doc.packages] == [p.code for p in shipment.packages]
        assert [p.index for p in doc.packages] == [1, 2] and doc.packages[0].ship_to.name == "Анна Смирнова"
        assert dict(doc.orders[0].packages_of_line)["TEA-1"] == tuple(p.code for p in shipment.packages)
        assert doc.packages[1].tracking_number == f"{int(CDEK_TRACKING) + 1:010d}"
        for name in DOCUMENTS:
            assert render(db, shipment, name, "ru").startswith(b"%PDF")


def test_a_draft_is_handed_over_in_one_transaction_or_left_as_it_was(app, s):
    first, second = _accepted(app, s), _accepted(app, s, [("CUP-2", 1)])
    shipment_id = _build(app, s, [first, second])
    _pack_all(app, s, shipment_id)
    _call(app, orders.apply_transition, second, "cancel", principal=OPERATOR, reason="buyer changed their mind")
    with pytest.raises(ShipmentError, match="cancelled"):
        _call(app, services.hand_over, shipment_id, principal=_merchant(s))
    with app.app_context():
        transitions = get_session().scalars(select(ShipmentEvent.transition)
                                            .where(ShipmentEvent.shipment_id == shipment_id)).all()
    assert _shipment(app, shipment_id).status == "draft" and "ready" not in transitions
    _call(app, services.remove_order, shipment_id, second, principal=_merchant(s))
    with app.app_context():
        from portal.shipping.models import Carrier

        get_session().scalar(select(Carrier).where(Carrier.code == "cdek")).is_active = False
        get_session().commit()
    with pytest.raises(ShipmentError, match="not active"):
        _call(app, services.hand_over, shipment_id, principal=_merchant(s))
    with app.app_context():
        get_session().scalar(select(Carrier).where(Carrier.code == "cdek")).is_active = True
        get_session().commit()
    assert _call(app, services.hand_over, shipment_id, principal=_merchant(s)).status == "handed_over"
    assert _order(app, first).status == "shipped"


def test_the_same_orders_put_in_two_shipments_at_once_go_in_one(app, s):
    from tests.integration.test_orders import _race

    order_ids = [_accepted(app, s), _accepted(app, s, [("CUP-2", 1)])]
    results = _race(4, lambda i: _build(app, s, list(reversed(order_ids)) if i % 2 else order_ids))
    made = [r for r in results if isinstance(r, int)]
    assert len(made) == 1, results
    assert all(isinstance(r, OrderInShipment) for r in results if not isinstance(r, int)), results
    assert [m.order_id for m in _shipment(app, made[0]).orders]


def test_a_handover_and_a_cancellation_at_once_leave_a_consistent_state(app, s):
    from tests.integration.test_orders import _race

    order_id = _accepted(app, s)
    shipment_id = _build(app, s, [order_id])
    _pack_all(app, s, shipment_id)
    _call(app, services.fire, shipment_id, "ready", principal=_merchant(s))
    work = [lambda: _call(app, services.hand_over, shipment_id, principal=_merchant(s)),
            lambda: _call(app, orders.apply_transition, order_id, "cancel", principal=OPERATOR, reason="race")]
    results = _race(2, lambda i: work[i]())
    status, order = _shipment(app, shipment_id).status, _order(app, order_id)
    if order.status == "shipped":
        assert status == "handed_over" and stock_of(app, s.merchant.id, "TEA-1") == (7, 0)
    else:
        assert (order.status, status) == ("cancelled", "ready") and stock_of(app, s.merchant.id, "TEA-1") == (10, 0)
    assert sum(isinstance(r, Exception) for r in results) == 1, results


def test_an_order_in_an_open_shipment_ships_only_with_it(app, s):
    from portal.orders.exceptions import IllegalTransition

    order_id = _accepted(app, s)
    shipment_id = _build(app, s, [order_id])
    with pytest.raises(IllegalTransition, match=f"SHP-{shipment_id:06d}"):
        _call(app, orders.apply_transition, order_id, "ship", principal=_merchant(s), carrier="cdek",
              tracking_number=CDEK_TRACKING)
    assert _order(app, order_id).status == "accepted"
    _call(app, services.remove_order, shipment_id, order_id, principal=_merchant(s))
    shipped = _call(app, orders.apply_transition, order_id, "ship", principal=_merchant(s), carrier="cdek",
                    tracking_number=CDEK_TRACKING)
    assert shipped.order.status == "shipped"


def test_one_tracking_number_on_two_packages_stops_the_shipment(app, s):
    shipment_id = _build(app, s, [_accepted(app, s), _accepted(app, s, [("CUP-2", 1)])])
    _pack_all(app, s, shipment_id)
    second = _shipment(app, shipment_id).packages[1].id
    _call(app, services.update_package, second, principal=_merchant(s), tracking_number=CDEK_TRACKING)
    with pytest.raises(ShipmentError, match="more than one package"):
        _call(app, services.fire, shipment_id, "ready", principal=_merchant(s))
