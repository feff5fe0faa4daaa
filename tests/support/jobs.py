"""Jobs used by the tests; a Celery worker started by the tests imports this module too."""
from __future__ import annotations

from typing import Any

from portal.jobs.services import JobContext, job


@job("tests.count")
def count(ctx: JobContext) -> dict[str, Any]:
    total = int(ctx.payload.get("total", 5))
    for done in range(1, total + 1):
        ctx.progress(done, total, force=True)
    return {"counted": total}


@job("tests.crash")
def crash(ctx: JobContext) -> dict[str, Any]:
    ctx.progress(1, 3, force=True)
    raise ValueError("the input was not what the job expected")
