"""The shipment state machine as data, the same kind as the orders' (``portal.orders.machine``).

``portal.shipping.services.fire`` is the one function that fires them; nothing else sets a shipment's status.
"""
from __future__ import annotations

from dataclasses import dataclass

from flask_babel import lazy_gettext as _l

from portal.orders.machine import MARKETPLACE, MERCHANT

STATES = ("draft", "ready", "handed_over", "in_transit", "delivered")
# Orders and packages can still change; the shipment is not yet the carrier's.
EDITABLE_STATES = ("draft",)
OPEN_STATES = ("draft", "ready")

STATE_LABELS = {
    "draft": _l("draft"),
    "ready": _l("ready for pickup"),
    "handed_over": _l("handed over"),
    "in_transit": _l("in transit"),
    "delivered": _l("delivered"),
}
STATE_COLOURS = {"draft": "secondary", "ready": "primary", "handed_over": "info", "in_transit": "info",
                 "delivered": "success"}


@dataclass(frozen=True)
class Transition:
    name: str
    sources: tuple[str, ...]
    target: str
    actors: frozenset[str]
    label: object
    # The shipment's timestamp column set to the transition's moment.
    stamp: str | None = None
    # What happens to the shipment's orders: "ship" them (handover) or mark them "deliver"ed.
    orders: str | None = None
    button: str = "secondary"


TRANSITIONS: dict[str, Transition] = {t.name: t for t in (
    Transition("ready", ("draft",), "ready", frozenset({MERCHANT}), _l("Mark ready"), stamp="ready_at",
               button="primary"),
    Transition("reopen", ("ready",), "draft", frozenset({MERCHANT}), _l("Back to draft"),
               button="outline-secondary"),
    Transition("handover", ("ready",), "handed_over", frozenset({MERCHANT}), _l("Hand over to the carrier"),
               stamp="handed_over_at", orders="ship", button="success"),
    Transition("in_transit", ("handed_over",), "in_transit", frozenset({MARKETPLACE}), _l("In transit"),
               stamp="in_transit_at"),
    Transition("delivered", ("handed_over", "in_transit"), "delivered", frozenset({MARKETPLACE}),
               _l("Delivered"), stamp="delivered_at", orders="deliver"),
)}

# Carrier events, reported by the marketplace's systems (operator tokens).
CARRIER_EVENTS = ("in_transit", "delivered")


def allowed_from(status: str) -> list[str]:
    return [t.name for t in TRANSITIONS.values() if status in t.sources]


def available_to(status: str, actor: str) -> list[Transition]:
    return [t for t in TRANSITIONS.values() if status in t.sources and actor in t.actors]


def legal_pairs() -> set[tuple[str, str]]:
    return {(source, t.target) for t in TRANSITIONS.values() for source in t.sources}
