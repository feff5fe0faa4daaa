"""What every template may use: navigation by role, labels and the current language."""
from __future__ import annotations

from typing import Any

from flask import Flask
from flask_babel import get_locale
from flask_babel import lazy_gettext as _l
from flask_login import current_user

from portal.auth import ROLE_LABELS
from portal.db import utcnow
from portal.jobs.services import job_label
from portal.orders.machine import STATE_COLOURS, STATE_LABELS
from portal.orders.queries import is_at_risk
from portal.shipping.machine import STATE_COLOURS as SHIPMENT_STATE_COLOURS
from portal.shipping.machine import STATE_LABELS as SHIPMENT_STATE_LABELS

CATALOG_NAV = [("catalog.products", _l("Products")), ("catalog.uploads", _l("Uploads")),
               ("category_mapping.categories", _l("Categories"))]
MERCHANT_MAPPING_NAV = [("category_mapping.attribute_names", _l("Attributes")), ("category_mapping.inbox", _l("Requests"))]
NAVIGATION: dict[str, list[tuple[str, Any]]] = {
    "merchant_admin": [
        ("home.index", _l("Home")),
        *CATALOG_NAV,
        *MERCHANT_MAPPING_NAV,
        ("orders.index", _l("Orders")),
        ("shipping.index", _l("Shipments")),
        ("kpi.index", _l("Performance")),
        ("accounts.users", _l("Users")),
        ("accounts.tokens", _l("API tokens")),
        ("accounts.audit_log", _l("Audit log")),
    ],
    "merchant_staff": [("home.index", _l("Home")), *CATALOG_NAV, *MERCHANT_MAPPING_NAV, ("orders.index", _l("Orders")),
                       ("shipping.index", _l("Shipments")), ("kpi.index", _l("Performance"))],
    "category_manager": [("home.index", _l("Home")), ("category_mapping.weak_spots_view", _l("Weak spots")),
                         ("admin.merchants", _l("Merchants")), *CATALOG_NAV, ("category_mapping.inbox", _l("Requests")),
                         ("category_mapping.taxonomy", _l("Taxonomy")), ("kpi.ranking", _l("Merchant performance"))],
    "operator_admin": [
        ("home.index", _l("Home")),
        ("admin.merchants", _l("Merchants")),
        *CATALOG_NAV,
        ("orders.index", _l("Orders")),
        ("shipping.index", _l("Shipments")),
        ("category_mapping.inbox", _l("Requests")),
        ("category_mapping.weak_spots_view", _l("Weak spots")),
        ("category_mapping.taxonomy", _l("Taxonomy")),
        ("kpi.ranking", _l("Merchant performance")),
        ("pim_export.runs", _l("PIM export")),
        ("carriers.index", _l("Carriers")),
        ("kpi.thresholds", _l("KPI thresholds")),
        ("accounts.users", _l("Users")),
        ("accounts.tokens", _l("API tokens")),
        ("accounts.audit_log", _l("Audit log")),
    ],
}

JOB_STATUS_LABELS = {
    "queued": _l("Waiting for a worker…"),
    "running": _l("Working…"),
    "succeeded": _l("Done."),
    "failed": _l("Failed:"),
}


UPLOAD_STATUS_LABELS = {
    "uploaded": _l("uploaded"),
    "queued": _l("queued"),
    "running": _l("processing"),
    "previewed": _l("previewed"),
    "applied": _l("applied"),
    "failed": _l("failed"),
}
MAPPING_STATUS_LABELS = {
    "unmapped": _l("unmapped"),
    "suggested": _l("suggested"),
    "confirmed": _l("confirmed"),
    "rejected": _l("rejected"),
}
READINESS_LABELS = {
    "ready": _l("ready"),
    "incomplete": _l("incomplete"),
    "unmapped": _l("category not mapped"),
    "invalid": _l("last update rejected"),
    "inactive": _l("inactive"),
}
EVENT_SOURCE_LABELS = {"upload": _l("catalog upload"), "api": _l("API"), "web": _l("cabinet"),
                       "order": _l("order shipped")}


ORDER_EVENT_LABELS = {
    "create": _l("Received from the marketplace"),
    "accept": _l("Accepted"),
    "refuse": _l("Refused"),
    "expire": _l("Refused automatically"),
    "cancel": _l("Cancelled"),
    "ship": _l("Shipped"),
    "deliver": _l("Delivered"),
    "return": _l("Returned"),
}


# What a shipment's history calls each of its events (``ShipmentEvent.transition``).
SHIPMENT_EVENT_LABELS = {
    "create": _l("Shipment created"),
    "add_orders": _l("Orders added"),
    "remove_order": _l("Order taken out"),
    "package": _l("Package weighed, measured or tracked"),
    "split": _l("Package split"),
    "merge": _l("Packages merged"),
    "ready": _l("Marked ready"),
    "reopen": _l("Returned to draft"),
    "handover": _l("Handed over to the carrier"),
    "in_transit": _l("In transit"),
    "delivered": _l("Shipment delivered"),
}


def order_status_label(status: str) -> Any:
    return STATE_LABELS.get(status, status)


def nav_items() -> list[tuple[str, Any]]:
    return NAVIGATION.get(current_user.role, []) if current_user.is_authenticated else []


def role_label(role: str) -> Any:
    return ROLE_LABELS.get(role, role)


def job_status_label(status: str) -> Any:
    return JOB_STATUS_LABELS.get(status, status)


def init_app(app: Flask) -> None:
    app.jinja_env.globals.update(
        nav_items=nav_items,
        role_label=role_label,
        job_status_label=job_status_label,
        job_kind_label=job_label,
        upload_status_label=lambda status: UPLOAD_STATUS_LABELS.get(status, status),
        mapping_status_label=lambda status: MAPPING_STATUS_LABELS.get(status, status),
        readiness_label=lambda state: READINESS_LABELS.get(state, state),
        event_source_label=lambda source: EVENT_SOURCE_LABELS.get(source, source),
        current_locale=lambda: str(get_locale() or "en"),
        order_status_label=order_status_label,
        order_status_colour=lambda status: STATE_COLOURS.get(status, "secondary"),
        order_event_label=lambda name: ORDER_EVENT_LABELS.get(name, name),
        order_at_risk=is_at_risk,
        shipment_status_label=lambda status: SHIPMENT_STATE_LABELS.get(status, status),
        shipment_status_colour=lambda status: SHIPMENT_STATE_COLOURS.get(status, "secondary"),
        shipment_event_label=lambda name: SHIPMENT_EVENT_LABELS.get(name, name),
        now_utc=utcnow,
    )
