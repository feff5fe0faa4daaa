"""The order state machine as data: states, transitions, who may fire each, guards and stock effects.

``portal.orders.services.apply_transition`` is the one function that fires them; nothing else sets
an order's status.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from flask_babel import lazy_gettext as _l

from portal.orders.models import Order

STATES = ("awaiting_acceptance", "accepted", "shipped", "delivered", "refused", "cancelled", "returned")
OPEN_STATES = ("awaiting_acceptance", "accepted")
# Nothing more is expected of the merchant; the buyer's address is masked in exports.
CLOSED_STATES = ("delivered", "refused", "cancelled", "returned")

STATE_LABELS = {
    "awaiting_acceptance": _l("awaiting acceptance"),
    "accepted": _l("accepted"),
    "shipped": _l("shipped"),
    "delivered": _l("delivered"),
    "refused": _l("refused"),
    "cancelled": _l("cancelled"),
    "returned": _l("returned"),
}
STATE_COLOURS = {
    "awaiting_acceptance": "warning", "accepted": "primary", "shipped": "info", "delivered": "success",
    "refused": "danger", "cancelled": "secondary", "returned": "dark",
}

# Who fires a transition: a merchant's user or token, the marketplace (operators and operator tokens),
# or the portal itself (the expiry job).
MERCHANT, MARKETPLACE, SYSTEM = "merchant", "marketplace", "system"

Guard = Callable[[Order, datetime], "str | None"]


def _before_deadline(order: Order, at: datetime) -> str | None:
    if at > order.acceptance_deadline:
        return str(_l("The acceptance deadline has passed; the order is refused automatically."))
    return None


def _after_deadline(order: Order, at: datetime) -> str | None:
    if at <= order.acceptance_deadline:
        return str(_l("The acceptance deadline has not passed yet."))
    return None


@dataclass(frozen=True)
class Transition:
    name: str
    sources: tuple[str, ...]
    target: str
    actors: frozenset[str]
    label: object
    # What happens to the lines' stock: "release" the reservation, "consume" it (stock leaves the shelf), or nothing.
    stock: str | None = None
    needs_reason: bool = False
    guards: tuple[Guard, ...] = ()
    # The order's timestamp column set to the transition's moment.
    stamp: str | None = None
    # Ends the order; closed_by records who ended it (the actor's kind).
    closes: bool = False
    # Accepts a carrier and tracking number.
    tracking: bool = False
    button: str = "secondary"


TRANSITIONS: dict[str, Transition] = {t.name: t for t in (
    Transition("accept", ("awaiting_acceptance",), "accepted", frozenset({MERCHANT}), _l("Accept"),
               guards=(_before_deadline,), stamp="accepted_at", button="success"),
    Transition("refuse", ("awaiting_acceptance",), "refused", frozenset({MERCHANT}), _l("Refuse"),
               stock="release", needs_reason=True, stamp="closed_at", closes=True, button="danger"),
    Transition("expire", ("awaiting_acceptance",), "refused", frozenset({SYSTEM}), _l("Refuse automatically"),
               stock="release", guards=(_after_deadline,), stamp="closed_at", closes=True),
    Transition("cancel", ("accepted",), "cancelled", frozenset({MERCHANT, MARKETPLACE}), _l("Cancel"),
               stock="release", needs_reason=True, stamp="closed_at", closes=True, button="outline-danger"),
    Transition("ship", ("accepted",), "shipped", frozenset({MERCHANT}), _l("Mark shipped"),
               stock="consume", stamp="shipped_at", tracking=True, button="primary"),
    Transition("deliver", ("shipped",), "delivered", frozenset({MARKETPLACE, SYSTEM}), _l("Mark delivered"),
               stamp="delivered_at", button="success"),
    Transition("return", ("delivered",), "returned", frozenset({MARKETPLACE}), _l("Mark returned"),
               needs_reason=True, stamp="closed_at", closes=True, button="outline-dark"),
)}

# The names the API and the pages expose (expire is the job's alone).
PUBLIC_TRANSITIONS = ("accept", "refuse", "cancel", "ship", "deliver", "return")


def allowed_from(status: str) -> list[str]:
    """The transitions the state allows, whoever fires them."""
    return [t.name for t in TRANSITIONS.values() if status in t.sources]


def available_to(order: Order, actor: str) -> list[Transition]:
    """What ``actor`` may fire on ``order`` now (the buttons of the order page)."""
    return [t for t in TRANSITIONS.values()
            if order.status in t.sources and actor in t.actors and t.name in PUBLIC_TRANSITIONS]


def legal_pairs() -> set[tuple[str, str]]:
    """(from, to) pairs some transition connects; the spec's graph."""
    return {(source, t.target) for t in TRANSITIONS.values() for source in t.sources}
