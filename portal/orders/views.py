"""The order desk: the list with filters, bulk accept and refuse, the order page with its history, exports."""
from __future__ import annotations

import uuid
from urllib.parse import parse_qsl

from flask import Blueprint, flash, redirect, render_template, request, url_for
from flask_babel import get_locale, gettext, ngettext
from flask_login import current_user
from werkzeug.datastructures import MultiDict
from wtforms import SelectChoice

from portal.accounts.models import Merchant
from portal.accounts.queries import emails_by_id, merchant_names_by_id
from portal.auth import roles_required
from portal.db import session as db
from portal.errors import PortalError
from portal.jobs.services import enqueue
from portal.orders import services
from portal.orders.forms import BulkForm, ExportForm, TransitionForm
from portal.orders.machine import PUBLIC_TRANSITIONS, STATES, available_to
from portal.orders.models import Order
from portal.orders.queries import OrderFilters, at_risk_hours, desk_counts, history, merchant_choices
from portal.orders.queries import orders as orders_query
from portal.pagination import paginate
from portal.shipping.carriers import active_carriers, carrier_by_code, describe_patterns, tracking_link
from portal.shipping.views import carrier_choices
from portal.tenancy import current_principal, get_or_404

bp = Blueprint("orders", __name__, url_prefix="/orders", template_folder="templates")

MERCHANT = ("merchant_admin", "merchant_staff")
# Buyers' addresses are for the owning merchant and the marketplace's operators: category managers have no desk.
READERS = (*MERCHANT, "operator_admin")


@bp.get("")
@roles_required(*READERS)
def index():
    filters = OrderFilters.from_args(request.args)
    principal = current_principal()
    page = paginate(db, orders_query(filters, principal, db=db), request.args.get("page", 1, type=int), per_page=50)
    merchants = merchant_names_by_id(db, (o.merchant_id for o in page.items)) if current_user.is_staff else {}
    all_merchants = merchant_choices(db) if current_user.is_staff else []
    return render_template(
        "orders/index.html", page=page, filters=filters, states=STATES, merchants=merchants,
        all_merchants=all_merchants, counts=desk_counts(db, principal, filters.merchant_id),
        bulk_form=BulkForm(), export_form=ExportForm(), at_risk_hours=at_risk_hours(),
        # "Create shipment" from the ticked accepted orders: the active carriers with their next pickup day.
        shipment_carriers=carrier_choices() if current_user.is_merchant_user else [],
    )


@bp.post("/bulk")
@roles_required(*MERCHANT)
def bulk():
    form = BulkForm()
    # Back to the list as it was filtered: rebuilt from the filters, never a URL taken from the form.
    target = url_for("orders.index", **OrderFilters.from_args(MultiDict(parse_qsl(request.form.get("back", "")))).as_args())
    if not form.validate_on_submit():
        flash(gettext("Choose accept or refuse."), "danger")
        return redirect(target)
    ids = [int(v) for v in request.form.getlist("order_id") if v.isdecimal() and v.isascii()][:500]
    if not ids:
        flash(gettext("Tick the orders first."), "warning")
        return redirect(target)
    if form.action.data == "refuse" and not (form.reason.data or "").strip():
        flash(gettext("Say why the orders are refused: a reason is required."), "danger")
        return redirect(target)
    # A reason typed in the box belongs to a refusal; an accept clicked beside it does not carry it into the history.
    reason = form.reason.data if form.action.data == "refuse" else None
    result = services.apply_bulk(db, ids, form.action.data, principal=current_principal(), reason=reason)
    if result.done:
        message = (ngettext("%(num)d order accepted.", "%(num)d orders accepted.", len(result.done))
                   if form.action.data == "accept" else
                   ngettext("%(num)d order refused.", "%(num)d orders refused.", len(result.done)))
        flash(message, "success")
    for number, why in result.failed:
        flash(gettext("%(number)s: %(why)s", number=number, why=why), "danger")
    return redirect(target)


@bp.get("/<int:order_id>")
@roles_required(*READERS)
def show(order_id: int):
    order = get_or_404(Order, order_id)
    events = history(db, order)
    actors = emails_by_id(db, (e.actor_user_id for e in events))
    merchant = db.get(Merchant, order.merchant_id)
    actions = available_to(order, services.actor_kind(current_principal()))
    form = TransitionForm(idempotency_key=uuid.uuid4().hex)
    carriers = active_carriers(db) if any(action.tracking for action in actions) else []
    form.carrier.choices = [SelectChoice("", gettext("— choose the carrier —"))] + [
        SelectChoice(c.code, c.name) for c in carriers]
    # Orders shipped before carriers were configured data hold a free-text name: shown as it is.
    carrier = carrier_by_code(db, order.carrier) if order.carrier else None
    return render_template("orders/show.html", order=order, events=events, actors=actors, merchant=merchant,
                           actions=actions, form=form, carriers=carriers, carrier=carrier,
                           tracking_url=tracking_link(carrier, order.tracking_number) if carrier else None,
                           describe_patterns=describe_patterns)


@bp.post("/<int:order_id>/<any(" + ", ".join(PUBLIC_TRANSITIONS) + "):transition>")
@roles_required(*READERS)
def transition(order_id: int, transition: str):
    order = get_or_404(Order, order_id)
    form = TransitionForm()
    if not form.validate_on_submit():
        flash(gettext("The form was not valid; nothing was changed."), "danger")
        return redirect(url_for("orders.show", order_id=order.id))
    try:
        applied = services.apply_transition(db, order.id, transition, principal=current_principal(),
                                            reason=form.reason.data, carrier=form.carrier.data,
                                            tracking_number=form.tracking_number.data,
                                            idempotency_key=form.idempotency_key.data or None)
    except PortalError as exc:
        flash(exc.message, "danger")
    else:
        if applied.repeated:
            flash(gettext("This was already done; nothing more was changed."), "info")
        else:
            flash(gettext("Order %(number)s is now %(status)s.", number=applied.order.order_number,
                          status=services.STATE_LABELS[applied.order.status]), "success")
    return redirect(url_for("orders.show", order_id=order.id))


@bp.post("/export")
@roles_required(*READERS)
def export():
    form = ExportForm()
    if not form.validate_on_submit():
        flash(gettext("Choose CSV or XLSX."), "danger")
        return redirect(url_for("orders.index"))
    filters = OrderFilters.from_args(request.form)
    principal = current_principal()
    job = enqueue("orders.export", {"filters": filters.as_args(), "format": form.format.data, "role": principal.role,
                                    "locale": str(get_locale() or "en")},
                  merchant_id=principal.merchant_id, user_id=principal.user_id)
    return redirect(url_for("jobs.show", job_id=job.id))
