"""The KPI pages: a merchant's health and trends, staff's ranking and drill-down, operators' thresholds."""
from __future__ import annotations

from typing import Any

from flask import Blueprint, current_app, redirect, render_template, request, url_for
from flask_login import current_user

from portal.accounts.models import Merchant
from portal.auth import roles_required
from portal.db import session as db
from portal.db import utcnow
from portal.kpi import pages
from portal.kpi.metrics import AMBER, GREEN, NO_DATA, NONE, RED, STATUS_LABELS
from portal.tenancy import current_principal, get_or_404

bp = Blueprint("kpi", __name__, url_prefix="/kpi")

MERCHANT = ("merchant_admin", "merchant_staff")
STAFF = ("category_manager", "operator_admin")
# Bootstrap's colour of each status badge.
STATUS_COLOURS = {GREEN: "success", AMBER: "warning", RED: "danger", NO_DATA: "secondary", NONE: "light"}


@bp.app_template_global()
def kpi_status_label(status: str) -> Any:
    return STATUS_LABELS.get(status, status)


@bp.app_template_global()
def kpi_status_colour(status: str) -> str:
    return STATUS_COLOURS.get(status, "secondary")


@bp.get("/")
@roles_required(*MERCHANT, *STAFF)
def index():
    if current_user.is_staff:
        # Staff compare merchants: the ranking is their KPI page, each merchant's own page a click away.
        return redirect(_ranking_url() or url_for("home.index"))
    return _page(current_user.merchant_id, merchant=None)


@bp.get("/merchants/<int:merchant_id>")
@roles_required(*STAFF)
def merchant(merchant_id: int):
    return _page(merchant_id, merchant=get_or_404(Merchant, merchant_id))


def _page(merchant_id: int, merchant: Merchant | None):
    """The same page for a merchant's own people (``merchant`` None) and for staff about one merchant."""
    now = utcnow()
    choice = pages.PeriodChoice.from_args(request.args, now.date())
    page = pages.build(db, current_principal(), merchant_id, choice, own=merchant is None, now=now)
    period_args = choice.args() | ({"merchant": merchant.id} if merchant is not None else {})
    # The period selector's links: to this same page, for this same merchant.
    endpoint, base = ("kpi.merchant", {"merchant_id": merchant.id}) if merchant is not None else ("kpi.index", {})
    return render_template("kpi/index.html", page=page, merchant=merchant, period_args=period_args,
                           endpoint=endpoint, base_args=base, day_choices=pages.DAY_CHOICES,
                           orders_readable=current_user.role in (*MERCHANT, "operator_admin"),
                           ranking_url=_ranking_url() if merchant is not None else None)


def _ranking_url() -> str | None:
    """The staff ranking, once its page exists (``staff_views``)."""
    return url_for("kpi.ranking") if "kpi.ranking" in current_app.view_functions else None
