"""Pages for sign-in, language, users, API tokens, merchants and the audit log."""
from __future__ import annotations

from datetime import timedelta

from flask import Blueprint, current_app, flash, redirect, render_template, request, session, url_for
from flask_babel import gettext
from flask_login import current_user, login_required, login_user, logout_user
from wtforms import SelectChoice

from portal.accounts import services
from portal.accounts.exceptions import AccountError, LoginFailed
from portal.accounts.forms import (
    AcceptInviteForm,
    ActionForm,
    InviteForm,
    LanguageForm,
    LoginForm,
    MerchantForm,
    TokenForm,
    UserForm,
)
from portal.accounts.models import ApiToken, Merchant, User
from portal.accounts.queries import emails_by_id, merchants_by_name
from portal.audit import AuditEvent
from portal.auth import ROLE_LABELS, roles_required, safe_next
from portal.db import session as db
from portal.db import utcnow
from portal.extensions import limiter
from portal.jobs.services import enqueue
from portal.pagination import paginate
from portal.tenancy import current_principal, get_or_404, scoped_select

bp = Blueprint("accounts", __name__)
admin_bp = Blueprint("admin", __name__, url_prefix="/admin")

MANAGERS = ("merchant_admin", "operator_admin")


def _login_rate_limit() -> str:
    return current_app.config["LOGIN_RATE_LIMIT"]


@bp.route("/login", methods=["GET", "POST"])
@limiter.limit(_login_rate_limit, methods=["POST"])
def login():
    if current_user.is_authenticated:
        return redirect(url_for("home.index"))
    form = LoginForm()
    status = 200
    if form.validate_on_submit():
        try:
            user = services.authenticate(db, form.email.data or "", form.password.data or "")
        except LoginFailed as exc:
            flash(exc.message, "danger")
            status = 401
        else:
            login_user(user)
            # A language chosen on the sign-in page is a choice: it becomes the user's.
            chosen = session.pop("locale", None)
            if chosen in current_app.config["LANGUAGES"] and chosen != user.locale:
                services.set_locale(db, user, chosen)
            return redirect(safe_next(request.args.get("next"), url_for("home.index")))
    return render_template("accounts/login.html", form=form), status


@bp.post("/logout")
@login_required
def logout():
    if ActionForm().validate_on_submit():
        services.record_logout(db, current_user)
        logout_user()
        flash(gettext("You have signed out."), "info")
    return redirect(url_for("accounts.login"))


@bp.post("/language")
def language():
    form = LanguageForm()
    target = safe_next(form.next.data, url_for("home.index"))
    if form.validate_on_submit() and form.lang.data in current_app.config["LANGUAGES"]:
        session["locale"] = form.lang.data
        if current_user.is_authenticated:
            services.set_locale(db, current_user, form.lang.data)
    return redirect(target)


@bp.route("/invite/<secret>", methods=["GET", "POST"])
def accept_invite(secret: str):
    try:
        invited = services.user_by_invite(db, secret)
    except AccountError as exc:
        return render_template("accounts/invite_invalid.html", message=exc.message), 404
    form = AcceptInviteForm()
    if form.validate_on_submit():
        try:
            user = services.accept_invite(db, secret, form.password.data or "")
        except AccountError as exc:
            flash(exc.message, "danger")
        else:
            login_user(user)
            flash(gettext("Welcome! Your password is set."), "success")
            return redirect(url_for("home.index"))
    return render_template("accounts/accept_invite.html", form=form, invited=invited)


# -- users -------------------------------------------------------------------------------------


def _user_form() -> UserForm:
    form = UserForm()
    form.role.choices = [SelectChoice(role, label) for role, label in ROLE_LABELS.items()]
    merchants = db.scalars(merchants_by_name())
    form.merchant_id.choices = [SelectChoice(0, gettext("— none (marketplace staff) —"))] + [
        SelectChoice(m.id, m.name) for m in merchants
    ]
    return form


@bp.get("/users")
@roles_required(*MANAGERS)
def users():
    page = paginate(db, scoped_select(User).order_by(User.email), request.args.get("page", 1, type=int))
    return render_template(
        "accounts/users.html",
        page=page,
        invite_form=InviteForm(),
        user_form=_user_form() if current_user.role == "operator_admin" else None,
        action_form=ActionForm(),
    )


@bp.post("/users/invite")
@roles_required("merchant_admin")
def invite():
    form = InviteForm()
    if not form.validate_on_submit():
        flash(gettext("Check the invitation form: %(errors)s", errors=_form_errors(form)), "danger")
        return redirect(url_for("accounts.users"))
    try:
        user, secret = services.invite_user(
            db, actor=current_principal(), email=form.email.data or "", role=form.role.data, full_name=form.full_name.data or ""
        )
    except AccountError as exc:
        flash(exc.message, "danger")
        return redirect(url_for("accounts.users"))
    link = url_for("accounts.accept_invite", secret=secret, _external=True)
    # The link is shown once, in this answer only: it is as good as a password until used.
    return render_template("accounts/invite_created.html", invited=user, link=link)


