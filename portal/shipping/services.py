"""Shipments: built from accepted orders, packed, made ready, handed over; carrier events deliver them.

``fire`` is the one function that changes a shipment's status; a handover ships every order of the
shipment in the same transaction (all or none), through the orders' own ``apply_transition``.
"""
from __future__ import annotations

from collections import defaultdict
from datetime import date, datetime, timedelta
from typing import Any

from flask_babel import format_date, gettext
from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from portal.catalog.bulk import share_merchant_catalog
from portal.catalog.models import Product
from portal.db import begin_write, utcnow
from portal.orders import services as orders
from portal.orders.machine import MARKETPLACE, MERCHANT
from portal.orders.machine import STATE_LABELS as ORDER_STATES
from portal.orders.models import Order
from portal.shipping.carriers import carrier_by_code, tracking_problem
from portal.shipping.exceptions import (
    IllegalShipmentTransition,
    OrderInShipment,
    ShipmentError,
    ShipmentForbidden,
    ShipmentNotFound,
)
from portal.shipping.machine import CARRIER_EVENTS, EDITABLE_STATES, STATE_LABELS, TRANSITIONS, Transition, allowed_from
from portal.shipping.models import Carrier, Package, PackageLine, Shipment, ShipmentEvent, ShipmentOrder
from portal.tenancy import Principal, scoped_select

MAX_ORDERS = 500
MAX_DIMENSION_MM = 3000
PICKUP_DAYS_AHEAD = 60
# A carrier event may carry a time a little ahead of ours (clocks differ).
EVENT_CLOCK_SKEW = timedelta(minutes=5)


def _invalid(message: str, field: str, **details: Any) -> ShipmentError:
    return ShipmentError(message, details={"field": field, **details})


def _event(shipment: Shipment, from_status: str | None, transition: str, principal: Principal, at: datetime,
           details: dict[str, Any] | None = None) -> ShipmentEvent:
    return ShipmentEvent(shipment_id=shipment.id, merchant_id=shipment.merchant_id, at=at, transition=transition,
                         from_status=from_status, to_status=shipment.status,
                         actor_kind=orders.recorded_actor(principal),
                         actor_user_id=principal.user_id, actor_token_id=principal.token_id, details=details or {})


def _active_carrier(db: Session, code: str) -> Carrier:
    carrier = carrier_by_code(db, (code or "").strip())
    if carrier is None or not carrier.is_active:
        raise _invalid(gettext("There is no active carrier %(code)s.", code=code), "carrier")
    return carrier


def _locked_shipment(db: Session, shipment_id: int, principal: Principal) -> Shipment:
    begin_write(db)
    shipment = db.scalar(scoped_select(Shipment, principal).where(Shipment.id == shipment_id)
                         .with_for_update(of=Shipment.__table__).execution_options(populate_existing=True))
    if shipment is None:
        db.rollback()
        raise ShipmentNotFound(gettext("We could not find what you asked for."))
    return shipment


def _editable(shipment: Shipment) -> None:
    if shipment.status not in EDITABLE_STATES:
        raise IllegalShipmentTransition(
            gettext("The shipment is %(status)s; only a draft can be changed.", status=STATE_LABELS[shipment.status]),
            details={"status": shipment.status, "allowed": allowed_from(shipment.status)})


def _take_orders(db: Session, shipment: Shipment, order_ids: list[int], principal: Principal) -> None:
    """Lock the orders, check each is the merchant's, accepted and in no shipment, and pack each in one package."""
    if not order_ids:
        raise _invalid(gettext("Choose at least one accepted order."), "order_ids")
    if len(order_ids) > MAX_ORDERS:
        raise _invalid(gettext("A shipment holds at most %(n)d orders.", n=MAX_ORDERS), "order_ids")
    found = {o.id: o for o in db.scalars(scoped_select(Order, principal).where(Order.id.in_(order_ids))
                                         .order_by(Order.id).with_for_update(of=Order.__table__))}
    seen: set[int] = set()
    for index, order_id in enumerate(order_ids):
        order = found.get(order_id)
        if order is None:
            raise _invalid(gettext("There is no order %(id)s.", id=order_id), f"order_ids[{index}]")
        if order_id in seen:
            raise _invalid(gettext("The order %(number)s is listed twice.", number=order.order_number),
                           f"order_ids[{index}]")
        seen.add(order_id)
        if order.status != "accepted":
            raise _invalid(gettext("The order %(number)s is %(status)s; only accepted orders can be shipped.",
                                   number=order.order_number, status=ORDER_STATES[order.status]),
                           f"order_ids[{index}]")
    taken = db.execute(select(ShipmentOrder.order_id, ShipmentOrder.shipment_id)
                       .where(ShipmentOrder.order_id.in_(order_ids))).first()
    if taken is not None:
        raise OrderInShipment(
            gettext("The order %(number)s is already in the shipment SHP-%(shipment)06d.",
                    number=found[taken.order_id].order_number, shipment=taken.shipment_id),
            details={"order_id": taken.order_id, "shipment_id": taken.shipment_id})
    for order_id in order_ids:
        order = found[order_id]
        shipment.orders.append(ShipmentOrder(order_id=order.id, merchant_id=shipment.merchant_id))
        shipment.packages.append(Package(order_id=order.id, merchant_id=shipment.merchant_id, lines=[
            PackageLine(order_line_id=line.id, quantity=line.quantity) for line in order.lines]))


