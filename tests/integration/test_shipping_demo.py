"""The demo's shipments: every state, built through the services, valid tracking, made once."""
from __future__ import annotations

from sqlalchemy import select

from portal.db import get_session
from portal.orders.models import Order
from portal.shipping import demo
from portal.shipping.carriers import load_default_carriers, tracking_is_valid
from portal.shipping.machine import STATES
from portal.shipping.models import Shipment, ShipmentEvent
from portal.shipping.paperwork import render
from tests.support.orders import shop

STOCK = {f"SKU-{n}": 100 for n in range(1, 8)}


def test_the_demo_has_shipments_in_every_state_once(app, factory):
    s = shop(app, factory, STOCK)
    with app.app_context():
        db = get_session()
        load_default_carriers(db)
        assert demo.seed_shipments(db, s.merchant, seed=1, admin=s.admin) is True
        assert demo.seed_shipments(db, s.merchant, seed=1, admin=s.admin) is False  # once
        shipments = db.scalars(select(Shipment).where(Shipment.merchant_id == s.merchant.id)).all()
        assert {sh.status for sh in shipments} == set(STATES)
        for shipment in shipments:
            order_states = {m.order.status for m in shipment.orders}
            expected = {"draft": {"accepted"}, "ready": {"accepted"}, "handed_over": {"shipped"},
                        "in_transit": {"shipped"}, "delivered": {"delivered"}}[shipment.status]
            assert order_states == expected, shipment.status
            if shipment.status != "draft":
                assert all(tracking_is_valid(shipment.carrier, p.tracking_number) for p in shipment.packages)
                assert render(db, shipment, "labels", "ru").startswith(b"%PDF")
            events = db.scalars(select(ShipmentEvent).where(ShipmentEvent.shipment_id == shipment.id)
                                .order_by(ShipmentEvent.id)).all()
            assert events[0].transition == "create"
            assert [e.at for e in events] == sorted(e.at for e in events)  # the history reads in time order
        shipped = db.scalars(select(Order).where(Order.merchant_id == s.merchant.id, Order.shipped_at.is_not(None))).all()
        assert shipped and all(o.carrier and o.tracking_number for o in shipped)


def test_no_active_carrier_no_demo_shipments(app, factory):
    s = shop(app, factory, STOCK)
    with app.app_context():
        assert demo.seed_shipments(get_session(), s.merchant, seed=1, admin=s.admin) is False