@bp.post("/users")
@roles_required("operator_admin")
def create_user():
    form = _user_form()
    if not form.validate_on_submit():
        flash(gettext("Check the user form: %(errors)s", errors=_form_errors(form)), "danger")
        return redirect(url_for("accounts.users"))
    merchant = db.get(Merchant, form.merchant_id.data) if form.merchant_id.data else None
    try:
        user = services.create_user(
            db,
            email=form.email.data or "",
            password=form.password.data or "",
            role=form.role.data,
            merchant=merchant,
            full_name=form.full_name.data or "",
            actor=current_principal(),
        )
    except AccountError as exc:
        flash(exc.message, "danger")
    else:
        flash(gettext("User %(email)s created.", email=user.email), "success")
    return redirect(url_for("accounts.users"))


@bp.post("/users/<int:user_id>/<any(deactivate, reactivate):action>")
@roles_required(*MANAGERS)
def set_user_active(user_id: int, action: str):
    user = get_or_404(User, user_id)
    if ActionForm().validate_on_submit():
        try:
            services.set_user_active(db, user, action == "reactivate", actor=current_principal())
        except AccountError as exc:
            flash(exc.message, "danger")
        else:
            message = gettext("%(email)s is active again.", email=user.email) if action == "reactivate" else gettext(
                "%(email)s is deactivated and can no longer sign in.", email=user.email
            )
            flash(message, "success")
    return redirect(url_for("accounts.users"))


# -- API tokens --------------------------------------------------------------------------------


def _token_merchant_choices() -> list[tuple[int, str]]:
    merchants = db.scalars(merchants_by_name())
    return [(0, gettext("Operator token (all merchants)"))] + [(m.id, m.name) for m in merchants]


@bp.get("/tokens")
@roles_required(*MANAGERS)
def tokens():
    stmt = scoped_select(ApiToken).order_by(ApiToken.revoked_at.is_not(None), ApiToken.created_at.desc())
    page = paginate(db, stmt, request.args.get("page", 1, type=int))
    merchant_choices = _token_merchant_choices() if current_user.role == "operator_admin" else None
    return render_template(
        "accounts/tokens.html", page=page, form=TokenForm(), merchant_choices=merchant_choices,
        action_form=ActionForm(), now=utcnow(),
    )


@bp.post("/tokens")
@roles_required(*MANAGERS)
def create_token():
    form = TokenForm()
    if not form.validate_on_submit():
        flash(gettext("Check the token form: %(errors)s", errors=_form_errors(form)), "danger")
        return redirect(url_for("accounts.tokens"))
    actor = current_principal()
    if actor.merchant_id is not None:
        merchant = db.get(Merchant, actor.merchant_id)
    else:
        merchant_id = request.form.get("merchant_id", 0, type=int)
        merchant = db.get(Merchant, merchant_id) if merchant_id else None
    expires_at = utcnow() + timedelta(days=form.expires_in_days.data) if form.expires_in_days.data else None
    token, secret = services.create_token(db, name=form.name.data or "", merchant=merchant, actor=actor, expires_at=expires_at)
    # Shown in this answer only, never put in the session or a flash message.
    return render_template("accounts/token_created.html", token=token, secret=secret)


@bp.post("/tokens/<int:token_id>/revoke")
@roles_required(*MANAGERS)
def revoke_token(token_id: int):
    token = get_or_404(ApiToken, token_id)
    if ActionForm().validate_on_submit():
        services.revoke_token(db, token, actor=current_principal())
        flash(gettext("The token %(name)s is revoked.", name=token.name), "success")
    return redirect(url_for("accounts.tokens"))


# -- audit log ---------------------------------------------------------------------------------


@bp.get("/audit")
@roles_required(*MANAGERS)
def audit_log():
    stmt = scoped_select(AuditEvent).order_by(AuditEvent.at.desc(), AuditEvent.id.desc())
    action = request.args.get("action", "").strip()
    if action:
        stmt = stmt.where(AuditEvent.action.startswith(action))
    page = paginate(db, stmt, request.args.get("page", 1, type=int))
    emails = emails_by_id(db, (e.actor_user_id for e in page.items))
    return render_template("accounts/audit.html", page=page, action=action, emails=emails, action_form=ActionForm())


# -- merchants (marketplace staff) ---------------------------------------------------------------


@admin_bp.get("/merchants")
@roles_required("operator_admin", "category_manager")
def merchants():
    page = paginate(db, merchants_by_name(), request.args.get("page", 1, type=int))
    form = MerchantForm() if current_user.role == "operator_admin" else None
    return render_template("accounts/merchants.html", page=page, form=form)


@admin_bp.post("/merchants")
@roles_required("operator_admin")
def create_merchant():
    form = MerchantForm()
    if form.validate_on_submit():
        try:
            merchant = services.create_merchant(db, slug=form.slug.data or "", name=form.name.data or "", actor=current_principal())
        except AccountError as exc:
            flash(exc.message, "danger")
        else:
            flash(gettext("Merchant %(name)s created.", name=merchant.name), "success")
    else:
        flash(gettext("Check the merchant form: %(errors)s", errors=_form_errors(form)), "danger")
    return redirect(url_for("admin.merchants"))


def _form_errors(form) -> str:
    return "; ".join(f"{form[name].label.text}: {' '.join(errs)}" for name, errs in form.errors.items() if name in form)


@bp.post("/audit/export")
@roles_required(*MANAGERS)
def export_audit():
    if not ActionForm().validate_on_submit():
        return redirect(url_for("accounts.audit_log"))
    actor = current_principal()
    record = enqueue("audit.export", {"role": actor.role}, merchant_id=actor.merchant_id, user_id=actor.user_id)
    return redirect(url_for("jobs.show", job_id=record.id))