def _pickup(pickup_date: date, today: date, carrier: Carrier) -> date:
    if pickup_date < today:
        raise _invalid(gettext("The pickup date is in the past."), "pickup_date")
    if pickup_date > today + timedelta(days=PICKUP_DAYS_AHEAD):
        raise _invalid(gettext("The pickup date is more than %(n)d days ahead.", n=PICKUP_DAYS_AHEAD), "pickup_date")
    if carrier.pickup_days and pickup_date.weekday() not in carrier.pickup_days:
        raise _invalid(gettext("%(carrier)s does not pick up on %(day)s; its pickup days are %(days)s.",
                               carrier=carrier.name, day=format_date(pickup_date, "EEEE"),
                               days=", ".join(format_date(date(2024, 1, 1 + d), "EEE")  # 2024-01-01: a Monday
                                              for d in sorted(carrier.pickup_days))), "pickup_date")
    return pickup_date


def _merchant_only(principal: Principal) -> None:
    if principal.merchant_id is None:
        raise ShipmentForbidden(gettext("Shipments are built by the merchant."))


def create_shipment(db: Session, *, principal: Principal, order_ids: list[int], carrier: str, pickup_date: date,
                    at: datetime | None = None) -> Shipment:
    """A draft shipment of the merchant's accepted orders, one package per order holding all its lines."""
    _merchant_only(principal)
    at = at or utcnow()
    chosen = _active_carrier(db, carrier)
    _pickup(pickup_date, at.date(), chosen)
    begin_write(db)
    try:
        shipment = Shipment(merchant_id=principal.merchant_id, carrier_id=chosen.id, pickup_date=pickup_date,
                            status="draft", created_at=at, updated_at=at)
        db.add(shipment)
        _take_orders(db, shipment, list(order_ids), principal)
        db.flush()
        db.add(_event(shipment, None, "create", principal, at, {"orders": len(order_ids)}))
        db.commit()
    except IntegrityError:
        db.rollback()  # an order taken by a shipment made at the same moment
        raise OrderInShipment(gettext("One of the orders was just put in another shipment."))
    except Exception:
        db.rollback()
        raise
    return shipment


def _changed(db: Session, shipment: Shipment, transition: str, principal: Principal, details: dict[str, Any],
             at: datetime | None = None) -> None:
    at = at or utcnow()
    shipment.updated_at = at
    db.add(_event(shipment, shipment.status, transition, principal, at, details))
    db.commit()


def add_orders(db: Session, shipment_id: int, order_ids: list[int], *, principal: Principal) -> Shipment:
    _merchant_only(principal)
    shipment = _locked_shipment(db, shipment_id, principal)
    try:
        _editable(shipment)
        _take_orders(db, shipment, list(order_ids), principal)
        _changed(db, shipment, "add_orders", principal, {"order_ids": list(order_ids)})
    except Exception:
        db.rollback()
        raise
    return shipment


def remove_order(db: Session, shipment_id: int, order_id: int, *, principal: Principal) -> Shipment:
    """Take an order (and its packages) out of a draft shipment; the order can go in another one."""
    _merchant_only(principal)
    shipment = _locked_shipment(db, shipment_id, principal)
    try:
        _editable(shipment)
        member = next((m for m in shipment.orders if m.order_id == order_id), None)
        if member is None:
            raise ShipmentNotFound(gettext("The order is not in this shipment."))
        shipment.orders.remove(member)
        for package in [p for p in shipment.packages if p.order_id == order_id]:
            shipment.packages.remove(package)
        _changed(db, shipment, "remove_order", principal, {"order_number": member.order.order_number})
    except Exception:
        db.rollback()
        raise
    return shipment


