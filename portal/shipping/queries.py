"""Help against late shipment: the orders at risk, the next pickup cut-offs, and the daily digest's text."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from flask_babel import format_datetime, gettext, ngettext
from sqlalchemy import select
from sqlalchemy.orm import Session

from portal.accounts.models import Merchant
from portal.db import utcnow
from portal.orders.models import Order
from portal.orders.queries import at_risk, at_risk_hours
from portal.shipping.carriers import active_carriers, next_cutoff
from portal.shipping.machine import OPEN_STATES, STATE_LABELS
from portal.shipping.models import Carrier, Shipment, ShipmentEvent, ShipmentOrder
from portal.tenancy import Principal, scope, scoped_select


# The digest lists the most urgent orders and counts up to this many.
DIGEST_LISTED = 50
DIGEST_COUNT_LIMIT = 10_000


@dataclass(frozen=True)
class AtRisk:
    """An order that may ship late: not handed over, ship-by within the window (or past)."""

    order: Order
    shipment_id: int | None
    shipment_status: str | None

    @property
    def overdue(self) -> bool:
        return self.order.ship_by <= utcnow()


@dataclass(frozen=True)
class Cutoff:
    carrier: Carrier
    at: datetime
    # The merchant has a draft or ready shipment for this carrier.
    in_use: bool


def at_risk_orders(db: Session, principal: Principal, *, now: datetime | None = None, limit: int = 20) -> list[AtRisk]:
    """The principal's orders at risk of late shipment, the most urgent first, with their shipment if any."""
    stmt = at_risk(scope(select(Order, ShipmentOrder.shipment_id, Shipment.status), Order, principal), now=now)
    stmt = (stmt.outerjoin(ShipmentOrder, ShipmentOrder.order_id == Order.id)
            .outerjoin(Shipment, Shipment.id == ShipmentOrder.shipment_id)
            .order_by(Order.ship_by, Order.id).limit(limit))
    return [AtRisk(order, shipment_id, status) for order, shipment_id, status in db.execute(stmt)]


def next_cutoffs(db: Session, principal: Principal, *, now: datetime | None = None) -> list[Cutoff]:
    """Each active carrier's next pickup cut-off, soonest first; the carriers of the merchant's open shipments
    are marked."""
    in_use = set(db.scalars(scope(select(Shipment.carrier_id).where(Shipment.status.in_(OPEN_STATES)), Shipment,
                                  principal)))
    found = [Cutoff(carrier, moment, carrier.id in in_use) for carrier in active_carriers(db)
             if (moment := next_cutoff(carrier, now)) is not None]
    return sorted(found, key=lambda c: (not c.in_use, c.at))


def digest(db: Session, merchant: Merchant, *, now: datetime | None = None) -> dict[str, str | int]:
    """The daily e-mail-ready digest of a merchant: subject and plain-text body (in the request's language)."""
    now = now or utcnow()
    principal = Principal(role="system", merchant_id=merchant.id)
    risky = at_risk_orders(db, principal, now=now, limit=DIGEST_COUNT_LIMIT)
    overdue = sum(1 for item in risky if item.order.ship_by <= now)
    to_ship = db.scalar(scope(select(Order.id), Order, principal).where(Order.status == "accepted").limit(1))
    open_shipments = list(db.scalars(scoped_select(Shipment, principal).where(Shipment.status.in_(OPEN_STATES))
                                     .order_by(Shipment.pickup_date, Shipment.id)))
    subject = ngettext("%(merchant)s: %(num)d order at risk of late shipment",
                       "%(merchant)s: %(num)d orders at risk of late shipment", len(risky), merchant=merchant.name)
    lines = [subject, ""]
    if not risky:
        lines.append(gettext("No order is at risk of shipping late within %(hours)d hours.", hours=at_risk_hours()))
    else:
        lines.append(gettext("Ship these before their ship-by time (%(overdue)d already late):", overdue=overdue))
        for item in risky[:DIGEST_LISTED]:
            where = (gettext("in shipment SHP-%(id)06d", id=item.shipment_id) if item.shipment_id
                     else gettext("in no shipment yet"))
            lines.append(f"  - {item.order.order_number}: "
                         + gettext("ship by %(when)s, %(where)s", when=format_datetime(item.order.ship_by, "short"),
                                   where=where))
        if len(risky) > DIGEST_LISTED:
            lines.append("  " + gettext("… and %(n)d more", n=len(risky) - DIGEST_LISTED))
    lines.append("")
    if open_shipments:
        lines.append(gettext("Shipments not yet handed over:"))
        for shipment in open_shipments:
            cutoff = next_cutoff(shipment.carrier, now)
            lines.append(f"  - {shipment.number} ({shipment.carrier.name}, {STATE_LABELS[shipment.status]}): "
                         + gettext("pickup %(date)s, next cut-off %(cutoff)s", date=shipment.pickup_date.isoformat(),
                                   cutoff=format_datetime(cutoff, "short") if cutoff else "—"))
    elif to_ship is not None:
        lines.append(gettext("Accepted orders are waiting: build a shipment in the portal."))
    return {"merchant": merchant.slug, "subject": subject, "at_risk": len(risky), "overdue": overdue,
            "text": "\n".join(lines).rstrip() + "\n"}


def digests(db: Session, *, merchant_slug: str | None = None, now: datetime | None = None) -> list[dict[str, str | int]]:
    """The digest of one merchant, or of every active merchant."""
    stmt = select(Merchant).where(Merchant.is_active).order_by(Merchant.slug)
    if merchant_slug:
        stmt = select(Merchant).where(Merchant.slug == merchant_slug)
    return [digest(db, merchant, now=now) for merchant in db.scalars(stmt)]



def history(db: Session, shipment: Shipment) -> list[ShipmentEvent]:
    """The shipment's events, oldest first (the page's and the API's history)."""
    principal = Principal(role="system", merchant_id=shipment.merchant_id)
    return list(db.scalars(scoped_select(ShipmentEvent, principal).where(ShipmentEvent.shipment_id == shipment.id)
                           .order_by(ShipmentEvent.at, ShipmentEvent.id)))
