"""Orders API: the marketplace posts orders; merchants and the marketplace read them and fire transitions."""
from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from flask import jsonify, request, url_for
from flask.views import MethodView
from flask_babel import gettext
from marshmallow import Schema, fields, validate
from sqlalchemy.orm import selectinload

from portal.api import api_blueprint, operator_only
from portal.db import session as db
from portal.extensions import ErrorSchema
from portal.orders import services
from portal.orders.exceptions import OrderError
from portal.orders.machine import STATES
from portal.orders.models import Order, OrderEvent
from portal.orders.queries import OrderFilters, history, merchant_id_by_slug, merchant_slugs, orders as orders_query
from portal.tenancy import current_principal, get_or_404

blp = api_blueprint("orders_api", __name__, description="Orders: intake from the marketplace, the order desk's "
                                                        "transitions")


class AddressSchema(Schema):
    name = fields.String(required=True, validate=validate.Length(min=1, max=200))
    phone = fields.String(load_default="", validate=validate.Length(max=40))
    country = fields.String(required=True, validate=validate.Regexp(r"^[A-Za-z]{2}$"),
                            metadata={"description": "ISO 3166-1 alpha-2 code, e.g. RU"})
    city = fields.String(required=True, validate=validate.Length(min=1, max=120))
    postal_code = fields.String(load_default="", validate=validate.Length(max=20))
    line1 = fields.String(required=True, validate=validate.Length(min=1, max=300))


class LineInSchema(Schema):
    sku = fields.String(required=True, validate=validate.Length(min=1, max=128))
    quantity = fields.Integer(required=True, strict=True, metadata={"description": "whole units, 1 or more"})
    unit_price = fields.Decimal(required=True, allow_nan=False, metadata={"description": "e.g. \"1299.00\""})


class OrderInSchema(Schema):
    order_number = fields.String(required=True, validate=validate.Regexp(r"^[A-Za-z0-9][A-Za-z0-9._/-]{0,63}$"),
                                 metadata={"description": "the marketplace's number; the idempotency key"})
    merchant = fields.String(required=True, metadata={"description": "the merchant's slug"})
    lines = fields.List(fields.Nested(LineInSchema), required=True)
    shipping_address = fields.Nested(AddressSchema, required=True)
    created_at = fields.AwareDateTime(load_default=None, metadata={"description": "default: now"})
    acceptance_deadline = fields.AwareDateTime(load_default=None, metadata={"description": "default: created_at + 24 h"})
    ship_by = fields.AwareDateTime(load_default=None, metadata={"description": "default: created_at + 48 h"})


class LineSchema(Schema):
    sku = fields.String()
    title = fields.String()
    quantity = fields.Integer()
    unit_price = fields.String()
    amount = fields.String()


class EventSchema(Schema):
    at = fields.String()
    transition = fields.String()
    from_status = fields.String(allow_none=True)
    to_status = fields.String()
    actor = fields.String(metadata={"description": "user, token or system"})
    reason = fields.String(allow_none=True)


class OrderSchema(Schema):
    id = fields.Integer()
    order_number = fields.String()
    merchant = fields.String()
    status = fields.String()
    total = fields.String()
    currency = fields.String()
    created_at = fields.String()
    acceptance_deadline = fields.String()
    ship_by = fields.String()
    accepted_at = fields.String(allow_none=True)
    shipped_at = fields.String(allow_none=True)
    delivered_at = fields.String(allow_none=True)
    closed_at = fields.String(allow_none=True)
    closed_by = fields.String(allow_none=True)
    reason = fields.String(allow_none=True)
    carrier = fields.String(allow_none=True, metadata={"description": "the carrier's code (orders shipped before "
                                                                      "carriers were configured: its name)"})
    tracking_number = fields.String(allow_none=True)
    lines = fields.List(fields.Nested(LineSchema))
    shipping_address = fields.Nested(AddressSchema)
    history = fields.List(fields.Nested(EventSchema))


class OrderListSchema(Schema):
    items = fields.List(fields.Nested(OrderSchema))
    next = fields.String(allow_none=True)


class OrderQuerySchema(Schema):
    status = fields.String(load_default="", validate=validate.OneOf(["", "open", *STATES]))
    created_from = fields.Date(load_default=None)
    created_to = fields.Date(load_default=None)
    at_risk = fields.Boolean(load_default=False)
    q = fields.String(load_default="")
    merchant = fields.String(load_default="", metadata={"description": "operators: one merchant's slug"})
    limit = fields.Integer(load_default=100, validate=validate.Range(min=1, max=1000))
    after = fields.Integer(load_default=0, metadata={"description": "id of the last order of the previous page"})


class TransitionSchema(Schema):
    reason = fields.String(load_default=None, validate=validate.Length(max=1000),
                           metadata={"description": "required to refuse, cancel and return"})
    tracking_number = fields.String(load_default=None, validate=validate.Length(max=64),
                                    metadata={"description": "required to ship; must match one of the carrier's "
                                                             "formats"})
    carrier = fields.String(load_default=None, validate=validate.Length(max=64),
                            metadata={"description": "required to ship: the code of an active carrier, e.g. cdek "
                                                     "(operators configure them)"})


def _iso(value: datetime | None) -> str | None:
    return value.astimezone(timezone.utc).isoformat() if value else None