def _locked_package(db: Session, package_id: int, principal: Principal) -> tuple[Shipment, Package]:
    shipment_id = db.scalar(scoped_select(Package, principal).with_only_columns(Package.shipment_id)
                            .where(Package.id == package_id))
    if shipment_id is None:
        raise ShipmentNotFound(gettext("We could not find what you asked for."))
    shipment = _locked_shipment(db, shipment_id, principal)
    package = next((p for p in shipment.packages if p.id == package_id), None)
    if package is None:  # moved or removed while we waited for the lock
        db.rollback()
        raise ShipmentNotFound(gettext("We could not find what you asked for."))
    return shipment, package


def _check_size(shipment: Shipment, package: Package) -> None:
    carrier = shipment.carrier
    if package.weight_grams > carrier.max_weight_grams:
        raise _invalid(gettext("The package %(code)s weighs %(weight)s kg; %(carrier)s takes at most %(max)s kg.",
                               code=package.code, weight=f"{package.weight_grams / 1000:g}", carrier=carrier.name,
                               max=f"{carrier.max_weight_grams / 1000:g}"), "weight_grams", package=package.code)
    for field in ("length_mm", "width_mm", "height_mm"):
        if getattr(package, field) > MAX_DIMENSION_MM:
            raise _invalid(gettext("A side of a package is at most %(n)d mm.", n=MAX_DIMENSION_MM), field,
                           package=package.code)


def update_package(db: Session, package_id: int, *, principal: Principal, weight_grams: int | None = None,
                   length_mm: int | None = None, width_mm: int | None = None, height_mm: int | None = None,
                   tracking_number: str | None = None, at: datetime | None = None) -> Package:
    """Weight (grams), sides (mm) and the carrier's tracking number of a package of a draft shipment."""
    _merchant_only(principal)
    shipment, package = _locked_package(db, package_id, principal)
    try:
        _editable(shipment)
        for field, value in (("weight_grams", weight_grams), ("length_mm", length_mm), ("width_mm", width_mm),
                             ("height_mm", height_mm)):
            if value is None:
                continue
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise _invalid(gettext("Weight and sides are whole numbers of grams and millimetres, 1 or more."),
                               field, package=package.code)
            setattr(package, field, value)
        if tracking_number is not None:
            tracking_number = tracking_number.strip() or None
            if tracking_number is not None:
                problem = tracking_problem(shipment.carrier, tracking_number)
                if problem:
                    raise _invalid(problem, "tracking_number", package=package.code)
            package.tracking_number = tracking_number
        _check_size(shipment, package)
        _changed(db, shipment, "package", principal, {"package": package.code}, at)
    except Exception:
        db.rollback()
        raise
    return package


def _unweigh(package: Package) -> None:
    package.weight_grams = package.length_mm = package.width_mm = package.height_mm = 0


def split_package(db: Session, package_id: int, quantities: dict[int, int], *, principal: Principal) -> Package:
    """Move ``quantities`` (order line id -> units) out of a package into a new package of the same order."""
    _merchant_only(principal)
    shipment, package = _locked_package(db, package_id, principal)
    try:
        _editable(shipment)
        held = {line.order_line_id: line for line in package.lines}
        moving = {line_id: units for line_id, units in quantities.items() if units}
        if not moving:
            raise _invalid(gettext("Say how many units of which lines go in the new package."), "lines")
        for line_id, units in moving.items():
            line = held.get(line_id)
            if line is None:
                raise _invalid(gettext("That line is not in the package %(code)s.", code=package.code), "lines")
            if isinstance(units, bool) or not isinstance(units, int) or not 0 < units <= line.quantity:
                raise _invalid(gettext("Move from 1 to %(n)d units of %(sku)s.", n=line.quantity,
                                       sku=line.order_line.sku), "lines", sku=line.order_line.sku)
        if sum(moving.values()) >= sum(line.quantity for line in package.lines):
            raise _invalid(gettext("Leave at least one unit in the package %(code)s.", code=package.code), "lines")
        new = Package(order_id=package.order_id, merchant_id=package.merchant_id,
                      lines=[PackageLine(order_line_id=line_id, quantity=units) for line_id, units in moving.items()])
        for line_id, units in moving.items():
            held[line_id].quantity -= units
            if held[line_id].quantity == 0:
                package.lines.remove(held[line_id])
        _unweigh(package)  # its contents changed: weigh and measure it again
        shipment.packages.append(new)
        db.flush()
        _changed(db, shipment, "split", principal, {"package": package.code, "new_package": new.code})
    except Exception:
        db.rollback()
        raise
    return new


