"""Background jobs: ``enqueue`` runs a registered job in-process (thread pool) or on Celery workers."""
from __future__ import annotations

import logging
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import Any

from flask import Flask, current_app
from flask_babel import gettext
from sqlalchemy import update
from sqlalchemy.orm import Session

from portal.db import get_database, get_session, utcnow
from portal.errors import PortalError
from portal.jobs.models import Job

log = logging.getLogger(__name__)

JobFunc = Callable[["JobContext"], dict[str, Any] | None]
_REGISTRY: dict[str, JobFunc] = {}
_LABELS: dict[str, Any] = {}


def job(kind: str, label: Any = None) -> Callable[[JobFunc], JobFunc]:
    """Register a job function under ``kind``; workers find it by that name, pages show ``label``."""

    def register(func: JobFunc) -> JobFunc:
        if kind in _REGISTRY and _REGISTRY[kind] is not func:
            raise ValueError(f"job kind {kind!r} is registered twice")
        _REGISTRY[kind] = func
        _LABELS[kind] = label or kind
        return func

    return register


def job_label(kind: str) -> Any:
    return _LABELS.get(kind, kind)


class UnknownJobKind(LookupError):
    pass


class JobDispatchError(PortalError):
    status = 503
    code = "jobs_unavailable"


@dataclass
class JobContext:
    """What a job function gets: its payload, its own session and a way to report progress."""

    job_id: str
    kind: str
    payload: dict[str, Any]
    session: Session
    merchant_id: int | None
    user_id: int | None
    live: dict[str, tuple[int, int | None]] | None = field(default=None, repr=False)
    _last_progress: float = field(default=0.0, repr=False)
    _total: int | None = field(default=None, repr=False)

    def progress(self, done: int, total: int | None = None, *, force: bool = False) -> None:
        """Report progress so that pages see it while the job runs.

        In the web process the runner keeps it in memory (a job holding a long write transaction
        on SQLite would block any other writer); on workers it is written in its own short
        transaction, throttled to a few writes a second.
        """
        if total is not None:
            self._total = total
        if self.live is not None:
            self.live[self.job_id] = (done, self._total)
            return
        now = time.monotonic()
        if not force and now - self._last_progress < 0.25:
            return
        self._last_progress = now
        values: dict[str, Any] = {"progress_done": done, "progress_total": self._total}
        with get_database().sessionmaker() as progress_session:
            progress_session.execute(update(Job).where(Job.id == self.job_id).values(**values))
            progress_session.commit()


class JobRunner:
    """Dispatches queued jobs: to Celery when a broker is configured, else to a local thread pool."""

    def __init__(self, app: Flask) -> None:
        self.app = app
        self.broker_url: str | None = app.config.get("BROKER_URL")
        self._executor: ThreadPoolExecutor | None = None
        self._futures: list[Future[None]] = []
        self._celery: Any = None
        # Progress of the jobs running in this process's threads: job id -> (done, total).
        self.live: dict[str, tuple[int, int | None]] = {}

    def dispatch(self, job_id: str) -> None:
        if self.broker_url:
            self.celery.send_task("portal.run_job", args=[job_id])
            return
        if self._executor is None:
            self._executor = ThreadPoolExecutor(
                max_workers=self.app.config["JOB_THREADS"], thread_name_prefix="portal-job"
            )
        self._futures = [f for f in self._futures if not f.done()]
        self._futures.append(self._executor.submit(self._run_in_app, job_id))

    def _run_in_app(self, job_id: str) -> None:
        with self.app.app_context():
            run_job(job_id, live=self.live)
        self.live.pop(job_id, None)

    def progress_of(self, job: Job) -> dict[str, Any]:
        """The job as a dict, with the live progress of an in-process job while it runs."""
        data = job.as_dict()
        live = self.live.get(job.id)
        if live is not None and not job.finished:
            done, total = live
            percent = min(100, round(100 * done / total)) if total else None
            data["progress"] = {"done": done, "total": total, "percent": percent}
        return data

    @property
    def celery(self) -> Any:
        if self._celery is None:
            from portal.jobs.celery_app import make_celery

            self._celery = make_celery(self.app)
        return self._celery

    def wait(self, timeout: float | None = None) -> None:
        """Wait for the in-process jobs dispatched so far (tests and the CLI use this)."""
        wait(list(self._futures), timeout=timeout)


def init_app(app: Flask) -> None:
    app.extensions["portal.jobs"] = JobRunner(app)


def get_runner(app: Flask | None = None) -> JobRunner:
    return (app or current_app).extensions["portal.jobs"]


def enqueue(
    kind: str,
    payload: dict[str, Any] | None = None,
    *,
    merchant_id: int | None = None,
    user_id: int | None = None,
) -> Job:
    """Record a job and hand it to a worker; the record is committed first so the worker finds it."""
    if kind not in _REGISTRY:
        raise UnknownJobKind(f"no job is registered as {kind!r}")
    with get_database().sessionmaker() as db:
        record = Job(kind=kind, payload=payload or {}, merchant_id=merchant_id, created_by_id=user_id)
        db.add(record)
        db.commit()
        try:
            get_runner().dispatch(record.id)
        except Exception as exc:
            # A broker that cannot be reached must not leave a job "queued" for ever.
            log.exception("could not dispatch job %s", record.id)
            record.status = "failed"
            record.error = f"The job could not be handed to a worker: {type(exc).__name__}: {exc}"[:4000]
            record.finished_at = utcnow()
            db.commit()
            raise JobDispatchError(gettext("The background job could not be started; try again later.")) from exc
    return record


def run_job(job_id: str, live: dict[str, tuple[int, int | None]] | None = None) -> None:
    """Run one queued job to its end; a crash is recorded as ``failed`` with its error."""
    db = get_session()
    record = db.get(Job, job_id)
    if record is None:
        log.error("job %s not found", job_id)
        return
    if record.status != "queued":
        # A redelivered Celery message, or a second dispatch: a job runs once.
        log.warning("job %s is %s, not queued; not run again", job_id, record.status)
        return
    record.status = "running"
    record.started_at = utcnow()
    db.commit()

    func = _REGISTRY.get(record.kind)
    ctx = JobContext(
        job_id=record.id,
        kind=record.kind,
        payload=dict(record.payload or {}),
        session=db,
        merchant_id=record.merchant_id,
        user_id=record.created_by_id,
        live=live,
    )
    try:
        if func is None:
            raise UnknownJobKind(f"no job is registered as {record.kind!r} in this worker")
        result = func(ctx)
    except Exception as exc:
        log.exception("job %s (%s) failed", job_id, record.kind)
        db.rollback()
        record = db.get(Job, job_id)
        assert record is not None
        record.status = "failed"
        record.error = f"{type(exc).__name__}: {exc}"[:4000]
        record.finished_at = utcnow()
        db.commit()
        return
    db.commit()
    db.refresh(record)
    record.status = "succeeded"
    record.result = result or {}
    if ctx._total is not None:
        record.progress_total = ctx._total
    if record.progress_total is not None:
        record.progress_done = record.progress_total
    record.finished_at = utcnow()
    db.commit()
