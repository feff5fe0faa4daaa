"""Order intake with stock reservation, and the one function that applies a transition of the state machine."""
from __future__ import annotations

import functools
import hashlib
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from typing import Any, TypeVar

from flask import current_app, has_app_context
from flask_babel import gettext
from sqlalchemy import bindparam, insert, select, update
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.orm import Session

from portal.accounts.models import Merchant
from portal.catalog.bulk import catalog_lock_key, share_merchant_catalog
from portal.catalog.models import Product
from portal.catalog.services import consume_stock
from portal.db import begin_write, utcnow
from portal.errors import PortalError
from portal.orders.exceptions import (
    IllegalTransition,
    OrderError,
    OrderNotFound,
    OrderNumberTaken,
    StockShort,
    TransitionForbidden,
)
from portal.orders.machine import MARKETPLACE, MERCHANT, SYSTEM, STATE_LABELS, TRANSITIONS, allowed_from
from portal.orders.models import Order, OrderEvent, OrderLine, OrderRequest
from portal.shipping.carriers import active_carriers, carrier_by_code, tracking_is_valid, tracking_problem
from portal.shipping.machine import OPEN_STATES as SHIPMENT_OPEN_STATES
from portal.shipping.models import Carrier, Shipment, ShipmentOrder
from portal.tenancy import Principal, scope, scope_sql, scoped_select

log = logging.getLogger(__name__)
F = TypeVar("F", bound=Callable[..., Any])

# The expiry job's principal: unscoped, like staff, and recorded as the portal itself.
SYSTEM_PRINCIPAL = Principal(role="system", merchant_id=None)
MAX_PRICE = Decimal("999999999999.99")
MAX_QUANTITY = 100_000
MAX_LINES = 500


def retry_on_deadlock(func: F) -> F:
    """Run the transaction again when PostgreSQL broke a deadlock by failing it (at most three times).

    Orders lock products in id order and wait for bulk catalog writes, so deadlocks should not happen;
    a writer elsewhere that locks several products in another order could still meet one. Safe to
    repeat: intake is idempotent by order number and a transition re-reads the order's state.
    """

    @functools.wraps(func)
    def wrapped(db: Session, *args: Any, **kwargs: Any) -> Any:
        if kwargs.get("commit", True) is False:
            return func(db, *args, **kwargs)  # part of the caller's transaction: the caller decides on retries
        for attempt in range(3):
            try:
                return func(db, *args, **kwargs)
            except OperationalError as exc:
                if getattr(exc.orig, "sqlstate", None) != "40P01" or attempt == 2:
                    raise
                db.rollback()
                log.warning("deadlock in %s, trying again", func.__name__)
        raise AssertionError("unreachable")

    return wrapped  # type: ignore[return-value]


def actor_kind(principal: Principal) -> str:
    if principal.role == "system":
        return SYSTEM
    return MERCHANT if principal.merchant_id is not None else MARKETPLACE


def recorded_actor(principal: Principal) -> str:
    """Who an event records: the portal itself, an API token or a signed-in user."""
    return "system" if principal.role == "system" else ("token" if principal.token_id else "user")


def _hours(name: str, default: int) -> int:
    return int(current_app.config.get(name, default)) if has_app_context() else default


# -- intake ------------------------------------------------------------------------------------


@dataclass
class Intake:
    """The result of posting an order: the order, and whether this request created it."""

    order: Order
    created: bool


def request_hash(data: dict[str, Any]) -> str:
    """The posted order's fingerprint: a retry matches it, another order under the same number does not."""

    def plain(value: Any) -> Any:
        if isinstance(value, datetime):
            return value.astimezone(timezone.utc).isoformat()  # the same moment however it was written
        if isinstance(value, Decimal):
            return f"{value:.2f}"
        return value

    canonical = {key: plain(value) for key, value in data.items() if key not in ("lines", "shipping_address")}
    canonical["lines"] = [{k: plain(v) for k, v in sorted(line.items())} for line in data["lines"]]
    address = {k: v or "" for k, v in (data.get("shipping_address") or {}).items()}
    address["country"] = address.get("country", "").upper()
    canonical["shipping_address"] = dict(sorted(address.items()))
    return hashlib.sha256(json.dumps(canonical, sort_keys=True, ensure_ascii=False).encode()).hexdigest()


def _invalid(message: str, field: str, **details: Any) -> OrderError:
    return OrderError(message, details={"field": field, **details})


