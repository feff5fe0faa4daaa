"""The operators' page of export runs: what ran, when, with what counts and errors; start one; fetch a manifest."""
from __future__ import annotations

import json
from typing import Any

from flask import Blueprint, Response, abort, flash, redirect, render_template, request, url_for
from flask_babel import gettext
from flask_babel import lazy_gettext as _l
from flask_login import current_user
from sqlalchemy import select

from portal.accounts.forms import ActionForm
from portal.audit import record
from portal.auth import roles_required
from portal.db import session as db
from portal.jobs.services import enqueue, job
from portal.pagination import paginate
from portal.pim_export import services
from portal.pim_export.models import RUN_KINDS, ExportRun
from portal.storage import StorageError, StorageKeyNotFound
from portal.tenancy import current_principal

bp = Blueprint("pim_export", __name__, url_prefix="/pim", template_folder="templates")

OPERATOR = ("operator_admin",)


@job("pim.export", label=_l("PIM export"))
def export_job(ctx: Any) -> dict[str, Any]:
    """A run started from the runs page (or by Celery beat): its record is the result."""
    run = services.run_export(ctx.session, ctx.payload["kind"], trigger=ctx.payload.get("trigger", "web"),
                              user_id=ctx.user_id)
    if run.status != "succeeded":
        raise services.ExportFailed(run.error or "failed")
    return run.summary()


@bp.get("/runs")
@roles_required(*OPERATOR)
def runs():
    page = paginate(db, select(ExportRun).order_by(ExportRun.id.desc()), request.args.get("page", 1, type=int),
                    per_page=50)
    return render_template("pim_export/runs.html", page=page, running=services.running(db),
                           last=services.latest_successful(db), ready=services.ready_count(db),
                           stale_before=services.stale_before(), action=ActionForm())


@bp.post("/runs/start")
@roles_required(*OPERATOR)
def start():
    kind = request.form.get("kind", "")
    if not ActionForm().validate_on_submit() or kind not in RUN_KINDS:
        abort(400)
    running = services.running(db)
    if running is not None and running.heartbeat_at >= services.stale_before():
        flash(gettext("Another export is running (%(run)s); wait for it to finish.", run=running.run_id), "danger")
        return redirect(url_for("pim_export.runs"))
    job_record = enqueue("pim.export", {"kind": kind, "trigger": "web"}, user_id=current_user.id)
    record(db, "pim.export_started", actor=current_principal(), details={"kind": kind, "job": job_record.id})
    db.commit()
    flash(gettext("The %(kind)s export has started; it appears below.", kind=kind_label(kind)), "success")
    return redirect(url_for("pim_export.runs"))


@bp.get("/runs/<int:run_id>")
@roles_required(*OPERATOR)
def show(run_id: int):
    run = db.get(ExportRun, run_id) or abort(404)
    files: list[dict[str, Any]] = []
    problem = None
    if run.manifest_key:
        try:
            files = json.loads(services.read_manifest(run)).get("files", [])
        except StorageKeyNotFound:
            problem = gettext("The manifest is no longer in the export storage.")
        except (StorageError, ValueError) as exc:
            problem = gettext("The manifest could not be read: %(error)s", error=str(exc))
    return render_template("pim_export/run.html", run=run, files=files, problem=problem)


@bp.get("/runs/<int:run_id>/manifest.json")
@roles_required(*OPERATOR)
def manifest(run_id: int):
    run = db.get(ExportRun, run_id) or abort(404)
    try:
        body = services.read_manifest(run)
    except StorageKeyNotFound:
        abort(404)
    except StorageError as exc:
        flash(gettext("The manifest could not be read: %(error)s", error=str(exc)), "danger")
        return redirect(url_for("pim_export.show", run_id=run.id))
    return Response(body, mimetype="application/json",
                    headers={"Content-Disposition": f'attachment; filename="manifest-{run.run_id}.json"'})


KIND_LABELS = {"full": _l("full"), "delta": _l("delta")}
STATUS_LABELS = {"running": _l("running"), "succeeded": _l("succeeded"), "failed": _l("failed")}
TRIGGER_LABELS = {"cli": _l("command line"), "web": _l("this page"), "schedule": _l("schedule")}


def kind_label(kind: str) -> str:
    return str(KIND_LABELS.get(kind, kind))


@bp.app_context_processor
def labels() -> dict[str, Any]:
    return {"pim_kind_label": kind_label, "pim_status_label": lambda status: STATUS_LABELS.get(status, status),
            "pim_trigger_label": lambda trigger: TRIGGER_LABELS.get(trigger, trigger)}
