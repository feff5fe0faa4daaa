"""The shipment pages: the list, building one from the order desk, packing it, its documents, its transitions.

Every change goes through ``portal.shipping.services``, as the JSON API's do; a refusal is flashed and the
page shown again, with nothing changed.
"""
from __future__ import annotations

from datetime import date
from typing import Any
from urllib.parse import parse_qsl
from zoneinfo import ZoneInfo

from flask import Blueprint, Response, flash, redirect, render_template, request, url_for
from flask_babel import get_locale, gettext, ngettext
from flask_login import current_user
from markupsafe import Markup
from sqlalchemy import select
from sqlalchemy.orm import selectinload
from werkzeug.datastructures import MultiDict

from portal.accounts.models import ApiToken, Merchant
from portal.accounts.queries import emails_by_id, merchant_names_by_id
from portal.auth import roles_required
from portal.db import session as db
from portal.db import utcnow
from portal.errors import PortalError
from portal.orders.machine import MARKETPLACE
from portal.orders.machine import MERCHANT as MERCHANT_SIDE
from portal.orders.models import Order
from portal.orders.queries import OrderFilters
from portal.pagination import paginate
from portal.shipping import paperwork, services
from portal.shipping.carriers import active_carriers, cutoff_on, next_cutoff, tracking_link
from portal.shipping.exceptions import IllegalShipmentTransition
from portal.shipping.forms import PACKAGE_FIELDS, ActionForm, CreateShipmentForm, PackageForm, SplitForm
from portal.shipping.machine import EDITABLE_STATES, OPEN_STATES, STATE_LABELS, TRANSITIONS, available_to
from portal.shipping import queries
from portal.shipping.models import Carrier, Package, Shipment, ShipmentEvent, ShipmentOrder
from portal.tenancy import current_principal, get_or_404, scoped_select

bp = Blueprint("shipping", __name__, url_prefix="/shipments", template_folder="templates")

MERCHANT = ("merchant_admin", "merchant_staff")
# Operators read every merchant's shipments and report the carrier's events; they build and pack none.
READERS = (*MERCHANT, "operator_admin")
# The list's tabs: the status filter each applies.
TABS = {"open": OPEN_STATES, "handed_over": ("handed_over",), "in_transit": ("in_transit",),
        "delivered": ("delivered",), "all": ()}
PAGE_TRANSITIONS = tuple(TRANSITIONS)


# --- helpers -----------------------------------------------------------------------------------------------------


def next_pickup_day(carrier: Carrier, today: date | None = None) -> date:
    """The day of the carrier's next pickup (its next cut-off, in the carrier's zone); today if it has none."""
    today = today or utcnow().date()
    cutoff = next_cutoff(carrier)
    if cutoff is None:
        return today
    # A carrier west of UTC may still be on yesterday; the services take no date before today (UTC).
    return max(cutoff.astimezone(ZoneInfo(carrier.timezone or "UTC")).date(), today)


def carrier_choices() -> list[tuple[Carrier, date]]:
    """The active carriers with their next pickup day, for the desk's "Create shipment"."""
    return [(carrier, next_pickup_day(carrier)) for carrier in active_carriers(db)]


def _ids(name: str = "order_id") -> list[int]:
    """Ticked ids of a form; anything that is not a plain number is dropped, as the desk's bulk does."""
    return [int(v) for v in request.form.getlist(name) if v.isdecimal() and v.isascii()][:services.MAX_ORDERS]


def _flash_error(error: PortalError, package: Package | None = None) -> None:
    """The service's verdict; a package's names the package and the field, and problems come as a list."""
    details = error.details if isinstance(error.details, dict) else {}
    message: Any = error.message
    field = details.get("field")
    if package is not None and field in PACKAGE_FIELDS:
        message = gettext("%(package)s, %(field)s: %(message)s", package=package.code, field=PACKAGE_FIELDS[field],
                          message=error.message)
    problems = details.get("problems") or []
    if len(problems) > 1:
        message = Markup("{}<ul class=\"mb-0 mt-1 shipment-problems\">{}</ul>").format(
            message, Markup("").join(Markup("<li>{}</li>").format(p) for p in problems))
    flash(message, "danger")


def _checked(form: Any) -> bool:
    """The CSRF token (and the form's fields) are valid; otherwise say so, and nothing changes."""
    if form.validate_on_submit():
        return True
    flash(gettext("The form was not valid; nothing was changed."), "danger")
    return False


