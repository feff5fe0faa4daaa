"""The demo's KPI: one merchant green, one amber, one red on its order metrics, with a history for the charts."""
from __future__ import annotations

import random
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import func, select

from portal.accounts.models import Merchant
from portal.db import get_session, utcnow
from portal.demo import DEMO_ORDERS, seed_demo
from portal.kpi.metrics import AMBER, BY_KEY, GREEN, RED, status
from portal.kpi.models import KpiDaily
from portal.kpi.queries import health
from portal.orders import demo
from portal.orders.models import Order
from portal.shipping.demo import HANDED_OVER_ORDERS, PLAN
from portal.tenancy import Principal

STAFF = Principal(role="operator_admin", merchant_id=None)
ORDER_METRICS = ("late_shipment_rate", "cancellation_rate", "valid_tracking_rate", "acceptance_time", "handling_time")
SHIPMENT_ORDERS = sum(count for _, count in PLAN)


def test_the_demo_merchants_are_green_amber_and_red_with_a_history(app):
    with app.app_context():
        db = get_session()
        seed_demo(db, seed=3)
        merchants = db.scalars(select(Merchant).order_by(Merchant.id)).all()
        assert len(merchants) == 3
        figures = [health(db, STAFF, m.id).figures for m in merchants]
        orders = [db.scalar(select(func.count(Order.id)).where(Order.merchant_id == m.id)) for m in merchants]
        today = utcnow().date()
        past_days = [db.scalar(select(func.count(KpiDaily.day)).where(
            KpiDaily.merchant_id == m.id, KpiDaily.day < today, KpiDaily.received > 0)) for m in merchants]
        oldest = db.scalar(select(func.min(KpiDaily.day)))

    healthy, at_risk, failing = figures
    assert {k: healthy[k].status for k in ORDER_METRICS} == dict.fromkeys(ORDER_METRICS, GREEN)
    for key in ("late_shipment_rate", "cancellation_rate"):
        assert at_risk[key].status == AMBER, (key, at_risk[key].numerator, at_risk[key].denominator)
        assert failing[key].status == RED, (key, failing[key].numerator, failing[key].denominator)
    assert at_risk["cancellation_rate"].numerator >= 1, "amber from an order the merchant dropped, not from rounding"
    assert failing["acceptance_time"].status != GREEN, "a merchant that drops orders is also slow to accept them"
    assert all(f["valid_tracking_rate"].status == GREEN for f in figures)
    assert orders == [DEMO_ORDERS] * 3, "a busier recent week takes the place of older orders"
    assert all(days >= 40 for days in past_days), past_days  # a hundred orders over four months
    assert oldest <= today - timedelta(days=100), "the charts reach back over the history"


def _window_counts(plans: list, now: datetime, alongside: demo.Alongside) -> dict[str, tuple[int, int]]:
    received = [p for p in plans if now - demo.CANCEL_WINDOW <= p.created < now]
    shipped = [p for p in plans if p.at("ship") and now - demo.LATE_WINDOW <= p.at("ship") < now]
    return {
        "late_shipment_rate": (sum(p.at("ship") > p.created + demo.SHIPPING for p in shipped),
                               len(shipped) + alongside.shipped),
        "cancellation_rate": (sum(p.fate in demo.MERCHANT_CANCELS for p in received),
                              len(received) + alongside.received),
    }


@pytest.mark.parametrize("seed", [1, 2, 7])
def test_the_profiles_hold_at_any_hour_of_the_week_with_an_order_to_spare(seed):
    """The demo runs at the real time: whatever the hour and day, the windows show each profile's status,
    and still would with one order more or fewer in them."""
    history = DEMO_ORDERS - SHIPMENT_ORDERS
    alongside = demo.Alongside(SHIPMENT_ORDERS, HANDED_OVER_ORDERS)
    expected = {demo.HEALTHY: GREEN, demo.AT_RISK: AMBER, demo.FAILING: RED}
    start = datetime(2026, 3, 2, tzinfo=timezone.utc)  # a Monday
    for hours in range(0, 7 * 24, 11):
        now = start + timedelta(hours=hours, minutes=23)
        for profile, wanted in expected.items():
            rng = random.Random(f"orders:shop:{seed}")
            planned = [demo._plan(rng, fate, now, demo.CARRIERS, profile) for fate in demo._fates(history)]
            plans = demo._tune(rng, planned, now, demo.CARRIERS, profile, alongside)
            assert len(plans) == history
            for key, (count, total) in _window_counts(plans, now, alongside).items():
                metric = BY_KEY[key]
                for t in (total - 1, total, total + 1):
                    assert status(metric, count / t, metric.warning, metric.threshold) == wanted, (now, key, count, t)


def test_the_same_seed_tunes_the_same_recent_weeks():
    now = datetime(2026, 3, 1, 12, tzinfo=timezone.utc)

    def plans(seed: int) -> list:
        rng = random.Random(seed)
        return demo._tune(rng, [demo._plan(rng, fate, now, demo.CARRIERS, demo.FAILING) for fate in demo._fates(108)],
                          now, demo.CARRIERS, demo.FAILING, demo.Alongside(12, 8))

    assert plans(1) == plans(1)
    assert plans(1) != plans(2)