def order_dict(order: Order, merchant_slug: str, history: list[OrderEvent] | None = None) -> dict[str, Any]:
    result = {
        "id": order.id, "order_number": order.order_number, "merchant": merchant_slug, "status": order.status,
        "total": f"{order.total:.2f}", "currency": order.currency, "created_at": _iso(order.created_at),
        "acceptance_deadline": _iso(order.acceptance_deadline), "ship_by": _iso(order.ship_by),
        "accepted_at": _iso(order.accepted_at), "shipped_at": _iso(order.shipped_at),
        "delivered_at": _iso(order.delivered_at), "closed_at": _iso(order.closed_at), "closed_by": order.closed_by,
        "reason": order.reason, "carrier": order.carrier, "tracking_number": order.tracking_number,
        "lines": [{"sku": line.sku, "title": line.title, "quantity": line.quantity,
                   "unit_price": f"{line.unit_price:.2f}", "amount": f"{line.amount:.2f}"} for line in order.lines],
        "shipping_address": {"name": order.buyer_name, "phone": order.buyer_phone, "country": order.country,
                             "city": order.city, "postal_code": order.postal_code, "line1": order.line1},
    }
    if history is not None:
        result["history"] = [{"at": _iso(e.at), "transition": e.transition, "from_status": e.from_status,
                              "to_status": e.to_status, "actor": e.actor_kind, "reason": e.reason} for e in history]
    return result


@blp.route("/orders")
class Orders(MethodView):
    @blp.arguments(OrderInSchema())  # an instance: a class would be instantiated (fields deep-copied) per request
    @blp.response(201, OrderSchema, description="Created; a repeat of an order already stored answers 200")
    @blp.alt_response(200, schema=OrderSchema, description="The same order was posted before: the stored order")
    @blp.alt_response(409, schema=ErrorSchema, description="Stock short (the lines), or the number used by "
                                                           "another order")
    @blp.alt_response(422, schema=ErrorSchema, description="Unknown merchant or SKU, inactive product, bad "
                                                           "quantity, price or deadlines")
    @operator_only
    def post(self, data):
        """Post an order of the marketplace; idempotent by `order_number`. Its lines are reserved at once."""
        intake = services.create_order(db, data, principal=current_principal())
        # Already in the documented shape (strings, ISO times): sent as it is, not dumped through the schema again
        # (intake is the API's busiest call).
        return jsonify(order_dict(intake.order, data["merchant"])), 201 if intake.created else 200

    @blp.arguments(OrderQuerySchema(), location="query")
    @blp.response(200, OrderListSchema)
    def get(self, query):
        """The token's orders (an operator token: every merchant's), oldest first, a page at a time."""
        filters = OrderFilters(status=query["status"], at_risk=query["at_risk"], q=query["q"].strip(),
                               date_from=query["created_from"].isoformat() if query["created_from"] else "",
                               date_to=query["created_to"].isoformat() if query["created_to"] else "")
        # A merchant token's list is its own merchant's whatever it names: another slug reveals nothing.
        if query["merchant"] and current_principal().is_staff:
            filters.merchant_id = merchant_id_by_slug(db, query["merchant"])
            if filters.merchant_id is None:
                raise OrderError(gettext("There is no merchant %(slug)s.", slug=query["merchant"]),
                                 details={"field": "merchant"})
        stmt = orders_query(filters, db=db).order_by(None).order_by(Order.id).where(Order.id > query["after"])
        items = list(db.scalars(stmt.options(selectinload(Order.lines)).limit(query["limit"])))
        slugs = merchant_slugs(db, {o.merchant_id for o in items})
        next_url = None
        if len(items) == query["limit"]:
            args = {key: value.isoformat() if hasattr(value, "isoformat") else value
                    for key, value in query.items() if key != "after" and value not in ("", None, False)}
            next_url = url_for("orders_api.Orders", after=items[-1].id, _external=True, **args)
        return {"items": [order_dict(o, slugs[o.merchant_id]) for o in items], "next": next_url}


@blp.route("/orders/<int:order_id>")
class OrderOne(MethodView):
    @blp.response(200, OrderSchema)
    @blp.alt_response(404, schema=ErrorSchema)
    def get(self, order_id: int):
        """One order with its lines, address and history."""
        order = get_or_404(Order, order_id)
        return order_dict(order, merchant_slugs(db, {order.merchant_id})[order.merchant_id], history(db, order))


@blp.route("/orders/<int:order_id>/<any(accept, refuse, cancel, ship, deliver, return):transition>")
class OrderTransition(MethodView):
    @blp.arguments(TransitionSchema(partial=True), required=False)
    @blp.response(200, OrderSchema)
    @blp.alt_response(404, schema=ErrorSchema)
    @blp.alt_response(403, schema=ErrorSchema, description="The token's side may not fire this transition")
    @blp.alt_response(409, schema=ErrorSchema, description="Not allowed from the order's current state "
                                                           "(details.status)")
    @blp.alt_response(422, schema=ErrorSchema, description="A reason is missing, the carrier is not an active "
                                                           "carrier's code (details.field carrier, details.carriers), "
                                                           "the tracking number is missing or not in the carrier's "
                                                           "format (details.field tracking_number), or the "
                                                           "idempotency key was used for another transition")
    def post(self, body, order_id: int, transition: str):
        """Accept, refuse (reason), cancel (reason), ship (carrier code, tracking number), deliver or return (reason).

        Send an `Idempotency-Key` header to make a retry safe: a repeat with the same key gets the first
        answer. Merchants accept, refuse, cancel and ship; the marketplace cancels, delivers and returns.
        """
        slug = merchant_slugs(db, {get_or_404(Order, order_id).merchant_id}).popitem()[1]
        key = request.headers.get("Idempotency-Key", "").strip() or None
        body = body or {}
        applied = services.apply_transition(db, order_id, transition, principal=current_principal(),
                                            reason=body.get("reason"), tracking_number=body.get("tracking_number"),
                                            carrier=body.get("carrier"), idempotency_key=key,
                                            respond=lambda order: order_dict(order, slug))
        return applied.response