def _back(shipment: Shipment) -> Any:
    return redirect(url_for("shipping.show", shipment_id=shipment.id))


def _package_of(shipment: Shipment, package_id: int) -> Package | None:
    package = next((p for p in shipment.packages if p.id == package_id), None)
    if package is None:
        # Merged or moved since the page was shown (a second click): nothing to do, and nothing revealed.
        flash(gettext("That package is no longer in the shipment; nothing was changed."), "warning")
    return package


def _contents(package: Package) -> str:
    lines = sorted(package.lines, key=lambda line: line.order_line_id)
    return ",".join(f"{line.order_line_id}:{line.quantity}" for line in lines)


def _actions(shipment: Shipment) -> list[Any]:
    """The state machine's buttons for the viewer's side; a merchant can hand a draft over in one click."""
    side = MERCHANT_SIDE if current_principal().is_merchant else MARKETPLACE
    actions = available_to(shipment.status, side)
    if shipment.status == "draft" and TRANSITIONS["handover"] not in actions and side in TRANSITIONS["handover"].actors:
        actions.append(TRANSITIONS["handover"])
    return actions


def _history(shipment: Shipment) -> list[ShipmentEvent]:
    return queries.history(db, shipment)


def _token_names(token_ids: set[int]) -> dict[int, str]:
    """Names of the API tokens behind events already scoped to the viewer."""
    if not token_ids:
        return {}
    return dict(db.execute(select(ApiToken.id, ApiToken.name).where(ApiToken.id.in_(token_ids))).tuples().all())


def _free_orders() -> list[Order]:
    """The merchant's accepted orders in no shipment: what a draft can take in."""
    taken = select(ShipmentOrder.id).where(ShipmentOrder.order_id == Order.id).exists()
    return list(db.scalars(scoped_select(Order).where(Order.status == "accepted", ~taken)
                           .order_by(Order.ship_by, Order.id).limit(200)))


# --- the list ----------------------------------------------------------------------------------------------------


@bp.get("")
@roles_required(*READERS)
def index():
    tab = request.args.get("status", "open")
    tab = tab if tab in TABS else "open"
    stmt = scoped_select(Shipment)
    if TABS[tab]:
        stmt = stmt.where(Shipment.status.in_(TABS[tab]))
    stmt = stmt.options(selectinload(Shipment.orders), selectinload(Shipment.packages)).order_by(Shipment.id.desc())
    page = paginate(db, stmt, request.args.get("page", 1, type=int), per_page=50)
    merchants = merchant_names_by_id(db, (s.merchant_id for s in page.items)) if current_user.is_staff else {}
    return render_template("shipping/index.html", page=page, tab=tab, tabs=TABS, merchants=merchants)


@bp.post("")
@roles_required(*MERCHANT)
def create():
    """The desk's "Create shipment": the ticked accepted orders, a carrier and a pickup date, or nothing at all."""
    form = CreateShipmentForm()
    # Back to the desk as it was filtered: rebuilt from the filters, never a URL taken from the form.
    desk = url_for("orders.index", **OrderFilters.from_args(MultiDict(parse_qsl(request.form.get("back", "")))).as_args())
    if not form.validate_on_submit():
        problem = form.pickup_date.errors and gettext("The pickup date is not a date.")
        flash(problem or gettext("The form was not valid; nothing was changed."), "danger")
        return redirect(desk)
    order_ids = _ids()
    if not order_ids:
        flash(gettext("Tick the accepted orders that go in the shipment first."), "warning")
        return redirect(desk)
    code = (form.carrier.data or "").strip()
    if not code:
        flash(gettext("Choose the carrier of the shipment."), "danger")
        return redirect(desk)
    pickup = form.pickup_date.data
    if pickup is None:
        carrier = next((c for c in active_carriers(db) if c.code == code), None)
        pickup = next_pickup_day(carrier) if carrier else utcnow().date()
    try:
        shipment = services.create_shipment(db, principal=current_principal(), order_ids=order_ids, carrier=code,
                                            pickup_date=pickup)
    except PortalError as exc:
        _flash_error(exc)
        return redirect(desk)
    flash(ngettext("Shipment %(number)s created with %(num)d order.",
                   "Shipment %(number)s created with %(num)d orders.", len(order_ids), number=shipment.number),
          "success")
    return _back(shipment)