def _check_input(data: dict[str, Any], now: datetime) -> tuple[datetime, datetime, datetime]:
    """What the schema cannot say: prices with cents only, distinct SKUs, deadlines in order."""
    lines = data["lines"]
    if not lines:
        raise _invalid(gettext("An order needs at least one line."), "lines")
    if len(lines) > MAX_LINES:
        raise _invalid(gettext("An order may have at most %(n)d lines.", n=MAX_LINES), "lines")
    seen: dict[str, int] = {}
    for index, line in enumerate(lines):
        where = f"lines[{index}]"
        quantity, price = line["quantity"], line["unit_price"]
        if isinstance(quantity, bool) or not isinstance(quantity, int) or quantity < 1 or quantity > MAX_QUANTITY:
            raise _invalid(gettext("Line %(n)d: the quantity must be a whole number from 1 to %(max)d.",
                                   n=index + 1, max=MAX_QUANTITY), f"{where}.quantity", sku=line["sku"])
        if not price.is_finite() or price <= 0 or price > MAX_PRICE or price != price.quantize(Decimal("0.01")):
            raise _invalid(gettext("Line %(n)d: the unit price must be more than zero with at most 2 decimals.",
                                   n=index + 1), f"{where}.unit_price", sku=line["sku"])
        if line["sku"] in seen:
            raise _invalid(gettext("Line %(n)d repeats the SKU %(sku)s of line %(first)d; send one line per SKU.",
                                   n=index + 1, sku=line["sku"], first=seen[line["sku"]] + 1), f"{where}.sku",
                           sku=line["sku"])
        seen[line["sku"]] = index
    if sum(line["unit_price"] * line["quantity"] for line in lines) > MAX_PRICE:
        raise _invalid(gettext("The order's total is more than the portal can hold (%(max)s).", max=f"{MAX_PRICE:,.2f}"),
                       "lines")
    created = data.get("created_at") or now
    if created > now + timedelta(hours=1):
        # An order from the future would never reach its deadline: a clock or a field is wrong.
        raise _invalid(gettext("The order's creation time is in the future."), "created_at")
    deadline = data.get("acceptance_deadline") or created + timedelta(hours=_hours("ORDER_ACCEPTANCE_HOURS", 24))
    ship_by = data.get("ship_by") or max(deadline, created + timedelta(hours=_hours("ORDER_SHIP_HOURS", 48)))
    if deadline < created:
        raise _invalid(gettext("The acceptance deadline is before the order was created."), "acceptance_deadline")
    if ship_by < deadline:
        raise _invalid(gettext("The ship-by time is before the acceptance deadline."), "ship_by")
    return created, deadline, ship_by


def _repeat(order: Order, fingerprint: str) -> Intake:
    if order.request_hash != fingerprint:
        raise OrderNumberTaken(
            gettext("The order number %(number)s is already used by another order with different content.",
                    number=order.order_number),
            details={"order_number": order.order_number, "id": order.id})
    return Intake(order=order, created=False)


def _forget_reservations(db: Session, product_ids: set[int]) -> None:
    """Products this session loaded before read their reservations again (they were changed around the ORM)."""
    for item in list(db.identity_map.values()):
        if isinstance(item, Product) and item.id in product_ids:
            db.expire(item, ["reserved"])


def _existing(db: Session, order_number: str) -> Order | None:
    return db.scalar(scoped_select(Order, SYSTEM_PRINCIPAL).where(Order.order_number == order_number)
                     .execution_options(populate_existing=True))


_MERCHANT_LOOKUP = select(Merchant.id, Merchant.is_active).where(Merchant.slug == bindparam("slug"))


def _new_order(db: Session, data: dict[str, Any], fingerprint: str, now: datetime) -> Order:
    """The order as posted, checked for everything but its products (no currency, no lines yet)."""
    merchant = db.connection().execute(_MERCHANT_LOOKUP, {"slug": data["merchant"]}).first()
    if merchant is None:
        raise _invalid(gettext("There is no merchant %(slug)s.", slug=data["merchant"]), "merchant")
    if not merchant.is_active:
        raise _invalid(gettext("The merchant %(slug)s is deactivated and takes no orders.", slug=data["merchant"]),
                       "merchant")
    created, deadline, ship_by = _check_input(data, now)
    lines, address = data["lines"], data["shipping_address"]
    return Order(
        merchant_id=merchant.id, order_number=data["order_number"], request_hash=fingerprint,
        status="awaiting_acceptance", total=sum((line["unit_price"] * line["quantity"] for line in lines), Decimal("0")),
        units=sum(line["quantity"] for line in lines), created_at=created, acceptance_deadline=deadline,
        ship_by=ship_by, received_at=now, updated_at=now,
        buyer_name=address["name"], buyer_phone=address.get("phone") or "", country=address["country"].upper(),
        city=address["city"], postal_code=address.get("postal_code") or "", line1=address["line1"],
    )


