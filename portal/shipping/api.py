"""Shipments API: merchants build, pack and hand over shipments; the marketplace reports the carrier's events."""
from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timezone
from functools import wraps
from typing import Any

from flask import Response, abort, url_for
from flask.views import MethodView
from flask_babel import get_locale, gettext
from marshmallow import Schema, fields, validate
from sqlalchemy.orm import selectinload

from portal.api import api_blueprint, operator_only
from portal.db import session as db
from portal.extensions import ErrorSchema
from portal.orders.queries import merchant_id_by_slug, merchant_slugs
from portal.shipping import paperwork, services
from portal.shipping.carriers import tracking_link
from portal.shipping.exceptions import ShipmentError
from portal.shipping.machine import CARRIER_EVENTS, OPEN_STATES, STATES
from portal.shipping import queries
from portal.shipping.models import Package, Shipment, ShipmentEvent
from portal.tenancy import current_principal, get_or_404, scoped_select

blp = api_blueprint("shipments_api", __name__, description="Shipments: the merchant's orders for one carrier and "
                                                           "pickup date, in packages, with their documents")

# --- schemas -----------------------------------------------------------------------------------------------------


class ShipmentInSchema(Schema):
    order_ids = fields.List(fields.Integer(strict=True), required=True,
                            metadata={"description": "ids of the merchant's accepted orders in no other shipment; "
                                                     "each goes in one package holding all its lines"})
    carrier = fields.String(required=True, validate=validate.Length(min=1, max=32),
                            metadata={"description": "the code of an active carrier, e.g. cdek"})
    pickup_date = fields.Date(required=True, metadata={"description": "YYYY-MM-DD; today up to 60 days ahead"})


class OrderIdsSchema(Schema):
    order_ids = fields.List(fields.Integer(strict=True), required=True,
                            metadata={"description": "ids of the merchant's accepted orders in no other shipment"})


class PackagePatchSchema(Schema):
    weight_grams = fields.Integer(strict=True, metadata={"description": "grams, 1 up to the carrier's maximum"})
    length_mm = fields.Integer(strict=True, metadata={"description": "millimetres, 1 to 3000"})
    width_mm = fields.Integer(strict=True, metadata={"description": "millimetres, 1 to 3000"})
    height_mm = fields.Integer(strict=True, metadata={"description": "millimetres, 1 to 3000"})
    tracking_number = fields.String(validate=validate.Length(max=64),
                                    metadata={"description": "must match one of the carrier's formats; "
                                                             "an empty string clears it"})


class SplitLineSchema(Schema):
    order_line_id = fields.Integer(strict=True, required=True)
    quantity = fields.Integer(strict=True, required=True, metadata={"description": "units moved to the new package"})


class SplitSchema(Schema):
    lines = fields.List(fields.Nested(SplitLineSchema), required=True,
                        metadata={"description": "what moves into a new package of the same order; at least "
                                                 "one unit stays behind"})


class CarrierEventSchema(Schema):
    event = fields.String(required=True, validate=validate.OneOf(CARRIER_EVENTS),
                          metadata={"description": "in_transit or delivered (delivered also delivers the orders)"})
    at = fields.AwareDateTime(load_default=None, metadata={"description": "when the carrier reported it; "
                                                                          "default: now"})


class ShipmentQuerySchema(Schema):
    status = fields.String(load_default="", validate=validate.OneOf(["", "open", *STATES]),
                           metadata={"description": "one state, or open (draft and ready)"})
    merchant = fields.String(load_default="", metadata={"description": "operators: one merchant's slug"})
    limit = fields.Integer(load_default=100, validate=validate.Range(min=1, max=1000))
    after = fields.Integer(load_default=0, metadata={"description": "id of the last shipment of the previous page"})


class DocumentQuerySchema(Schema):
    lang = fields.String(validate=validate.OneOf(["en", "ru"]),
                         metadata={"description": "the language of the document's words; default: the request's "
                                                  "(Accept-Language), else English"})


class ShipmentOrderSchema(Schema):
    id = fields.Integer()
    order_number = fields.String()
    status = fields.String()


class PackageLineSchema(Schema):
    order_line_id = fields.Integer()
    sku = fields.String()
    quantity = fields.Integer()