def remove_package(db: Session, package_id: int, *, principal: Principal) -> Shipment:
    """Put a package's contents back into another package of its order (an order keeps at least one)."""
    _merchant_only(principal)
    shipment, package = _locked_package(db, package_id, principal)
    try:
        _editable(shipment)
        others = [p for p in shipment.packages if p.order_id == package.order_id and p.id != package.id]
        if not others:
            raise _invalid(gettext("The package %(code)s is its order's only package; remove the order instead.",
                                   code=package.code), "package")
        into = {line.order_line_id: line for line in others[0].lines}
        for line in list(package.lines):
            if line.order_line_id in into:
                into[line.order_line_id].quantity += line.quantity
            else:
                others[0].lines.append(PackageLine(order_line_id=line.order_line_id, quantity=line.quantity))
        _unweigh(others[0])  # its contents changed: weigh and measure it again
        shipment.packages.remove(package)
        _changed(db, shipment, "merge", principal, {"package": package.code, "into": others[0].code})
    except Exception:
        db.rollback()
        raise
    return shipment


def problems(shipment: Shipment) -> list[str]:
    """What stands between the shipment and its handover (empty when it can go)."""
    found: list[str] = []
    if not shipment.orders:
        return [gettext("The shipment has no orders.")]
    if not shipment.carrier.is_active:
        found.append(gettext("The carrier %(carrier)s is not active.", carrier=shipment.carrier.name))
    packed: dict[int, int] = defaultdict(int)
    for package in shipment.packages:
        for line in package.lines:
            packed[line.order_line_id] += line.quantity
    for member in shipment.orders:
        order = member.order
        if order.status != "accepted":
            found.append(gettext("The order %(number)s is %(status)s; remove it from the shipment.",
                                 number=order.order_number, status=ORDER_STATES[order.status]))
        for line in order.lines:
            if packed[line.id] != line.quantity:
                found.append(gettext("%(number)s: %(packed)d of %(quantity)d units of %(sku)s are packed.",
                                     number=order.order_number, packed=packed[line.id], quantity=line.quantity,
                                     sku=line.sku))
    for package in shipment.packages:
        if package.weight_grams < 1:
            found.append(gettext("The package %(code)s has no weight.", code=package.code))
        elif package.weight_grams > shipment.carrier.max_weight_grams:
            found.append(gettext("The package %(code)s is heavier than %(carrier)s takes.", code=package.code,
                                 carrier=shipment.carrier.name))
        if min(package.length_mm, package.width_mm, package.height_mm) < 1:
            found.append(gettext("The package %(code)s has no dimensions.", code=package.code))
        problem = tracking_problem(shipment.carrier, package.tracking_number)
        if problem:
            found.append(gettext("The package %(code)s: %(problem)s", code=package.code, problem=problem))
    numbers = [p.tracking_number for p in shipment.packages if p.tracking_number]
    for number in sorted({n for n in numbers if numbers.count(n) > 1}):
        found.append(gettext("The tracking number %(number)s is on more than one package.", number=number))
    return found


def _actor(principal: Principal) -> str:
    return MERCHANT if principal.merchant_id is not None else MARKETPLACE


def fire(db: Session, shipment_id: int, name: str, *, principal: Principal, at: datetime | None = None) -> Shipment:
    """Fire ``name`` on the shipment: lock it, check who, the state and (to go ready or out) the packing;
    ship or deliver its orders; record the event; commit. A failure changes nothing."""
    return _fire(db, shipment_id, name, principal, at)


def hand_over(db: Session, shipment_id: int, *, principal: Principal, at: datetime | None = None) -> Shipment:
    """Hand the shipment over; a draft is made ready first, in the same transaction (both recorded, or neither)."""
    return _fire(db, shipment_id, "handover", principal, at, through_ready=True)