def _check_lines(lines: list[dict[str, Any]], by_sku: dict[str, Any]) -> None:
    """Every line names an active product of the merchant with enough available stock (``by_sku``: the
    locked products' ``status`` and ``available``), else the first unknown or inactive one (422) or every
    short one (409)."""
    for index, line in enumerate(lines):
        product = by_sku.get(line["sku"])
        if product is None:
            raise _invalid(gettext("Line %(n)d: the merchant has no product with the SKU %(sku)s.", n=index + 1,
                                   sku=line["sku"]), f"lines[{index}].sku", sku=line["sku"])
        if product.status != "active":
            raise _invalid(gettext("Line %(n)d: the product %(sku)s is inactive and cannot be ordered.",
                                   n=index + 1, sku=line["sku"]), f"lines[{index}].sku", sku=line["sku"])
    short = [{"line": index + 1, "sku": line["sku"], "requested": line["quantity"],
              "available": max(0, by_sku[line["sku"]].available)}
             for index, line in enumerate(lines) if line["quantity"] > by_sku[line["sku"]].available]
    if short:
        raise StockShort(
            gettext("Not enough stock for %(lines)s.", lines=", ".join(
                gettext("%(sku)s (ordered %(requested)d, available %(available)d)", sku=item["sku"],
                        requested=item["requested"], available=item["available"]) for item in short)),
            details={"lines": short})


def _with_lines(order: Order, lines: list[dict[str, Any]], by_sku: dict[str, Any]) -> Order:
    order.currency = by_sku[lines[0]["sku"]].currency
    order.lines = [OrderLine(order_id=order.id, product_id=by_sku[line["sku"]].id, sku=line["sku"],
                             title=by_sku[line["sku"]].title, quantity=line["quantity"],
                             unit_price=line["unit_price"]) for line in lines]
    return order


@retry_on_deadlock
def create_order(db: Session, data: dict[str, Any], *, principal: Principal, now: datetime | None = None) -> Intake:
    """Store a posted order and reserve its lines, or answer with the order stored before under its number.

    Products are locked (``FOR UPDATE``, by id, the same order everywhere) before availability is read, so
    concurrent orders for the last units queue on the rows and none oversells; on SQLite the write lock is
    taken first instead. A repeat of a stored order (the same number) answers with the stored order even
    when the order could not be taken now; a simultaneous repeat waits for the first and then returns it.
    """
    now = now or utcnow()
    fingerprint = request_hash(data)
    try:
        order = _new_order(db, data, fingerprint, now)
        if db.get_bind().dialect.name == "postgresql":
            created = _store_in_one_statement(db, order, data["lines"], principal)
        else:
            created = _store_under_write_lock(db, order, data["lines"], principal)
    except (OrderError, StockShort):
        db.rollback()
        existing = _existing(db, data["order_number"])
        if existing is None:
            raise
        return _repeat(existing, fingerprint)
    if created is None:
        return _repeat(_existing(db, data["order_number"]), fingerprint)  # type: ignore[arg-type]
    _forget_reservations(db, {line.product_id for line in created.lines})
    return Intake(order=created, created=True)


