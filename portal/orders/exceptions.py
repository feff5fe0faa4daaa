"""What can go wrong with an order, as errors a merchant or the marketplace's system can act on."""
from __future__ import annotations

from portal.errors import PortalError


class OrderError(PortalError):
    """The posted order or the request is not valid (422); ``details`` names the fields."""

    status = 422
    code = "invalid_order"


class StockShort(PortalError):
    """Available stock cannot cover the order; ``details`` lists each short line."""

    status = 409
    code = "insufficient_stock"


class OrderNotFound(PortalError):
    """Missing, or another merchant's: the same answer, so ids reveal nothing."""

    status = 404
    code = "not_found"


class OrderNumberTaken(PortalError):
    status = 409
    code = "order_number_conflict"


class IllegalTransition(PortalError):
    """The order's current state does not allow the transition (409, with the current state)."""

    status = 409
    code = "illegal_transition"


class TransitionForbidden(PortalError):
    status = 403
    code = "transition_forbidden"
