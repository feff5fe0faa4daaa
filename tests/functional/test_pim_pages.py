"""The operators' export page, its start buttons and manifest download, and `portal pim export` on the command line."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy import select

from portal.db import get_session, utcnow
from portal.jobs.services import get_runner
from portal.pim_export.models import ExportRun
from tests.support import pim_reader
from tests.support.pim import ready_shop


@pytest.fixture
def export_dir(tmp_path: Path, app_config: dict) -> Path:
    path = tmp_path / "pim"
    app_config["PIM_EXPORT_URL"] = path.as_uri()
    return path


def _runs(app) -> list[ExportRun]:
    with app.app_context():
        return list(get_session().scalars(select(ExportRun).order_by(ExportRun.id)))


def test_operator_starts_exports_and_sees_them_listed_with_the_manifest(export_dir, app, factory, auth):
    ready_shop(app, factory, "pageshop", 3)
    operator = factory.user("operator_admin")
    auth.login(operator.email)
    page = auth.client.get("/pim/runs")
    assert page.status_code == 200 and "No export has run yet" in page.get_data(as_text=True)

    response = auth.post("/pim/runs/start", {"kind": "full"}, csrf_page="/pim/runs", follow_redirects=True)
    assert response.status_code == 200
    get_runner(app).wait(timeout=60)
    auth.post("/pim/runs/start", {"kind": "delta"}, csrf_page="/pim/runs")
    get_runner(app).wait(timeout=60)

    full, delta = _runs(app)
    assert (full.kind, full.status, full.records, full.trigger, full.created_by_id) == (
        "full", "succeeded", 3, "web", operator.id)
    with app.app_context():
        from portal.audit import AuditEvent

        started = get_session().scalars(select(AuditEvent).where(AuditEvent.action == "pim.export_started")).all()
        assert [event.details["kind"] for event in started] == ["full", "delta"]
    assert (delta.kind, delta.status, delta.records) == ("delta", "succeeded", 0)
    listing = auth.client.get("/pim/runs").get_data(as_text=True)
    assert full.run_id in listing and delta.run_id in listing
    detail = auth.client.get(f"/pim/runs/{full.id}").get_data(as_text=True)
    assert "part-00000.jsonl.gz" in detail and full.manifest_key in detail
    download = auth.client.get(f"/pim/runs/{full.id}/manifest.json")
    assert download.status_code == 200 and download.mimetype == "application/json"
    assert "attachment" in download.headers["Content-Disposition"]
    assert json.loads(download.data) == json.loads((export_dir / full.manifest_key).read_bytes())
    assert len(pim_reader.rebuild(pim_reader.DirectorySource(export_dir))) == 3


def test_a_failed_run_shows_its_error_and_has_no_manifest(app, factory, auth, tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    app.config["PIM_EXPORT_URL"] = (blocker / "pim").as_uri()
    ready_shop(app, factory, "failshop", 1)
    auth.login(factory.user("operator_admin").email)
    auth.post("/pim/runs/start", {"kind": "full"}, csrf_page="/pim/runs")
    get_runner(app).wait(timeout=60)
    (failed,) = _runs(app)
    assert failed.status == "failed" and failed.manifest_key is None
    page = auth.client.get(f"/pim/runs/{failed.id}").get_data(as_text=True)
    assert "failed" in page and "a-file" in page
    assert auth.client.get(f"/pim/runs/{failed.id}/manifest.json").status_code == 404


def test_start_refuses_a_second_run_and_a_bad_kind(export_dir, app, factory, auth):
    auth.login(factory.user("operator_admin").email)
    assert auth.post("/pim/runs/start", {"kind": "everything"}, csrf_page="/pim/runs").status_code == 400
    assert auth.client.post("/pim/runs/start", data={"kind": "full"}).status_code == 400  # no CSRF token
    with app.app_context():
        db = get_session()
        db.add(ExportRun(run_id="20261123T010000Z-abcdef", kind="full", requested="full", status="running",
                         started_at=utcnow(), heartbeat_at=utcnow(), host="h", pid=1, context={}))
        db.commit()
    page = auth.post("/pim/runs/start", {"kind": "delta"}, csrf_page="/pim/runs", follow_redirects=True)
    text = page.get_data(as_text=True)
    assert "Another export is running (20261123T010000Z-abcdef)" in text
    assert len(_runs(app)) == 1
    assert auth.client.get("/pim/runs/999999").status_code == 404


@pytest.mark.parametrize("role", ["merchant_admin", "merchant_staff", "category_manager"])
def test_only_operators_reach_the_export_pages(app, factory, auth, role):
    auth.login(factory.user(role).email)
    for path in ("/pim/runs", "/pim/runs/1", "/pim/runs/1/manifest.json"):
        assert auth.client.get(path).status_code == 403, path
    assert auth.post("/pim/runs/start", {"kind": "full"}).status_code == 403


def test_the_runs_page_in_russian(export_dir, app, factory, auth):
    ready_shop(app, factory, "rushop", 1)
    auth.login(factory.user("operator_admin").email)
    auth.post("/language", {"lang": "ru"})
    auth.post("/pim/runs/start", {"kind": "full"}, csrf_page="/pim/runs")
    get_runner(app).wait(timeout=60)
    text = auth.client.get("/pim/runs").get_data(as_text=True)
    assert "Выгрузка в PIM" in text and "полная" in text and "успешно" in text


def test_cli_exports_and_prints_the_run(export_dir, app, factory, runner):
    ready_shop(app, factory, "clishop", 2)
    result = runner.invoke(args=["pim", "export", "--full", "--json"])
    assert result.exit_code == 0, result.output
    printed = json.loads(result.stdout)
    assert set(printed) == {"run_id", "kind", "status", "records", "tombstones", "files", "manifest"}
    assert (printed["kind"], printed["status"], printed["records"], printed["tombstones"], printed["files"]) == (
        "full", "succeeded", 2, 0, 1)
    assert (export_dir / printed["manifest"]).is_file()
    human = runner.invoke(args=["pim", "export", "--delta"])
    assert human.exit_code == 0 and "(delta): succeeded; 0 records, 0 tombstones" in human.output


def test_cli_without_a_kind_or_with_a_broken_target_exits_1(app, runner, tmp_path):
    assert runner.invoke(args=["pim", "export"]).exit_code == 2
    blocker = tmp_path / "plain-file"
    blocker.write_text("x")
    app.config["PIM_EXPORT_URL"] = (blocker / "pim").as_uri()
    result = runner.invoke(args=["pim", "export", "--full", "--json"])
    assert result.exit_code == 1
    printed = json.loads(result.stdout)
    assert printed["status"] == "failed" and "plain-file" in printed["error"]


def test_cli_refuses_while_another_run_holds_the_lock(export_dir, app, runner):
    with app.app_context():
        db = get_session()
        db.add(ExportRun(run_id="20261123T010000Z-0b0b0b", kind="delta", requested="delta", status="running",
                         started_at=utcnow(), heartbeat_at=utcnow(), host="h", pid=1, context={}))
        db.commit()
    result = runner.invoke(args=["pim", "export", "--delta", "--json"])
    assert result.exit_code == 1
    assert json.loads(result.stdout)["error"]["code"] == "pim_export_running"