# PostgreSQL: intake is the portal's busiest write, so it is one statement (one round trip, prepared by the
# driver after a few uses): wait for a bulk write of the merchant's catalog to end (the shared advisory lock
# of ``portal.catalog.bulk``), lock the lines' products in id order, and only if every line names an active
# product with enough available stock insert the order (or nothing, if its number is taken), its lines and
# its first event, and add the lines to the products' reservations. Its answer is the locked products with
# the new order's id, or no id: then the caller finds out why (number taken, SKU unknown, stock short).
# Read-committed locking re-reads a product changed by a transaction it waited for, and the reservation
# update adds to the newest reservation, so concurrent orders queue on the rows and none oversells.
_INTAKE_SQL = """
WITH catalog AS (
    SELECT pg_advisory_xact_lock_shared(%(catalog_lock)s) AS waited
), wanted AS (
    SELECT w.sku, w.quantity, w.unit_price, w.n
    FROM unnest(%(skus)s::text[], %(quantities)s::int[], %(prices)s::numeric[]) WITH ORDINALITY
         AS w(sku, quantity, unit_price, n)
), locked AS (
    SELECT p.id, p.sku, p.title, p.status, p.stock - p.reserved AS available, p.currency
    FROM products p CROSS JOIN catalog
    WHERE {tenant} AND p.sku = ANY(%(skus)s::text[])
    ORDER BY p.id
    FOR UPDATE OF p
), fits AS (
    SELECT count(*) = %(line_count)s AND coalesce(bool_and(l.status = 'active' AND l.available >= w.quantity),
                                                  false) AS ok
    FROM wanted w JOIN locked l ON l.sku = w.sku
), new_order AS (
    INSERT INTO orders (merchant_id, order_number, request_hash, status, currency, total, units, created_at,
                        acceptance_deadline, ship_by, received_at, updated_at, buyer_name, buyer_phone, country,
                        city, postal_code, line1)
    SELECT %(merchant_id)s, %(order_number)s, %(request_hash)s, %(status)s,
           (SELECT l.currency FROM locked l WHERE l.sku = (%(skus)s::text[])[1]), %(total)s, %(units)s,
           %(created_at)s, %(acceptance_deadline)s, %(ship_by)s, %(received_at)s, %(updated_at)s, %(buyer_name)s,
           %(buyer_phone)s, %(country)s, %(city)s, %(postal_code)s, %(line1)s
    FROM fits WHERE fits.ok
    ON CONFLICT (order_number) DO NOTHING
    RETURNING id
), new_lines AS (
    INSERT INTO order_lines (order_id, product_id, sku, title, quantity, unit_price)
    SELECT o.id, l.id, w.sku, l.title, w.quantity, w.unit_price
    FROM new_order o CROSS JOIN wanted w JOIN locked l ON l.sku = w.sku
    ORDER BY w.n
), reserved AS (
    UPDATE products p SET reserved = p.reserved + w.quantity
    FROM new_order o CROSS JOIN wanted w JOIN locked l ON l.sku = w.sku
    WHERE p.id = l.id
), first_event AS (
    INSERT INTO order_events (order_id, merchant_id, at, transition, to_status, actor_kind, actor_user_id,
                              actor_token_id, details)
    SELECT o.id, %(merchant_id)s, %(created_at)s, 'create', %(status)s, %(actor_kind)s, %(actor_user_id)s,
           %(actor_token_id)s, '{{}}'
    FROM new_order o
)
SELECT (SELECT id FROM new_order) AS order_id, l.id, l.sku, l.title, l.status, l.available, l.currency
FROM locked l
"""


def _store_in_one_statement(db: Session, order: Order, lines: list[dict[str, Any]],
                            principal: Principal) -> Order | None:
    tenant, tenant_params = scope_sql("p.merchant_id", Principal(role="system", merchant_id=order.merchant_id))
    event = _event(order, None, "create", order.status, principal, at=order.created_at)
    params = {
        **tenant_params, "catalog_lock": catalog_lock_key(order.merchant_id),
        "skus": [line["sku"] for line in lines], "quantities": [line["quantity"] for line in lines],
        "prices": [line["unit_price"] for line in lines], "line_count": len(lines),
        "actor_kind": event.actor_kind, "actor_user_id": event.actor_user_id, "actor_token_id": event.actor_token_id,
        **{key: getattr(order, key) for key in (
            "merchant_id", "order_number", "request_hash", "status", "total", "units", "created_at",
            "acceptance_deadline", "ship_by", "received_at", "updated_at", "buyer_name", "buyer_phone", "country",
            "city", "postal_code", "line1")},
    }
    sql = _INTAKE_SQL.format(tenant=tenant)
    for attempt in range(3):
        rows = db.connection().exec_driver_sql(sql, params).all()
        order_id = rows[0].order_id if rows else None
        if order_id is not None:
            db.commit()
            order.id = order_id
            return _with_lines(order, lines, {row.sku: row for row in rows})
        db.rollback()
        if _existing(db, order.order_number) is not None:
            return None
        by_sku = {row.sku: row for row in rows}
        if attempt == 0 and any(line["sku"] not in by_sku for line in lines):
            # The statement's snapshot predates the catalog lock it waited for: products a bulk upload added
            # meanwhile were invisible to it. Once more, with a snapshot taken after that upload.
            continue
        _check_lines(lines, by_sku)
        # Every line fitted, yet nothing was stored and no order has the number: a simultaneous order under
        # the same number was rolled back while this one waited for it. Posting it again is safe.
    raise RuntimeError(f"order {order.order_number} could not be stored")


