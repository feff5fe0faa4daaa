"""The audit log as a CSV download, built by a background job."""
from __future__ import annotations

import csv
import io
import json
import tempfile
from typing import Any

from flask_babel import lazy_gettext as _l
from sqlalchemy import func, select

from portal.accounts.models import User
from portal.audit import AuditEvent
from portal.jobs.services import JobContext, job
from portal.reports import safe_cell
from portal.storage_access import get_storage
from portal.tenancy import Principal, scope

COLUMNS = ["id", "at", "action", "actor_email", "actor_token_id", "merchant_id", "target_type", "target_id", "ip", "details"]
BATCH = 1000


@job("audit.export", label=_l("Audit log export"))
def export_audit_log(ctx: JobContext) -> dict[str, Any]:
    principal = Principal(role=ctx.payload.get("role", ""), merchant_id=ctx.merchant_id, user_id=ctx.user_id)
    db = ctx.session
    total = db.scalar(scope(select(func.count(AuditEvent.id)), AuditEvent, principal)) or 0
    ctx.progress(0, total, force=True)
    stmt = scope(
        select(AuditEvent, User.email).outerjoin(User, User.id == AuditEvent.actor_user_id),
        AuditEvent,
        principal,
    ).order_by(AuditEvent.id)
    rows = 0
    # Spooled: small exports stay in memory, large ones go to disk, never all of it in memory.
    with tempfile.SpooledTemporaryFile(max_size=8 * 1024 * 1024) as buffer:
        text = io.TextIOWrapper(buffer, encoding="utf-8-sig", newline="")
        writer = csv.writer(text)
        writer.writerow(COLUMNS)
        for event, email in db.execute(stmt.execution_options(yield_per=BATCH)):
            writer.writerow([safe_cell(v) for v in (
                event.id, event.at.isoformat(), event.action, email, event.actor_token_id, event.merchant_id,
                event.target_type, event.target_id, event.ip, json.dumps(event.details, ensure_ascii=False),
            )])
            rows += 1
            if rows % BATCH == 0:
                ctx.progress(rows, total)
        text.flush()
        buffer.seek(0)
        key = f"exports/audit/{ctx.job_id}.csv"
        get_storage().put(key, buffer, content_type="text/csv")
        text.detach()
    return {"storage_key": key, "filename": "audit-log.csv", "content_type": "text/csv", "rows": rows}
