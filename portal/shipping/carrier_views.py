"""The operators' carrier pages: the list, a new carrier, editing one, loading the default set."""
from __future__ import annotations

from typing import Any

from flask import Blueprint, abort, flash, redirect, render_template, url_for
from flask_babel import gettext

from portal.accounts.forms import ActionForm
from portal.auth import roles_required
from portal.db import session as db
from portal.shipping import carrier_services as services
from portal.shipping.carrier_forms import CarrierForm, NewCarrierForm, weekday_names
from portal.shipping.carrier_services import CarrierError, CarrierValues
from portal.shipping.carriers import describe_patterns
from portal.shipping.models import Carrier
from portal.tenancy import current_principal

carriers_bp = Blueprint("carriers", __name__, url_prefix="/admin/carriers", template_folder="templates")

# Carriers are the marketplace's configuration, not any merchant's data: operators only.
OPERATOR = ("operator_admin",)


def _render_form(form: CarrierForm, carrier: Carrier | None = None, status: int = 200) -> Any:
    return render_template("shipping/carriers/form.html", form=form, carrier=carrier), status


def _show_error(form: CarrierForm, error: CarrierError) -> None:
    """The service's verdict beside the field it is about (or at the top when no field is named)."""
    name = (error.details or {}).get("field")
    if name in form:
        form[name].errors = [*form[name].errors, error.message]
    else:
        flash(error.message, "danger")


@carriers_bp.get("")
@roles_required(*OPERATOR)
def index():
    return render_template("shipping/carriers/index.html", carriers=services.list_carriers(db),
                           action_form=ActionForm(), weekdays=weekday_names(), describe_patterns=describe_patterns)


@carriers_bp.route("/new", methods=["GET", "POST"])
@roles_required(*OPERATOR)
def create():
    defaults = CarrierValues(name="", pickup_days=[0, 1, 2, 3, 4])
    form = NewCarrierForm(data={**defaults.__dict__, "tracking_patterns": ""})
    if not form.validate_on_submit():
        return _render_form(form, status=422 if form.is_submitted() else 200)
    try:
        carrier = services.create_carrier(db, form.code.data or "", form.values(), actor=current_principal())
    except CarrierError as exc:
        _show_error(form, exc)
        return _render_form(form, status=422)
    flash(gettext("Carrier %(name)s (%(code)s) added.", name=carrier.name, code=carrier.code), "success")
    return redirect(url_for("carriers.index"))


@carriers_bp.route("/<int:carrier_id>/edit", methods=["GET", "POST"])
@roles_required(*OPERATOR)
def edit(carrier_id: int):
    carrier = db.get(Carrier, carrier_id) or abort(404)
    form = CarrierForm.of(carrier)
    if not form.validate_on_submit():
        return _render_form(form, carrier, status=422 if form.is_submitted() else 200)
    try:
        changes = services.update_carrier(db, carrier, form.values(), actor=current_principal())
    except CarrierError as exc:
        db.rollback()
        _show_error(form, exc)
        return _render_form(form, carrier, status=422)
    if changes:
        flash(gettext("Carrier %(name)s saved.", name=carrier.name), "success")
    else:
        flash(gettext("Nothing was changed."), "info")
    return redirect(url_for("carriers.index"))


@carriers_bp.post("/load-defaults")
@roles_required(*OPERATOR)
def load_defaults():
    if not ActionForm().validate_on_submit():
        abort(400)
    added = services.load_defaults(db, actor=current_principal())
    if added:
        flash(gettext("Default carriers added: %(codes)s.", codes=", ".join(added)), "success")
    else:
        flash(gettext("Every default carrier is already there; nothing was added."), "info")
    return redirect(url_for("carriers.index"))