class PackageSchema(Schema):
    id = fields.Integer()
    code = fields.String(metadata={"description": "PKG-00000001: the label's barcode"})
    order_id = fields.Integer()
    order_number = fields.String()
    weight_grams = fields.Integer(metadata={"description": "0 until weighed"})
    length_mm = fields.Integer()
    width_mm = fields.Integer()
    height_mm = fields.Integer()
    tracking_number = fields.String(allow_none=True)
    tracking_url = fields.String(allow_none=True, metadata={"description": "the carrier's tracking page, when it "
                                                                           "has one"})
    lines = fields.List(fields.Nested(PackageLineSchema))


class ShipmentEventSchema(Schema):
    at = fields.String()
    transition = fields.String(metadata={"description": "create, add_orders, remove_order, package, split, merge, "
                                                        "or a state transition"})
    from_status = fields.String(allow_none=True)
    to_status = fields.String()
    actor = fields.String(metadata={"description": "user, token or system"})


class ShipmentSchema(Schema):
    id = fields.Integer()
    number = fields.String(metadata={"description": "SHP-000001"})
    status = fields.String(metadata={"description": "draft, ready, handed_over, in_transit or delivered"})
    merchant = fields.String(metadata={"description": "the merchant's slug"})
    carrier = fields.String(metadata={"description": "the carrier's code"})
    carrier_name = fields.String()
    pickup_date = fields.Date()
    created_at = fields.String()
    updated_at = fields.String()
    ready_at = fields.String(allow_none=True)
    handed_over_at = fields.String(allow_none=True)
    in_transit_at = fields.String(allow_none=True)
    delivered_at = fields.String(allow_none=True)
    orders = fields.List(fields.Nested(ShipmentOrderSchema))
    packages = fields.List(fields.Nested(PackageSchema))
    problems = fields.List(fields.String(), metadata={
        "description": "one shipment only: what stops a draft going ready (or a ready one being handed over); "
                       "empty when it can go"})
    history = fields.List(fields.Nested(ShipmentEventSchema), metadata={"description": "one shipment only"})


class ShipmentListSchema(Schema):
    items = fields.List(fields.Nested(ShipmentSchema))
    next = fields.String(allow_none=True)


# --- answers -----------------------------------------------------------------------------------------------------


def _iso(value: datetime | None) -> str | None:
    return value.astimezone(timezone.utc).isoformat() if value else None


def shipment_dict(shipment: Shipment, merchant_slug: str, *, full: bool = True) -> dict[str, Any]:
    """The shipment as the API answers it; ``full`` adds its problems and history (one shipment's answer)."""
    carrier = shipment.carrier
    orders = {member.order_id: member.order for member in shipment.orders}
    result: dict[str, Any] = {
        "id": shipment.id, "number": shipment.number, "status": shipment.status, "merchant": merchant_slug,
        "carrier": carrier.code, "carrier_name": carrier.name, "pickup_date": shipment.pickup_date,
        "created_at": _iso(shipment.created_at), "updated_at": _iso(shipment.updated_at),
        "ready_at": _iso(shipment.ready_at), "handed_over_at": _iso(shipment.handed_over_at),
        "in_transit_at": _iso(shipment.in_transit_at), "delivered_at": _iso(shipment.delivered_at),
        "orders": [{"id": order.id, "order_number": order.order_number, "status": order.status}
                   for order in orders.values()],
        "packages": [{
            "id": package.id, "code": package.code, "order_id": package.order_id,
            "order_number": orders[package.order_id].order_number, "weight_grams": package.weight_grams,
            "length_mm": package.length_mm, "width_mm": package.width_mm, "height_mm": package.height_mm,
            "tracking_number": package.tracking_number, "tracking_url": tracking_link(carrier, package.tracking_number),
            "lines": [{"order_line_id": line.order_line_id, "sku": line.order_line.sku, "quantity": line.quantity}
                      for line in package.lines],
        } for package in shipment.packages],
    }
    if full:
        # Once handed over its orders are shipped, which would read as problems: there are none left to solve.
        result["problems"] = services.problems(shipment) if shipment.status in OPEN_STATES else []
        result["history"] = [{"at": _iso(e.at), "transition": e.transition, "from_status": e.from_status,
                              "to_status": e.to_status, "actor": e.actor_kind} for e in _history(shipment)]
    return result


