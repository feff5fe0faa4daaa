"""Demo shipments: one merchant's shipments in every state, built through the services like a merchant would."""
from __future__ import annotations

import random
from datetime import datetime, timedelta
from decimal import Decimal

from sqlalchemy import select
from sqlalchemy.orm import Session

from portal.accounts.models import Merchant, User
from portal.catalog.models import Product
from portal.db import utcnow
from portal.errors import PortalError
from portal.orders.demo import CARRIERS, _address, _marketplace
from portal.orders.services import apply_transition, create_order
from portal.shipping import services
from portal.shipping.carriers import active_carriers, next_pickup_day
from portal.shipping.models import Shipment
from portal.tenancy import Principal

# (the state the shipment ends in, how many orders it holds)
PLAN = (("draft", 2), ("ready", 2), ("handed_over", 3), ("in_transit", 2), ("delivered", 3))
# The transitions that lead to each state, and which side fires them.
PATH = {"draft": [], "ready": [("ready", "merchant")], "handed_over": [("ready", "merchant"), ("handover", "merchant")],
        "in_transit": [("ready", "merchant"), ("handover", "merchant"), ("in_transit", "marketplace")],
        "delivered": [("ready", "merchant"), ("handover", "merchant"), ("in_transit", "marketplace"),
                      ("delivered", "marketplace")]}
# The demo shipments' orders handed over to the carrier (on time, a few hours ago).
HANDED_OVER_ORDERS = sum(count for state, count in PLAN if ("handover", "merchant") in PATH[state])


def seed_shipments(db: Session, merchant: Merchant, seed: int, *, admin: User | None = None,
                   now: datetime | None = None) -> bool:
    """Shipments of today's orders in every state, once per merchant (a merchant with shipments gets none).

    The orders are posted and accepted for the purpose (the history's accepted orders stay for the
    at-risk list); packages get weights, sides and tracking numbers in the carrier's format.
    """
    if db.scalar(select(Shipment.id).where(Shipment.merchant_id == merchant.id).limit(1)) is not None:
        return False
    makers = {code: make for code, _, make in CARRIERS}
    carriers = [c for c in active_carriers(db) if c.code in makers]
    products = list(db.execute(select(Product.sku, Product.price).where(
        Product.merchant_id == merchant.id, Product.status == "active", Product.stock - Product.reserved >= 10)
        .order_by(Product.id).limit(50)).tuples())
    if not carriers or not products or not merchant.is_active:
        return False
    rng = random.Random(f"shipments:{merchant.slug}:{seed}")
    now = (now or utcnow()).replace(microsecond=0)
    admin = admin or db.scalar(select(User).where(User.merchant_id == merchant.id, User.role == "merchant_admin")
                               .order_by(User.id).limit(1))
    sides = {"merchant": Principal(role="merchant_admin", merchant_id=merchant.id, user_id=admin.id if admin else None),
             "marketplace": _marketplace(db)}
    made = False
    for number, (state, count) in enumerate(PLAN, start=1):
        carrier = carriers[number % len(carriers)]
        start = now - timedelta(hours=12)
        order_ids = []
        for n in range(count):
            created = start - timedelta(minutes=rng.randint(30, 600))
            lines = [{"sku": sku, "quantity": rng.randint(1, 2), "unit_price": Decimal(price)}
                     for sku, price in rng.sample(products, k=min(len(products), rng.randint(1, 2)))]
            try:
                order = create_order(db, {
                    "order_number": f"MP-{merchant.slug.upper()}-S{number}{n + 1:02d}"[:64], "merchant": merchant.slug,
                    "lines": lines, "shipping_address": _address(rng), "created_at": created,
                    "acceptance_deadline": created + timedelta(hours=24), "ship_by": created + timedelta(hours=48),
                }, principal=sides["marketplace"], now=created).order
                apply_transition(db, order.id, "accept", principal=sides["merchant"],
                                 at=created + timedelta(minutes=rng.randint(5, 25)))
            except PortalError:
                continue
            order_ids.append(order.id)
        if not order_ids:
            continue
        try:  # an operator's edits of a carrier (formats, limits) may refuse what the demo makes: skip it
            shipment = services.create_shipment(
                db, principal=sides["merchant"], order_ids=order_ids, carrier=carrier.code,
                pickup_date=next_pickup_day(carrier, start.date()), at=start)
            if state != "draft" or rng.random() < 0.5:  # a draft may still be half packed
                for index, package in enumerate(list(shipment.packages), start=1):
                    services.update_package(
                        db, package.id, principal=sides["merchant"],
                        weight_grams=rng.randint(300, min(6000, carrier.max_weight_grams)),
                        length_mm=rng.choice((200, 300, 400)), width_mm=rng.choice((150, 200, 300)),
                        height_mm=rng.choice((100, 150, 200)), tracking_number=makers[carrier.code](rng),
                        at=start + timedelta(minutes=15 * index))
            for step, (name, side) in enumerate(PATH[state], start=1):
                services.fire(db, shipment.id, name, principal=sides[side], at=start + timedelta(hours=2 * step))
        except PortalError:
            db.rollback()
            continue
        made = True
    return made
