"""A shipment's documents: what the PDFs of ``portal.shipping.documents`` are built from, and which is which."""
from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable

from flask_babel import gettext
from sqlalchemy.orm import Session

from portal.accounts.models import Merchant
from portal.orders.models import Order
from portal.shipping import documents
from portal.shipping.machine import EDITABLE_STATES
from portal.shipping.models import Shipment
from portal.shipping.services import problems

# The documents by the name in their URL: ``…/documents/<name>.pdf``.
DOCUMENTS: dict[str, Callable[[documents.ShipmentDoc], bytes]] = {
    "labels": documents.labels_pdf,
    "packing-slips": documents.packing_slips_pdf,
    "handover-act": documents.handover_act_pdf,
}


def _address(order: Order) -> documents.Address:
    return documents.Address(name=order.buyer_name, phone=order.buyer_phone, country=order.country,
                             city=order.city, postal_code=order.postal_code, line1=order.line1)


def shipment_doc(db: Session, shipment: Shipment, locale: str) -> documents.ShipmentDoc:
    """The shipment as its documents show it (packages in the order they were made, orders as added)."""
    merchant = db.get(Merchant, shipment.merchant_id)
    by_order = {member.order_id: member.order for member in shipment.orders}
    codes_of_line: dict[int, list[str]] = defaultdict(list)
    packages = []
    per_order: dict[int, int] = defaultdict(int)
    for package in shipment.packages:
        per_order[package.order_id] += 1
    seen: dict[int, int] = defaultdict(int)
    for package in shipment.packages:
        order = by_order[package.order_id]
        seen[package.order_id] += 1
        for line in package.lines:
            codes_of_line[line.order_line_id].append(package.code)
        packages.append(documents.PackageDoc(
            code=package.code, index=seen[package.order_id], of=per_order[package.order_id],
            weight_grams=package.weight_grams, length_mm=package.length_mm,
            width_mm=package.width_mm, height_mm=package.height_mm, tracking_number=package.tracking_number,
            ship_to=_address(order), order_numbers=(order.order_number,),
            lines=tuple(documents.LineDoc(order_number=order.order_number, sku=line.order_line.sku,
                                          title=line.order_line.title, quantity=line.quantity)
                        for line in package.lines)))
    orders = tuple(documents.OrderDoc(
        order_number=order.order_number, created_at=order.created_at, ship_by=order.ship_by, ship_to=_address(order),
        lines=tuple(documents.LineDoc(order_number=order.order_number, sku=line.sku, title=line.title,
                                      quantity=line.quantity) for line in order.lines),
        packages_of_line=tuple((line.sku, tuple(codes_of_line[line.id])) for line in order.lines),
    ) for order in by_order.values())
    return documents.ShipmentDoc(
        number=shipment.number, merchant_name=merchant.name if merchant else "", carrier_name=shipment.carrier.name,
        pickup_date=shipment.pickup_date, created_at=shipment.created_at, packages=tuple(packages), orders=orders,
        locale=locale if locale in ("en", "ru") else "en")


def not_printable(shipment: Shipment, name: str) -> str | None:
    """Why the document cannot be printed now (None when it can).

    Packing slips help packing, so they print as soon as there are orders; labels and the act carry
    weights, sides and tracking numbers, so they wait until nothing stops the shipment going ready.
    """
    if not (shipment.orders if name == "packing-slips" else shipment.packages):
        return gettext("The shipment %(number)s has no orders or packages to print.", number=shipment.number)
    if name != "packing-slips" and shipment.status in EDITABLE_STATES:
        found = problems(shipment)
        if found:
            return gettext("Finish packing first: %(problem)s", problem=found[0])
    return None


def render(db: Session, shipment: Shipment, name: str, locale: str) -> bytes:
    """The PDF ``name`` (labels, packing-slips, handover-act) of the shipment, in ``locale``."""
    return DOCUMENTS[name](shipment_doc(db, shipment, locale))