@orders.retry_on_deadlock
def _fire(db: Session, shipment_id: int, name: str, principal: Principal, at: datetime | None, *,
          through_ready: bool = False) -> Shipment:
    if name not in TRANSITIONS:
        raise _invalid(gettext("There is no shipment transition %(name)s.", name=name), "transition")
    now = utcnow()
    at = at or now
    shipment = _locked_shipment(db, shipment_id, principal)
    try:
        # Decided under the lock: another tab may have made the draft ready meanwhile.
        names = ["ready", name] if through_ready and shipment.status == "draft" else [name]
        for step in names:
            _step(db, shipment, TRANSITIONS[step], principal, at, now)
        db.commit()
    except Exception:
        db.rollback()
        raise
    return shipment


def _lock_orders_and_stock(db: Session, shipment: Shipment) -> None:
    """Lock the shipment's orders, then their products, each in id order, before any order is moved.

    The orders' own transitions lock an order and then its products; doing that order after order would
    hold one order's products while waiting for the next order (or its products), and deadlock with a
    cancellation or an intake locking the same rows the other way round.
    """
    order_ids = sorted(member.order_id for member in shipment.orders)
    principal = Principal(role="system", merchant_id=shipment.merchant_id)
    db.execute(scoped_select(Order, principal).with_only_columns(Order.id).where(Order.id.in_(order_ids))
               .order_by(Order.id).with_for_update())
    share_merchant_catalog(db, shipment.merchant_id)
    product_ids = sorted({line.product_id for member in shipment.orders for line in member.order.lines})
    db.execute(scoped_select(Product, principal).with_only_columns(Product.id).where(Product.id.in_(product_ids))
               .order_by(Product.id).with_for_update())


def _check_event_time(shipment: Shipment, at: datetime, now: datetime) -> None:
    """A carrier's event happens after the handover (and after the previous event), and not in the future."""
    earliest = shipment.in_transit_at or shipment.handed_over_at
    if earliest is not None and at < earliest:
        raise _invalid(gettext("The event's time is before the shipment's last step (%(when)s).",
                               when=earliest.isoformat()), "at")
    if at > now + EVENT_CLOCK_SKEW:
        raise _invalid(gettext("The event's time is in the future."), "at")


def _step(db: Session, shipment: Shipment, transition: Transition, principal: Principal, at: datetime,
          now: datetime) -> None:
    name = transition.name
    if _actor(principal) not in transition.actors:
        raise ShipmentForbidden(gettext("Your role may not do “%(action)s” on shipments.", action=transition.label),
                                details={"transition": name, "status": shipment.status})
    if shipment.status not in transition.sources:
        raise IllegalShipmentTransition(
            gettext("The shipment is %(status)s; “%(action)s” is not possible now.",
                    status=STATE_LABELS[shipment.status], action=transition.label),
            details={"status": shipment.status, "transition": name, "allowed": allowed_from(shipment.status)})
    if name in ("ready", "handover"):
        found = problems(shipment)
        if found:
            raise ShipmentError(found[0] if len(found) == 1 else gettext(
                "%(first)s (and %(more)d more problems)", first=found[0], more=len(found) - 1),
                details={"problems": found, "status": shipment.status})
    if name in CARRIER_EVENTS:
        _check_event_time(shipment, at, now)
    if transition.orders == "ship":
        _lock_orders_and_stock(db, shipment)
        first_tracking: dict[int, str | None] = {}
        for package in shipment.packages:
            first_tracking.setdefault(package.order_id, package.tracking_number)
        for member in sorted(shipment.orders, key=lambda m: m.order_id):
            orders.apply_transition(db, member.order_id, "ship", principal=principal,
                                    tracking_number=first_tracking[member.order_id],
                                    carrier=shipment.carrier.code, at=at, commit=False, shipment_id=shipment.id)
    elif transition.orders == "deliver":
        _lock_orders_and_stock(db, shipment)
        for member in sorted(shipment.orders, key=lambda m: m.order_id):
            if member.order.status == "shipped":
                orders.apply_transition(db, member.order_id, "deliver", principal=principal, at=at, commit=False)
    from_status = shipment.status
    shipment.status = transition.target
    shipment.updated_at = at
    if transition.stamp:
        setattr(shipment, transition.stamp, at)
    db.add(_event(shipment, from_status, name, principal, at))
    db.flush()


def delete_draft(db: Session, shipment_id: int, *, principal: Principal) -> None:
    """Throw away a draft shipment; its orders are free for another one."""
    _merchant_only(principal)
    shipment = _locked_shipment(db, shipment_id, principal)
    try:
        _editable(shipment)
        db.execute(delete(ShipmentEvent).where(ShipmentEvent.shipment_id == shipment.id))
        db.delete(shipment)
        db.commit()
    except Exception:
        db.rollback()
        raise