# --- one shipment ------------------------------------------------------------------------------------------------


@bp.get("/<int:shipment_id>")
@roles_required(*READERS)
def show(shipment_id: int):
    shipment = get_or_404(Shipment, shipment_id)
    events = _history(shipment)
    editable = shipment.status in EDITABLE_STATES and current_user.is_merchant_user
    packages_of: dict[int, int] = {}
    for package in shipment.packages:
        packages_of[package.order_id] = packages_of.get(package.order_id, 0) + 1
    return render_template(
        "shipping/show.html", shipment=shipment, events=events, editable=editable,
        merchant=db.get(Merchant, shipment.merchant_id),
        problems=services.problems(shipment) if shipment.status in OPEN_STATES else [],
        cutoff=cutoff_on(shipment.carrier, shipment.pickup_date) if shipment.status in OPEN_STATES else None,
        actions=_actions(shipment), packages_of=packages_of, free_orders=_free_orders() if editable else [],
        actors=emails_by_id(db, (e.actor_user_id for e in events)),
        tokens=_token_names({e.actor_token_id for e in events if e.actor_token_id}),
        tracking_link=tracking_link, contents=_contents,
        action_form=ActionForm(), split_form=SplitForm(),
    )


@bp.post("/<int:shipment_id>/orders")
@roles_required(*MERCHANT)
def add_orders(shipment_id: int):
    shipment = get_or_404(Shipment, shipment_id)
    if not _checked(ActionForm()):
        return _back(shipment)
    order_ids = _ids()
    if not order_ids:
        flash(gettext("Tick the accepted orders to add first."), "warning")
        return _back(shipment)
    try:
        services.add_orders(db, shipment.id, order_ids, principal=current_principal())
    except PortalError as exc:
        _flash_error(exc)
    else:
        flash(ngettext("%(num)d order added to the shipment.", "%(num)d orders added to the shipment.",
                       len(order_ids)), "success")
    return _back(shipment)


@bp.post("/<int:shipment_id>/orders/<int:order_id>/remove")
@roles_required(*MERCHANT)
def remove_order(shipment_id: int, order_id: int):
    shipment = get_or_404(Shipment, shipment_id)
    if not _checked(ActionForm()):
        return _back(shipment)
    member = next((m for m in shipment.orders if m.order_id == order_id), None)
    if member is None:  # taken out already (a second click), or never in it
        flash(gettext("That order is not in the shipment; nothing was changed."), "warning")
        return _back(shipment)
    number = member.order.order_number
    try:
        services.remove_order(db, shipment.id, order_id, principal=current_principal())
    except PortalError as exc:
        _flash_error(exc)
    else:
        flash(gettext("The order %(number)s was taken out of the shipment.", number=number), "success")
    return _back(shipment)


@bp.post("/<int:shipment_id>/packages/<int:package_id>")
@roles_required(*MERCHANT)
def update_package(shipment_id: int, package_id: int):
    """Weight, sides and tracking number; the same values posted twice change nothing more."""
    shipment = get_or_404(Shipment, shipment_id)
    package = _package_of(shipment, package_id)
    if package is None:
        return _back(shipment)
    form = PackageForm()
    if not form.validate_on_submit():
        for name, errors in form.errors.items():
            if name in PACKAGE_FIELDS:
                flash(gettext("%(package)s, %(field)s: %(message)s", package=package.code,
                              field=PACKAGE_FIELDS[name], message=" ".join(str(e) for e in errors)), "danger")
                break
        else:
            flash(gettext("The form was not valid; nothing was changed."), "danger")
        return _back(shipment)
    code = package.code
    try:
        services.update_package(db, package.id, principal=current_principal(), weight_grams=form.weight_grams.data,
                                length_mm=form.length_mm.data, width_mm=form.width_mm.data,
                                height_mm=form.height_mm.data,
                                # An emptied box clears the number; a form without the box leaves it as it is.
                                tracking_number=(form.tracking_number.data or "") if "tracking_number" in request.form
                                else None)
    except PortalError as exc:
        _flash_error(exc, package)
    else:
        flash(gettext("The package %(code)s was saved.", code=code), "success")
    return _back(shipment)