def _store_under_write_lock(db: Session, order: Order, lines: list[dict[str, Any]],
                            principal: Principal) -> Order | None:
    """Any other database (SQLite): take the write lock, read the products, then write in plain statements."""
    begin_write(db)
    try:
        share_merchant_catalog(db, order.merchant_id)
        products = Product.__table__
        by_sku = {p.sku: p for p in db.execute(
            scope(select(Product.id, Product.sku, Product.title, Product.status,
                         (Product.stock - Product.reserved).label("available"), Product.currency), Product,
                  Principal(role="system", merchant_id=order.merchant_id))
            .where(Product.sku.in_([line["sku"] for line in lines])).order_by(Product.id).with_for_update())}
        if db.scalar(scope(select(Order.id), Order, SYSTEM_PRINCIPAL).where(Order.order_number == order.order_number)):
            db.rollback()
            return None
        _check_lines(lines, by_sku)
        _with_lines(order, lines, by_sku)
        columns = {c.key: getattr(order, c.key) for c in Order.__table__.columns if c.key != "id"}
        order.id = db.execute(insert(Order.__table__).values(**{k: v for k, v in columns.items() if v is not None})
                              .returning(Order.__table__.c.id)).scalar_one()
        db.execute(insert(OrderLine.__table__), [
            {"order_id": order.id, "product_id": line.product_id, "sku": line.sku, "title": line.title,
             "quantity": line.quantity, "unit_price": line.unit_price} for line in order.lines])
        db.execute(update(products).where(products.c.id == bindparam("pid"))
                   .values(reserved=products.c.reserved + bindparam("quantity")),
                   [{"pid": line.product_id, "quantity": line.quantity} for line in order.lines])
        event = _event(order, None, "create", order.status, principal, at=order.created_at)
        db.execute(insert(OrderEvent.__table__).values(
            **{c.key: getattr(event, c.key) for c in OrderEvent.__table__.columns if c.key != "id"}))
        db.commit()
    except IntegrityError:
        # The same number committed by another process between our look and our insert.
        db.rollback()
        if _existing(db, order.order_number) is None:
            raise
        return None
    return order


# -- transitions -------------------------------------------------------------------------------


@dataclass
class Applied:
    """A transition's outcome; ``repeated`` when an idempotency key returned an earlier result, whose
    answer (as ``respond`` made it the first time) is ``response``."""

    order: Order
    event: OrderEvent
    repeated: bool = False
    response: dict[str, Any] | None = None


def _event(order: Order, from_status: str | None, transition: str, to_status: str, principal: Principal, *,
           at: datetime, reason: str | None = None, details: dict[str, Any] | None = None) -> OrderEvent:
    return OrderEvent(order_id=order.id, merchant_id=order.merchant_id, at=at, transition=transition,
                      from_status=from_status, to_status=to_status,
                      actor_kind=recorded_actor(principal),
                      actor_user_id=principal.user_id, actor_token_id=principal.token_id, reason=reason,
                      details=details or {})


def _locked_order(db: Session, order_id: int, principal: Principal) -> Order:
    order = db.scalar(scoped_select(Order, principal).where(Order.id == order_id).with_for_update()
                      .execution_options(populate_existing=True))
    if order is None:
        db.rollback()
        raise OrderNotFound(gettext("We could not find what you asked for."))
    return order


def _adjust_stock(db: Session, order: Order, effect: str, principal: Principal) -> None:
    """Release or consume the order's reservations, products locked in id order (as intake locks them)."""
    share_merchant_catalog(db, order.merchant_id)
    quantities: dict[int, int] = {}
    for line in order.lines:
        quantities[line.product_id] = quantities.get(line.product_id, 0) + line.quantity
    owner = Principal(role="system", merchant_id=order.merchant_id)
    products = db.scalars(scoped_select(Product, owner).where(Product.id.in_(quantities)).order_by(Product.id)
                          .with_for_update().execution_options(populate_existing=True))
    for product in products:
        quantity = quantities[product.id]
        product.reserved = max(0, product.reserved - quantity)
        if effect == "consume":
            # A merchant may have set stock on hand below what was reserved; it does not go negative.
            consume_stock(db, product, quantity, principal=principal, order_number=order.order_number)


