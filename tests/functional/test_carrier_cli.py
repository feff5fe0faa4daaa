"""`portal carriers load-defaults` and the demo seed's carriers: the default set added once, edits kept."""
from __future__ import annotations

import json

from sqlalchemy import func, select

from portal.audit import AuditEvent
from portal.db import get_session
from portal.orders.models import Order
from portal.shipping.carriers import DEFAULT_CARRIERS, carrier_by_code, tracking_is_valid
from portal.shipping.models import Carrier
from tests.support.orders import set_carrier_active

CODES = [item["code"] for item in DEFAULT_CARRIERS]


def _json(result) -> dict:
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def _carrier_count(app) -> int:
    with app.app_context():
        return get_session().scalar(select(func.count()).select_from(Carrier))


def test_load_defaults_adds_the_default_carriers_once(runner, app):
    assert _json(runner.invoke(args=["carriers", "load-defaults", "--json"])) == {"added": CODES}
    assert _json(runner.invoke(args=["carriers", "load-defaults", "--json"])) == {"added": []}
    assert _carrier_count(app) == len(CODES)
    with app.app_context():
        events = get_session().scalars(select(AuditEvent).where(AuditEvent.action == "carrier.defaults_loaded")).all()
        assert [(e.details, e.actor_user_id) for e in events] == [({"added": CODES}, None)]


def test_load_defaults_prints_the_codes_added_and_keeps_an_operators_edits(runner, app):
    result = runner.invoke(args=["carriers", "load-defaults"])
    assert result.exit_code == 0
    assert result.output.strip() == f"{len(CODES)} carriers added: {', '.join(CODES)}"
    with app.app_context():
        db = get_session()
        carrier_by_code(db, "cdek").tracking_patterns = [r"\d{12}"]
        db.delete(carrier_by_code(db, "dpd"))
        db.commit()
    again = runner.invoke(args=["carriers", "load-defaults"])
    assert again.output.strip() == "1 carriers added: dpd"
    assert runner.invoke(args=["carriers", "load-defaults"]).output.strip() == "0 carriers added; all were there already."
    with app.app_context():
        assert carrier_by_code(get_session(), "cdek").tracking_patterns == [r"\d{12}"]


def test_the_demo_seed_loads_the_default_carriers_and_ships_with_them(runner, app):
    _json(runner.invoke(args=["demo", "seed", "--merchants", "1", "--products", "20", "--orders", "20", "--json"]))
    assert _carrier_count(app) == len(CODES)
    with app.app_context():
        db = get_session()
        shipped = db.scalars(select(Order).where(Order.shipped_at.is_not(None))).all()
        assert shipped
        for order in shipped:
            carrier = carrier_by_code(db, order.carrier)
            assert carrier is not None and tracking_is_valid(carrier, order.tracking_number), order.order_number
    again = _json(runner.invoke(args=["demo", "seed", "--merchants", "1", "--products", "20", "--orders", "20",
                                      "--json"]))
    assert again["created"] is False and _carrier_count(app) == len(CODES)


def test_the_demo_seed_without_orders_still_loads_the_carriers(runner, app):
    assert _json(runner.invoke(args=["demo", "seed", "--merchants", "1", "--orders", "0", "--json"]))["created"]
    assert _carrier_count(app) == len(CODES)


def test_the_demo_ships_only_with_active_carriers(runner, app):
    runner.invoke(args=["carriers", "load-defaults"])
    set_carrier_active(app, "cdek", False)
    _json(runner.invoke(args=["demo", "seed", "--merchants", "1", "--products", "20", "--orders", "30", "--json"]))
    with app.app_context():
        used = set(get_session().scalars(select(Order.carrier).where(Order.carrier.is_not(None))))
    assert used and "cdek" not in used and used <= {"russian_post", "boxberry"}
