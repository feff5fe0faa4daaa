"""Jobs on a real Celery worker over Redis (PORTAL_TEST_BROKER_URL; CI sets it)."""
from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from portal.db import get_session
from portal.jobs.models import Job
from portal.jobs.services import enqueue

pytestmark = pytest.mark.celery
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def broker_url() -> str:
    url = os.environ.get("PORTAL_TEST_BROKER_URL")
    if not url:
        pytest.skip("set PORTAL_TEST_BROKER_URL=redis://127.0.0.1:6379/15 to run jobs on a real Celery worker")
    import redis

    redis.Redis.from_url(url).ping()  # an unreachable broker fails the run, it does not skip
    return url


@pytest.fixture(scope="module")
def celery_worker(broker_url: str, database_url: str, tmp_path_factory) -> Iterator[subprocess.Popen]:
    env = {
        **os.environ,
        "PORTAL_DATABASE_URL": database_url,
        "PORTAL_BROKER_URL": broker_url,
        "PORTAL_SECRET_KEY": "test-secret",
        "PORTAL_STORAGE_URL": tmp_path_factory.mktemp("worker-storage").as_uri(),
    }
    celery = [sys.executable, "-m", "celery", "-A", "portal.jobs.worker"]
    subprocess.run([*celery, "purge", "-f", "-Q", "portal"], cwd=ROOT, env=env, check=True, capture_output=True)
    log = tmp_path_factory.mktemp("worker-log") / "worker.log"
    with log.open("w") as out:
        worker = subprocess.Popen(
            [*celery, "worker", "--pool=solo", "--loglevel=INFO", "-Q", "portal", "-I", "tests.support.jobs",
             "--without-gossip", "--without-mingle", "--without-heartbeat"],
            cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT,
        )
    yield worker
    worker.terminate()
    try:
        worker.wait(timeout=20)
    except subprocess.TimeoutExpired:
        worker.kill()
    if worker.returncode not in (0, -15):
        print(log.read_text())


@pytest.fixture
def app_config(app_config: dict, broker_url: str) -> dict:
    return {**app_config, "BROKER_URL": broker_url}


def _wait_until_finished(app, job_id: str, deadline_s: float = 60) -> Job:
    """Polls the job record; the deadline only bounds a broken run, it asserts nothing about speed."""
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        with app.app_context():
            job = get_session().get(Job, job_id)
            if job.finished:
                return job
        time.sleep(0.2)
    raise AssertionError(f"job {job_id} did not finish on the Celery worker")


def test_job_runs_on_a_celery_worker_when_a_broker_is_configured(app, celery_worker):
    from tests.support import jobs  # noqa: F401

    with app.app_context():
        job = enqueue("tests.count", {"total": 3})
    done = _wait_until_finished(app, job.id)
    assert celery_worker.poll() is None, "the worker died"
    assert done.status == "succeeded"
    assert done.result == {"counted": 3}
    assert (done.progress_done, done.progress_total) == (3, 3)


def test_job_that_crashes_on_a_worker_is_marked_failed(app, celery_worker):
    from tests.support import jobs  # noqa: F401

    with app.app_context():
        job = enqueue("tests.crash")
    failed = _wait_until_finished(app, job.id)
    assert failed.status == "failed"
    assert "the input was not what the job expected" in failed.error
