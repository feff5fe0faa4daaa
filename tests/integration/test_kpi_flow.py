"""The KPI reads what the real transitions record: handover times, who closed an order, tracking numbers."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

from portal.db import get_session
from portal.kpi.queries import merchant_figures
from portal.orders import services
from portal.tenancy import Principal
from tests.integration.test_orders import _data, create, fire, merchant_principal
from tests.support.orders import SHIP, carriers, shop

OPERATOR = Principal(role="operator_admin", merchant_id=None)


def test_orders_through_the_state_machine_count_in_every_order_metric(app, factory):
    carriers(app)
    s = shop(app, factory, {"TEA-1": 50})
    me = merchant_principal(s)
    now = datetime.now(timezone.utc)
    # Ship-by passed a day ago: handed over now, it is late. The other has days to spare.
    overdue = create(app, _data(s, [("TEA-1", 1)], created_at=now - timedelta(days=3),
                                acceptance_deadline=now - timedelta(days=2, hours=12),
                                ship_by=now - timedelta(days=1))).order
    in_time = create(app, _data(s, [("TEA-1", 2)], created_at=now - timedelta(hours=5))).order
    fire(app, overdue.id, "accept", me, at=now - timedelta(days=2, hours=20))
    fire(app, in_time.id, "accept", me)
    for order in (overdue, in_time):
        fire(app, order.id, "ship", me, **SHIP)
    # Not accepted in time: refused automatically by the expiry job. Refused by the merchant. Cancelled by
    # the marketplace (the buyer changed their mind): not the merchant's doing.
    expired = create(app, _data(s, [("TEA-1", 1)], created_at=now - timedelta(days=2))).order
    with app.app_context():
        assert services.expire_orders(get_session()) == [expired.order_number]
    refused = create(app, _data(s, [("TEA-1", 1)])).order
    fire(app, refused.id, "refuse", me, reason="Нет в наличии")
    by_buyer = create(app, _data(s, [("TEA-1", 1)])).order
    fire(app, by_buyer.id, "accept", me)
    fire(app, by_buyer.id, "cancel", OPERATOR, reason="Покупатель передумал")

    with app.app_context():
        figures = merchant_figures(get_session(), OPERATOR, merchant_ids=[s.merchant.id])[s.merchant.id]
    late, cancel, tracking = (figures[k] for k in ("late_shipment_rate", "cancellation_rate", "valid_tracking_rate"))
    assert (late.numerator, late.denominator) == (1, 2)
    assert (cancel.numerator, cancel.denominator) == (2, 5)
    assert (tracking.numerator, tracking.denominator) == (2, 2)
    assert figures["acceptance_time"].denominator == 3
    assert figures["handling_time"].denominator == 2
    assert figures["orders"].value == 2 and figures["units"].value == 3  # refused and cancelled ones are not sales