@retry_on_deadlock
def apply_transition(db: Session, order_id: int, name: str, *, principal: Principal, reason: str | None = None,
                     tracking_number: str | None = None, carrier: str | None = None,
                     idempotency_key: str | None = None, at: datetime | None = None,
                     respond: Callable[[Order], dict[str, Any]] | None = None, commit: bool = True,
                     shipment_id: int | None = None) -> Applied:
    """Fire ``name`` on the order: lock it, check who and from which state, record the event, adjust stock, commit.

    Two people clicking at once queue on the order's row lock; the second finds the state changed and
    gets :class:`IllegalTransition`. A repeat carrying the idempotency key of an applied transition gets
    the first result back instead: ``respond(order)`` is kept with the key and returned to repeats.
    With ``commit=False`` the change is flushed into the caller's transaction (a shipment's handover ships
    all its orders or none, passing its ``shipment_id``); on a failure the caller's whole transaction is
    rolled back. An order in a shipment not yet handed over ships only with that shipment.
    """
    transition = TRANSITIONS.get(name)
    if transition is None:
        raise OrderError(gettext("There is no order transition %(name)s.", name=name), details={"field": "transition"})
    if idempotency_key is not None and not 0 < len(idempotency_key) <= 128:
        raise OrderError(gettext("An idempotency key has 1 to 128 characters."), details={"field": "Idempotency-Key"})
    at = at or utcnow()
    reason = (reason or "").strip() or None
    begin_write(db)
    order = _locked_order(db, order_id, principal)
    try:
        actor = actor_kind(principal)
        if actor not in transition.actors:
            raise TransitionForbidden(gettext("Your role may not do “%(action)s” on orders.", action=transition.label),
                                      details={"transition": name, "status": order.status})
        if idempotency_key:
            prior = db.scalar(select(OrderRequest).where(OrderRequest.order_id == order.id,
                                                         OrderRequest.idempotency_key == idempotency_key))
            if prior is not None:
                if prior.transition != name:
                    raise OrderError(gettext("This idempotency key was used for another request (%(name)s) on this order.",
                                             name=prior.transition), details={"field": "Idempotency-Key"})
                event = db.get(OrderEvent, prior.event_id)
                db.commit()  # nothing was changed; ends the transaction (and its lock) without expiring what was read
                return Applied(order=order, event=event, repeated=True,  # type: ignore[arg-type]
                               response=prior.response)
        if order.status not in transition.sources:
            raise IllegalTransition(
                gettext("The order is %(status)s; it cannot be %(action)s.", status=STATE_LABELS[order.status],
                        action=_past(name)),
                details={"status": order.status, "transition": name, "allowed": allowed_from(order.status)})
        for guard in transition.guards:
            problem = guard(order, at)
            if problem:
                raise IllegalTransition(problem, details={"status": order.status, "transition": name,
                                                          "allowed": allowed_from(order.status)})
        if transition.needs_reason and not reason:
            raise OrderError(gettext("Say why: a reason is required."), details={"field": "reason"})
        if reason and len(reason) > 1000:
            raise OrderError(gettext("The reason is too long (at most 1000 characters)."), details={"field": "reason"})
        details: dict[str, Any] = {}
        if name == "ship":
            _not_in_another_shipment(db, order, shipment_id)
        if transition.tracking:
            tracking_number = (tracking_number or "").strip() or None
            carrier = (carrier or "").strip() or None
            if tracking_number and len(tracking_number) > 64 or carrier and len(carrier) > 64:
                raise OrderError(gettext("The carrier and the tracking number have at most 64 characters."),
                                 details={"field": "tracking_number"})
            chosen = _shipping_carrier(db, carrier)
            problem = tracking_problem(chosen, tracking_number)
            if problem:
                raise OrderError(problem, details={"field": "tracking_number", "carrier": chosen.code,
                                                   "formats": list(chosen.tracking_patterns)})
            carrier = chosen.code
            order.tracking_number, order.carrier = tracking_number, carrier
            order.tracking_valid = tracking_is_valid(chosen, tracking_number)
            details = {"tracking_number": tracking_number, "carrier": carrier}
        if transition.stock:
            _adjust_stock(db, order, transition.stock, principal)
        from_status = order.status
        order.status = transition.target
        order.updated_at = at
        if transition.stamp:
            setattr(order, transition.stamp, at)
        if transition.closes:
            order.closed_by = actor
            order.reason = reason
        event = _event(order, from_status, name, transition.target, principal, at=at, reason=reason, details=details)
        db.add(event)
        db.flush()
        response = respond(order) if respond else None
        if idempotency_key:
            db.add(OrderRequest(order_id=order.id, idempotency_key=idempotency_key, transition=name,
                                event_id=event.id, response=response))
        if commit:
            db.commit()
        else:
            db.flush()
    except Exception:
        db.rollback()
        raise
    return Applied(order=order, event=event, response=response)


