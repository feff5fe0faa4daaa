"""Core API routes: who am I, and job status."""
from __future__ import annotations

from flask.views import MethodView

from portal.accounts.models import Merchant
from portal.api import api_blueprint
from portal.api.schemas import JobSchema, MeSchema
from portal.db import session as db
from portal.extensions import ErrorSchema
from portal.jobs.models import Job
from portal.jobs.services import get_runner
from portal.tenancy import current_principal, get_or_404

blp = api_blueprint("api_core", __name__, description="Token identity and background jobs")


@blp.route("/me")
class Me(MethodView):
    @blp.response(200, MeSchema)
    def get(self):
        """The token's identity: an operator token, or the merchant it is confined to."""
        principal = current_principal()
        merchant = db.get(Merchant, principal.merchant_id) if principal.merchant_id else None
        return {
            "kind": "merchant" if merchant else "operator",
            "token_id": principal.token_id,
            "merchant": merchant.slug if merchant else None,
        }


@blp.route("/jobs/<job_id>")
class JobStatus(MethodView):
    @blp.response(200, JobSchema)
    @blp.alt_response(404, schema=ErrorSchema, description="No such job, or another merchant's")
    def get(self, job_id: str):
        """Status, progress, result or error of a background job of the token's merchant."""
        return get_runner().progress_of(get_or_404(Job, job_id))