@bp.post("/<int:shipment_id>/packages/<int:package_id>/split")
@roles_required(*MERCHANT)
def split_package(shipment_id: int, package_id: int):
    shipment = get_or_404(Shipment, shipment_id)
    package = _package_of(shipment, package_id)
    form = SplitForm()
    if package is None or not _checked(form):
        return _back(shipment)
    if form.contents.data and form.contents.data != _contents(package):
        # The button clicked twice, or the package changed in another tab: moving again would move more.
        flash(gettext("The package %(code)s has changed since the page was shown; nothing was moved.",
                      code=package.code), "warning")
        return _back(shipment)
    quantities: dict[int, int] = {}
    for key, value in request.form.items():
        if not key.startswith("move-") or not value.strip():
            continue
        line_id, units = key.removeprefix("move-"), value.strip()
        if not (line_id.isdecimal() and line_id.isascii() and units.isdecimal() and units.isascii()):
            flash(gettext("%(package)s: say how many units to move as whole numbers.", package=package.code), "danger")
            return _back(shipment)
        quantities[int(line_id)] = int(units)
    code = package.code
    try:
        new = services.split_package(db, package.id, quantities, principal=current_principal())
    except PortalError as exc:
        _flash_error(exc)
    else:
        flash(gettext("The package %(code)s was split; the new package is %(new)s.", code=code, new=new.code),
              "success")
    return _back(shipment)


@bp.post("/<int:shipment_id>/packages/<int:package_id>/merge")
@roles_required(*MERCHANT)
def merge_package(shipment_id: int, package_id: int):
    """Merge back: the package's contents go into another package of its order."""
    shipment = get_or_404(Shipment, shipment_id)
    package = _package_of(shipment, package_id)
    if package is None or not _checked(ActionForm()):
        return _back(shipment)
    code = package.code
    try:
        services.remove_package(db, package.id, principal=current_principal())
    except PortalError as exc:
        _flash_error(exc)
    else:
        flash(gettext("The package %(code)s was merged back into its order's other package.", code=code), "success")
    return _back(shipment)


@bp.post("/<int:shipment_id>/<any(" + ", ".join(PAGE_TRANSITIONS) + "):transition>")
@roles_required(*READERS)
def transition(shipment_id: int, transition: str):
    """A button of the state machine; the same button clicked twice does it once and says so."""
    shipment = get_or_404(Shipment, shipment_id)
    if not _checked(ActionForm()):
        return _back(shipment)
    number = shipment.number
    try:
        if transition == "handover":  # a draft goes ready and out in one click
            done = services.hand_over(db, shipment.id, principal=current_principal())
        else:
            done = services.fire(db, shipment.id, transition, principal=current_principal())
    except IllegalShipmentTransition as exc:
        db.refresh(shipment)
        if shipment.status == TRANSITIONS[transition].target:
            flash(gettext("This was already done; nothing more was changed."), "info")
        else:
            _flash_error(exc)
    except PortalError as exc:
        _flash_error(exc)
    else:
        flash(gettext("Shipment %(number)s is now %(status)s.", number=number,
                      status=STATE_LABELS[done.status]), "success")
    return _back(shipment)


@bp.post("/<int:shipment_id>/delete")
@roles_required(*MERCHANT)
def delete(shipment_id: int):
    shipment = get_or_404(Shipment, shipment_id)
    if not _checked(ActionForm()):
        return _back(shipment)
    number = shipment.number
    try:
        services.delete_draft(db, shipment.id, principal=current_principal())
    except PortalError as exc:
        _flash_error(exc)
        return _back(shipment)
    flash(gettext("Shipment %(number)s was deleted; its orders can go in another shipment.", number=number), "success")
    return redirect(url_for("shipping.index"))


@bp.get("/<int:shipment_id>/documents/<any(labels, 'packing-slips', 'handover-act'):name>.pdf")
@roles_required(*READERS)
def document(shipment_id: int, name: str):
    """A document of the shipment as a PDF attachment, in the user's language."""
    shipment = get_or_404(Shipment, shipment_id)
    problem = paperwork.not_printable(shipment, name)
    if problem:
        flash(problem, "warning")
        return _back(shipment)
    pdf = paperwork.render(db, shipment, name, str(get_locale() or "en"))
    return Response(pdf, mimetype="application/pdf", headers={
        "Content-Disposition": f'attachment; filename="{shipment.number}-{name}.pdf"'})
