"""The home page of each role, and /healthz."""
from __future__ import annotations

from flask import Blueprint, jsonify, redirect, render_template, url_for
from flask_login import current_user
from sqlalchemy import func, select, text

from portal.accounts.models import ApiToken, Merchant, User
from portal.audit import AuditEvent
from portal.db import session as db
from portal.jobs.models import Job
from portal.category_mapping.queries import merchant_summary
from portal.kpi.pages import home_health
from portal.orders.queries import at_risk_hours, desk_counts
from portal.shipping.queries import at_risk_orders, next_cutoffs
from portal.tenancy import current_principal, scope, scoped_select

bp = Blueprint("home", __name__)


@bp.get("/")
def index():
    if not current_user.is_authenticated:
        return redirect(url_for("accounts.login"))
    recent_jobs = db.scalars(scoped_select(Job).order_by(Job.created_at.desc()).limit(5)).all()
    figures = {
        "users": db.scalar(scope(select(func.count(User.id)), User)),
        "active_tokens": db.scalar(scope(select(func.count(ApiToken.id)).where(ApiToken.revoked_at.is_(None)), ApiToken)),
    }
    if current_user.is_staff:
        figures["merchants"] = db.scalar(select(func.count(Merchant.id)))
    recent_events = []
    if current_user.role in ("merchant_admin", "operator_admin"):
        recent_events = db.scalars(scoped_select(AuditEvent).order_by(AuditEvent.at.desc()).limit(8)).all()
    catalog = merchant_summary(db, current_principal()) if current_user.is_merchant_user else None
    orders = desk_counts(db, current_principal()) if current_user.is_merchant_user else None
    # Help against late shipment, at the top of a merchant's home: what may ship late, and the next cut-offs.
    shipping = {"at_risk": at_risk_orders(db, current_principal(), limit=10), "hours": at_risk_hours(),
                "cutoffs": next_cutoffs(db, current_principal())[:3]} if current_user.is_merchant_user else None
    # The account's health against the marketplace's thresholds: one computation of the figures.
    account_health = home_health(db, current_principal(), current_user.merchant_id) if current_user.is_merchant_user else None
    return render_template(
        f"home/{current_user.role}.html", figures=figures, recent_jobs=recent_jobs, recent_events=recent_events,
        catalog=catalog, orders=orders, shipping=shipping, account_health=account_health,
    )


@bp.get("/healthz")
def healthz():
    """200 when the database answers; load balancers and `make run`'s check poll it."""
    try:
        db.execute(text("SELECT 1"))
    except Exception as exc:  # any driver error means "not healthy", which is the answer
        return jsonify({"status": "error", "database": f"{type(exc).__name__}"}), 503
    return jsonify({"status": "ok", "database": "ok"})