def _history(shipment: Shipment) -> list[ShipmentEvent]:
    return queries.history(db, shipment)


def _answer(shipment: Shipment) -> dict[str, Any]:
    return shipment_dict(shipment, merchant_slugs(db, {shipment.merchant_id})[shipment.merchant_id])


def _with_shipment(view: Callable[..., Any]) -> Callable[..., Any]:
    """Find the URL's shipment (and package) before the body is read, and pass it to the view as ``shipment``.

    Another merchant's shipment, or a package of another shipment, answers 404 whatever the body holds,
    never a 422 about the body: the answer reveals nothing about ids that are not the token's.
    """

    @wraps(view)  # keeps flask-smorest's documentation of the view
    def wrapped(*args: Any, shipment_id: int, **kwargs: Any) -> Any:
        shipment = get_or_404(Shipment, shipment_id)
        package_id = kwargs.get("package_id")
        if package_id is not None and all(package.id != package_id for package in shipment.packages):
            abort(404)
        return view(*args, shipment=shipment, **kwargs)

    return wrapped


# --- routes ------------------------------------------------------------------------------------------------------


@blp.route("/shipments")
class Shipments(MethodView):
    @blp.arguments(ShipmentInSchema())  # an instance: a class would be instantiated (fields deep-copied) per request
    @blp.response(201, ShipmentSchema, description="The draft shipment, one package per order")
    @blp.alt_response(403, schema=ErrorSchema, description="An operator token: shipments are built by the merchant")
    @blp.alt_response(409, schema=ErrorSchema, description="An order is already in another shipment "
                                                           "(details.order_id, details.shipment_id)")
    @blp.alt_response(422, schema=ErrorSchema, description="A malformed body (details per field); or details.field "
                                                           "names what is wrong: order_ids[i] (not the merchant's, "
                                                           "not accepted, listed twice), carrier (no active carrier "
                                                           "of that code) or pickup_date (past, or too far ahead)")
    def post(self, data):
        """Build a draft shipment of the merchant's accepted orders for a carrier and a pickup date."""
        shipment = services.create_shipment(db, principal=current_principal(), order_ids=data["order_ids"],
                                            carrier=data["carrier"], pickup_date=data["pickup_date"])
        return _answer(shipment)

    @blp.arguments(ShipmentQuerySchema(), location="query")
    @blp.response(200, ShipmentListSchema)
    @blp.alt_response(422, schema=ErrorSchema, description="A bad filter, or an unknown merchant (details.field)")
    def get(self, query):
        """The token's shipments (an operator token: every merchant's), oldest first, a page at a time.

        Items leave out `problems` and `history`; get the one shipment for them.
        """
        stmt = scoped_select(Shipment).where(Shipment.id > query["after"])
        if query["status"] == "open":
            stmt = stmt.where(Shipment.status.in_(OPEN_STATES))
        elif query["status"]:
            stmt = stmt.where(Shipment.status == query["status"])
        # A merchant token's list is its own merchant's whatever it names: another slug reveals nothing.
        if query["merchant"] and current_principal().is_staff:
            merchant_id = merchant_id_by_slug(db, query["merchant"])
            if merchant_id is None:
                raise ShipmentError(gettext("There is no merchant %(slug)s.", slug=query["merchant"]),
                                    details={"field": "merchant"})
            stmt = stmt.where(Shipment.merchant_id == merchant_id)
        stmt = stmt.options(selectinload(Shipment.orders),
                            selectinload(Shipment.packages).selectinload(Package.lines))
        items = list(db.scalars(stmt.order_by(Shipment.id).limit(query["limit"])))
        slugs = merchant_slugs(db, {s.merchant_id for s in items})
        next_url = None
        if len(items) == query["limit"]:
            args = {key: value for key, value in query.items() if key != "after" and value not in ("", None)}
            next_url = url_for("shipments_api.Shipments", after=items[-1].id, _external=True, **args)
        return {"items": [shipment_dict(s, slugs[s.merchant_id], full=False) for s in items], "next": next_url}