def _shipping_carrier(db: Session, code: str | None) -> Carrier:
    """The active configured carrier ``code`` names; else a 422 that lists the codes that would do."""
    carrier = carrier_by_code(db, code.lower()) if code else None  # codes are lowercase
    if carrier is not None and carrier.is_active:
        return carrier
    codes = sorted(c.code for c in active_carriers(db))
    listed = ", ".join(codes) or "—"
    if not code:
        message = gettext("Say which carrier ships the order: one of %(codes)s.", codes=listed)
    elif carrier is None:
        message = gettext("There is no carrier %(code)s; the carriers are %(codes)s.", code=code, codes=listed)
    else:
        message = gettext("The carrier %(code)s is not active; the active carriers are %(codes)s.", code=code,
                          codes=listed)
    raise OrderError(message, details={"field": "carrier", "carriers": codes})


def _not_in_another_shipment(db: Session, order: Order, shipment_id: int | None) -> None:
    stmt = scope(select(Shipment.id, Shipment.status), Shipment, Principal(role="system", merchant_id=order.merchant_id))
    held = db.execute(stmt.join(ShipmentOrder, ShipmentOrder.shipment_id == Shipment.id)
                      .where(ShipmentOrder.order_id == order.id)).first()
    if held is not None and held.status in SHIPMENT_OPEN_STATES and held.id != shipment_id:
        raise IllegalTransition(
            gettext("The order is in the shipment SHP-%(id)06d: it ships when that shipment is handed over "
                    "(or remove it from the shipment first).", id=held.id),
            details={"status": order.status, "transition": "ship", "shipment_id": held.id,
                     "allowed": allowed_from(order.status)})


def _past(name: str) -> str:
    return {
        "accept": gettext("accepted"), "refuse": gettext("refused"), "expire": gettext("refused automatically"),
        "cancel": gettext("cancelled"), "ship": gettext("shipped"), "deliver": gettext("marked delivered"),
        "return": gettext("marked returned"),
    }[name]


@dataclass
class BulkResult:
    done: list[str]
    failed: list[tuple[str, str]]  # order number (or id) and why


def apply_bulk(db: Session, order_ids: list[int], name: str, *, principal: Principal,
               reason: str | None = None) -> BulkResult:
    """The same transition on many orders, each in its own transaction: one that cannot move stops no other."""
    result = BulkResult(done=[], failed=[])
    numbers = dict(db.execute(scope(select(Order.id, Order.order_number).where(Order.id.in_(order_ids)), Order,
                                    principal)).tuples().all())
    for order_id in order_ids:
        if order_id not in numbers:
            result.failed.append((str(order_id), gettext("We could not find what you asked for.")))
            continue
        try:
            apply_transition(db, order_id, name, principal=principal, reason=reason)
        except PortalError as exc:
            result.failed.append((numbers[order_id], exc.message))
        else:
            result.done.append(numbers[order_id])
    return result


def expire_orders(db: Session, *, now: datetime | None = None) -> list[str]:
    """Refuse every order still awaiting acceptance after its deadline; returns their numbers.

    Each in its own transaction under the order's lock: an order the merchant accepts at that very
    moment is either accepted (and skipped here) or refused, never both.
    """
    now = now or utcnow()
    due = db.execute(scoped_select(Order, SYSTEM_PRINCIPAL).with_only_columns(Order.id, Order.order_number)
                     .where(Order.status == "awaiting_acceptance", Order.acceptance_deadline < now)
                     .order_by(Order.acceptance_deadline, Order.id)).tuples().all()
    db.rollback()
    refused = []
    for order_id, number in due:
        try:
            apply_transition(db, order_id, "expire", principal=SYSTEM_PRINCIPAL, at=now)
        except IllegalTransition:
            continue
        refused.append(number)
    return refused
