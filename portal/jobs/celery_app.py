"""Celery wiring: ``portal.run_job`` runs a job record inside the Flask app; beat starts the nightly PIM export,
refuses orders past their acceptance deadline and recounts the KPI rollups hourly."""
from __future__ import annotations

from celery import Celery
from celery.schedules import crontab
from flask import Flask

# Run `celery -A portal.jobs.worker beat` beside the workers for these (times in UTC).
BEAT_SCHEDULE = {
    "pim-export-nightly-delta": {"task": "portal.pim_export", "schedule": crontab(hour=2, minute=0), "args": ("delta",)},
    "pim-export-weekly-full": {"task": "portal.pim_export", "schedule": crontab(hour=3, minute=30, day_of_week="sun"),
                               "args": ("full",)},
    "orders-expire": {"task": "portal.orders_expire", "schedule": crontab(minute="*/5")},
    "kpi-rollup-hourly": {"task": "portal.kpi_rollup", "schedule": crontab(minute=15)},
}


def make_celery(app: Flask) -> Celery:
    celery = Celery("portal", broker=app.config["BROKER_URL"])
    celery.conf.update(
        task_ignore_result=True,  # the job record in the database is the result
        task_acks_late=True,  # a worker that dies mid-job leaves the message for another
        worker_prefetch_multiplier=1,
        broker_connection_retry_on_startup=True,
        task_default_queue="portal",
        timezone="UTC",
        beat_schedule=BEAT_SCHEDULE,
    )

    # shared=False: each app keeps its own tasks (tests build several apps in one process).
    @celery.task(name="portal.run_job", shared=False)
    def run_job_task(job_id: str) -> None:
        from portal.jobs.services import run_job

        with app.app_context():
            run_job(job_id)

    @celery.task(name="portal.pim_export", shared=False)
    def pim_export_task(kind: str) -> None:
        """Beat's entry: record a ``pim.export`` job and run it here, so it shows on the jobs and runs pages."""
        from portal.db import get_database
        from portal.jobs.models import Job
        from portal.jobs.services import run_job

        with app.app_context():
            with get_database().sessionmaker() as db:
                record = Job(kind="pim.export", payload={"kind": kind, "trigger": "schedule"})
                db.add(record)
                db.commit()
                job_id = record.id
            run_job(job_id)

    @celery.task(name="portal.orders_expire", shared=False)
    def orders_expire_task() -> int:
        """Beat's entry for `portal orders expire`: refuse what passed its acceptance deadline."""
        from portal.db import get_database
        from portal.orders.services import expire_orders

        with app.app_context():
            with get_database().sessionmaker() as db:
                return len(expire_orders(db))

    @celery.task(name="portal.kpi_rollup", shared=False)
    def kpi_rollup_task() -> dict:
        """Beat's entry for `portal kpi rollup`: recount the last days' KPI rollups the trends read."""
        from portal.db import get_database
        from portal.kpi.services import rollup

        with app.app_context():
            with get_database().sessionmaker() as db:
                return rollup(db)

    return celery