@blp.route("/shipments/<int:shipment_id>")
class ShipmentOne(MethodView):
    @blp.response(200, ShipmentSchema)
    @blp.alt_response(404, schema=ErrorSchema)
    @_with_shipment
    def get(self, shipment: Shipment):
        """One shipment with its orders, packages, problems and history."""
        return _answer(shipment)

    @blp.response(204, description="Thrown away; its orders are free for another shipment")
    @blp.alt_response(403, schema=ErrorSchema, description="An operator token")
    @blp.alt_response(404, schema=ErrorSchema)
    @blp.alt_response(409, schema=ErrorSchema, description="Not a draft (details.status)")
    @_with_shipment
    def delete(self, shipment: Shipment):
        """Throw away a draft shipment."""
        services.delete_draft(db, shipment.id, principal=current_principal())


@blp.route("/shipments/<int:shipment_id>/orders")
class ShipmentOrders(MethodView):
    @_with_shipment
    @blp.arguments(OrderIdsSchema())
    @blp.response(200, ShipmentSchema)
    @blp.alt_response(403, schema=ErrorSchema, description="An operator token")
    @blp.alt_response(404, schema=ErrorSchema)
    @blp.alt_response(409, schema=ErrorSchema, description="Not a draft (details.status), or an order is in another "
                                                           "shipment")
    @blp.alt_response(422, schema=ErrorSchema, description="details.field order_ids[i]: not the merchant's, not "
                                                           "accepted, listed twice")
    def post(self, data, shipment: Shipment):
        """Add accepted orders to a draft shipment, each in one package of its own."""
        return _answer(services.add_orders(db, shipment.id, data["order_ids"], principal=current_principal()))


@blp.route("/shipments/<int:shipment_id>/orders/<int:order_id>")
class ShipmentOrder(MethodView):
    @blp.response(200, ShipmentSchema)
    @blp.alt_response(403, schema=ErrorSchema, description="An operator token")
    @blp.alt_response(404, schema=ErrorSchema, description="No such shipment, or the order is not in it")
    @blp.alt_response(409, schema=ErrorSchema, description="Not a draft (details.status)")
    @_with_shipment
    def delete(self, shipment: Shipment, order_id: int):
        """Take an order and its packages out of a draft shipment; the order can go in another one."""
        return _answer(services.remove_order(db, shipment.id, order_id, principal=current_principal()))


@blp.route("/shipments/<int:shipment_id>/packages/<int:package_id>")
class ShipmentPackage(MethodView):
    @_with_shipment
    @blp.arguments(PackagePatchSchema())
    @blp.response(200, ShipmentSchema)
    @blp.alt_response(403, schema=ErrorSchema, description="An operator token")
    @blp.alt_response(404, schema=ErrorSchema, description="No such shipment, or the package is not in it")
    @blp.alt_response(409, schema=ErrorSchema, description="Not a draft (details.status)")
    @blp.alt_response(422, schema=ErrorSchema, description="details.field: weight_grams (over the carrier's "
                                                           "maximum), a side, or tracking_number (not in the "
                                                           "carrier's format)")
    def patch(self, changes, shipment: Shipment, package_id: int):
        """Weigh, measure and track a package of a draft shipment (every field optional)."""
        package = services.update_package(db, package_id, principal=current_principal(), **changes)
        return _answer(package.shipment)

    @blp.response(200, ShipmentSchema)
    @blp.alt_response(403, schema=ErrorSchema, description="An operator token")
    @blp.alt_response(404, schema=ErrorSchema, description="No such shipment, or the package is not in it")
    @blp.alt_response(409, schema=ErrorSchema, description="Not a draft (details.status)")
    @blp.alt_response(422, schema=ErrorSchema, description="The package is its order's only one (details.field "
                                                           "package)")
    @_with_shipment
    def delete(self, shipment: Shipment, package_id: int):
        """Put a package's contents back into another package of its order."""
        return _answer(services.remove_package(db, package_id, principal=current_principal()))


