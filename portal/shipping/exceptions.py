"""What can go wrong with a shipment, as errors a merchant or the marketplace's system can act on."""
from __future__ import annotations

from portal.errors import PortalError


class ShipmentError(PortalError):
    """The request is not valid for the shipment (422); ``details`` names the field or lists the problems."""

    status = 422
    code = "invalid_shipment"


class ShipmentNotFound(PortalError):
    """Missing, or another merchant's: the same answer, so ids reveal nothing."""

    status = 404
    code = "not_found"


class OrderInShipment(PortalError):
    status = 409
    code = "order_in_shipment"


class IllegalShipmentTransition(PortalError):
    """The shipment's current state does not allow the transition (409, with the current state)."""

    status = 409
    code = "illegal_transition"


class ShipmentForbidden(PortalError):
    status = 403
    code = "transition_forbidden"
