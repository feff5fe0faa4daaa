"""Job pages: a progress page, its JSON status for the progress bar, and result downloads."""
from __future__ import annotations

from flask import Blueprint, abort, jsonify, render_template
from flask_login import current_user, login_required

from portal.jobs.models import Job
from portal.jobs.services import get_runner
from portal.storage_access import send_stored
from portal.tenancy import get_or_404

bp = Blueprint("jobs", __name__, url_prefix="/jobs")


@bp.get("/<job_id>")
@login_required
def show(job_id: str):
    return render_template("jobs/show.html", job=get_or_404(Job, job_id))


@bp.get("/<job_id>/status")
@login_required
def status(job_id: str):
    return jsonify(get_runner().progress_of(get_or_404(Job, job_id)))


@bp.get("/<job_id>/download")
@login_required
def download(job_id: str):
    job = get_or_404(Job, job_id)
    # A result file (an order export holds buyers' addresses) is for whoever asked for it, not their colleagues.
    if job.created_by_id is not None and job.created_by_id != current_user.id:
        abort(404)
    result = job.result or {}
    key, filename = result.get("storage_key"), result.get("filename")
    if job.status != "succeeded" or not key or not filename:
        abort(404)
    return send_stored(key, filename, result.get("content_type", "application/octet-stream"))