@blp.route("/shipments/<int:shipment_id>/packages/<int:package_id>/split")
class PackageSplit(MethodView):
    @_with_shipment
    @blp.arguments(SplitSchema())
    @blp.response(201, ShipmentSchema, description="The shipment, the new package last")
    @blp.alt_response(403, schema=ErrorSchema, description="An operator token")
    @blp.alt_response(404, schema=ErrorSchema, description="No such shipment, or the package is not in it")
    @blp.alt_response(409, schema=ErrorSchema, description="Not a draft (details.status)")
    @blp.alt_response(422, schema=ErrorSchema, description="details.field lines: a line not in the package, more "
                                                           "units than it holds, or all of them")
    def post(self, data, shipment: Shipment, package_id: int):
        """Move some units of a package into a new package of the same order."""
        quantities: dict[int, int] = {}
        for index, line in enumerate(data["lines"]):
            if line["order_line_id"] in quantities:
                raise ShipmentError(gettext("The order line %(id)s is listed twice.", id=line["order_line_id"]),
                                    details={"field": f"lines[{index}].order_line_id"})
            quantities[line["order_line_id"]] = line["quantity"]
        new = services.split_package(db, package_id, quantities, principal=current_principal())
        return _answer(new.shipment), 201


@blp.route("/shipments/<int:shipment_id>/<any(ready, reopen, handover):transition>")
class ShipmentTransition(MethodView):
    @blp.response(200, ShipmentSchema)
    @blp.alt_response(403, schema=ErrorSchema, description="An operator token")
    @blp.alt_response(404, schema=ErrorSchema)
    @blp.alt_response(409, schema=ErrorSchema, description="Not possible from the shipment's state "
                                                           "(details.status, details.allowed)")
    @blp.alt_response(422, schema=ErrorSchema, description="What stops it (details.problems): no orders, units not "
                                                           "packed, a package without weight, sides or a valid "
                                                           "tracking number, an order no longer accepted")
    @_with_shipment
    def post(self, shipment: Shipment, transition: str):
        """Mark a draft ready, reopen a ready one, or hand it over to the carrier.

        Handover ships every order of the shipment at that moment with its package's tracking number, all or
        none. A draft is handed over in one call: made ready and handed over in one transaction (both
        transitions recorded), or, if anything stops it, left as it was.
        """
        if transition == "handover":
            return _answer(services.hand_over(db, shipment.id, principal=current_principal()))
        return _answer(services.fire(db, shipment.id, transition, principal=current_principal()))


@blp.route("/shipments/<int:shipment_id>/events")
class ShipmentEvents(MethodView):
    @operator_only  # before anything else: a merchant token gets 403 for every shipment, its own or not
    @_with_shipment
    @blp.arguments(CarrierEventSchema())
    @blp.response(200, ShipmentSchema)
    @blp.alt_response(403, schema=ErrorSchema, description="A merchant token: carrier events come from the "
                                                           "marketplace")
    @blp.alt_response(404, schema=ErrorSchema)
    @blp.alt_response(409, schema=ErrorSchema, description="Not possible from the shipment's state "
                                                           "(details.status, details.allowed)")
    def post(self, data, shipment: Shipment):
        """Report a carrier event: in transit, or delivered (its shipped orders are marked delivered)."""
        return _answer(services.fire(db, shipment.id, data["event"], principal=current_principal(), at=data["at"]))


@blp.route("/shipments/<int:shipment_id>/documents/<any(labels, 'packing-slips', 'handover-act'):name>.pdf")
class ShipmentDocument(MethodView):
    @_with_shipment
    @blp.arguments(DocumentQuerySchema(), location="query")
    @blp.response(200, {"type": "string", "format": "binary"}, content_type="application/pdf",
                  description="The PDF, as an attachment: labels (one 100 × 150 mm label per package, with a Code "
                              "128 barcode), packing slips (one per order) or the handover act")
    @blp.alt_response(404, schema=ErrorSchema)
    @blp.alt_response(422, schema=ErrorSchema, description="Nothing to print: no packages (labels, act) or no "
                                                           "orders (packing slips); labels and the act of a "
                                                           "draft wait until its packing is complete")
    def get(self, query, shipment: Shipment, name: str):
        """A document of the shipment as PDF, in English or Russian."""
        problem = paperwork.not_printable(shipment, name)
        if problem:
            raise ShipmentError(problem, details={"document": name})
        locale = query.get("lang") or str(get_locale() or "en")
        pdf = paperwork.render(db, shipment, name, locale)
        return Response(pdf, mimetype="application/pdf", headers={
            "Content-Disposition": f'attachment; filename="{shipment.number}-{name}.pdf"'})
