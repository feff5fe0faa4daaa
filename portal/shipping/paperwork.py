"""A shipment's documents: what the PDFs of ``portal.shipping.documents`` are built from, and which is which."""
from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable

from sqlalchemy.orm import Session

from portal.accounts.models import Merchant
from portal.orders.models import Order
from portal.shipping import documents
from portal.shipping.models import Shipment

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
    for index, package in enumerate(shipment.packages, start=1):
        order = by_order[package.order_id]
        for line in package.lines:
            codes_of_line[line.order_line_id].append(package.code)
        packages.append(documents.PackageDoc(
            code=package.code, index=index, weight_grams=package.weight_grams, length_mm=package.length_mm,
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


def render(db: Session, shipment: Shipment, name: str, locale: str) -> bytes:
    """The PDF ``name`` (labels, packing-slips, handover-act) of the shipment, in ``locale``."""
    return DOCUMENTS[name](shipment_doc(db, shipment, locale))
