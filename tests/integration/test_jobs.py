"""Background jobs in the web process's thread pool: status, progress, result, crash, pages."""
from __future__ import annotations

import csv
import io

import pytest

from portal.audit import record
from portal.db import get_session
from portal.jobs.models import Job
from portal.jobs.services import UnknownJobKind, enqueue, get_runner, run_job
from tests.support import jobs as _test_jobs  # noqa: F401  (registers tests.count and tests.crash)


def _finished(app, job_id: str) -> Job:
    get_runner(app).wait(timeout=30)
    with app.app_context():
        return get_session().get(Job, job_id)


def test_job_runs_in_the_background_and_records_progress_and_result(app, factory):
    merchant = factory.merchant()
    with app.app_context():
        job = enqueue("tests.count", {"total": 4}, merchant_id=merchant.id)
        assert job.status == "queued"
    done = _finished(app, job.id)
    assert done.status == "succeeded"
    assert (done.progress_done, done.progress_total) == (4, 4)
    assert done.result == {"counted": 4}
    assert done.started_at <= done.finished_at


def test_job_that_crashes_is_marked_failed_with_its_error(app):
    with app.app_context():
        job = enqueue("tests.crash")
    failed = _finished(app, job.id)
    assert failed.status == "failed"
    assert failed.error == "ValueError: the input was not what the job expected"
    assert failed.finished_at is not None


def test_unknown_job_kind_is_refused_before_anything_is_recorded(app):
    with app.app_context():
        with pytest.raises(UnknownJobKind):
            enqueue("no.such.job")
        assert get_session().query(Job).count() == 0


def test_a_job_runs_only_once_even_if_dispatched_twice(app):
    with app.app_context():
        job = enqueue("tests.count", {"total": 1})
    _finished(app, job.id)
    with app.app_context():
        run_job(job.id)  # a redelivered message
        again = get_session().get(Job, job.id)
    assert again.status == "succeeded"


def test_status_endpoint_and_progress_page_follow_the_job(app, factory, auth):
    admin = factory.user("merchant_admin")
    with app.app_context():
        job = enqueue("tests.count", {"total": 3}, merchant_id=admin.merchant_id, user_id=admin.id)
    _finished(app, job.id)
    auth.login(admin.email)
    status = auth.client.get(f"/jobs/{job.id}/status").json
    assert status["status"] == "succeeded"
    assert status["progress"] == {"done": 3, "total": 3, "percent": 100}
    page = auth.client.get(f"/jobs/{job.id}").get_data(as_text=True)
    assert f'data-job-status-url="/jobs/{job.id}/status"' in page
    assert "js/progress.js" in page


def test_api_reports_job_status_to_the_merchants_token(app, factory, client):
    merchant = factory.merchant()
    _, secret = factory.token(merchant)
    with app.app_context():
        job = enqueue("tests.crash", merchant_id=merchant.id)
    _finished(app, job.id)
    body = client.get(f"/api/v1/jobs/{job.id}", headers={"Authorization": f"Bearer {secret}"}).json
    assert body["status"] == "failed"
    assert body["error"].startswith("ValueError")


def test_audit_log_export_is_a_downloadable_csv_with_formulas_neutralised(app, factory, auth):
    admin = factory.user("merchant_admin")
    with app.app_context():
        db = get_session()
        record(db, "test.event", merchant_id=admin.merchant_id, details={"note": "x"})
        event = record(db, "=HYPERLINK(evil)", merchant_id=admin.merchant_id)
        db.commit()
        assert event.id
    auth.login(admin.email)
    response = auth.post("/audit/export", csrf_page="/audit")
    job_id = response.headers["Location"].rsplit("/", 1)[-1]
    assert _finished(app, job_id).status == "succeeded"
    download = auth.client.get(f"/jobs/{job_id}/download")
    assert download.status_code == 200
    assert download.headers["Content-Disposition"] == 'attachment; filename="audit-log.csv"'
    rows = list(csv.reader(io.StringIO(download.get_data().decode("utf-8-sig"))))
    assert rows[0][:3] == ["id", "at", "action"]
    actions = [row[2] for row in rows[1:]]
    assert "test.event" in actions and "login.succeeded" in actions
    assert "'=HYPERLINK(evil)" in actions


def test_audit_export_of_a_merchant_holds_only_its_own_events(app, factory, auth):
    admin = factory.user("merchant_admin")
    other = factory.user("merchant_admin")
    auth.login(admin.email)
    job_id = auth.post("/audit/export", csrf_page="/audit").headers["Location"].rsplit("/", 1)[-1]
    _finished(app, job_id)
    text = auth.client.get(f"/jobs/{job_id}/download").get_data().decode("utf-8-sig")
    assert other.email not in text
    assert "user.created" in text


def test_download_of_an_unfinished_or_resultless_job_is_404(app, factory, auth):
    admin = factory.user("merchant_admin")
    with app.app_context():
        job = enqueue("tests.count", {"total": 1}, merchant_id=admin.merchant_id)
    _finished(app, job.id)
    auth.login(admin.email)
    assert auth.client.get(f"/jobs/{job.id}/download").status_code == 404


def test_job_that_cannot_reach_its_broker_is_marked_failed_not_left_queued(app_config, make_app):
    from portal.jobs.services import JobDispatchError

    app = make_app({**app_config, "BROKER_URL": "redis://127.0.0.1:1/0"})
    get_runner(app).celery.conf.broker_connection_max_retries = 0
    get_runner(app).celery.conf.broker_transport_options = {"max_retries": 0}
    with app.app_context():
        with pytest.raises(JobDispatchError):
            enqueue("tests.count")
        job = get_session().query(Job).one()
    assert job.status == "failed"
    assert "could not be handed to a worker" in job.error
