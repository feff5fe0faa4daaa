"""Celery wiring: one task, ``portal.run_job``, that runs a job record inside the Flask app."""
from __future__ import annotations

from celery import Celery
from flask import Flask


def make_celery(app: Flask) -> Celery:
    celery = Celery("portal", broker=app.config["BROKER_URL"])
    celery.conf.update(
        task_ignore_result=True,  # the job record in the database is the result
        task_acks_late=True,  # a worker that dies mid-job leaves the message for another
        worker_prefetch_multiplier=1,
        broker_connection_retry_on_startup=True,
        task_default_queue="portal",
    )

    @celery.task(name="portal.run_job")
    def run_job_task(job_id: str) -> None:
        from portal.jobs.services import run_job

        with app.app_context():
            run_job(job_id)

    return celery
