"""The KPI page's report buttons: a report of one merchant and a period, built by a background job."""
from __future__ import annotations

from urllib.parse import urlsplit

from flask import abort, flash, redirect, request, url_for
from flask_babel import get_locale, gettext

from portal.auth import roles_required, safe_next
from portal.db import session as db
from portal.jobs.services import enqueue
from portal.kpi import reports  # registers the kpi.report job
from portal.kpi.report_forms import ReportForm
from portal.kpi.views import bp
from portal.tenancy import current_principal

READERS = ("merchant_admin", "merchant_staff", "category_manager", "operator_admin")


def _back() -> str:
    """The page the buttons were on (this site's only), else the KPI page."""
    referrer = urlsplit(request.referrer or "")
    target = referrer.path + (f"?{referrer.query}" if referrer.query else "")
    same_site = not referrer.netloc or referrer.netloc == request.host
    return safe_next(target if same_site else None, url_for("kpi.index"))


@bp.post("/reports", endpoint="report")
@roles_required(*READERS)
def report():
    form = ReportForm()
    if not form.validate_on_submit():
        for name, errors in form.errors.items():
            label = form[name].label.text if name in form else name
            flash(gettext("%(field)s: %(error)s", field=label, error=errors[0]), "danger")
            break
        return redirect(_back())
    principal = current_principal()
    if form.kind.data not in reports.kinds_for(principal.role):
        # Category managers see no orders anywhere in the portal: not through a report either.
        abort(403)
    try:
        merchant_id = reports.report_merchant(db, principal, form.merchant.data)
        period = reports.check_period(form.days.data, form.date_from.data, form.date_to.data,
                                      names=(str(form.days.label.text), str(form.date_from.label.text),
                                             str(form.date_to.label.text)))
    except reports.ReportError as exc:
        flash(exc.message, "danger")
        return redirect(_back())
    job = enqueue("kpi.report", {"kind": form.kind.data, "format": form.format.data, "merchant_id": merchant_id,
                                 "period": period, "role": principal.role, "locale": str(get_locale() or "en")},
                  merchant_id=principal.merchant_id, user_id=principal.user_id)
    return redirect(url_for("jobs.show", job_id=job.id))


# The report card offers each role the kinds it may ask for.
bp.add_app_template_global(reports.kinds_for, "report_kinds")
