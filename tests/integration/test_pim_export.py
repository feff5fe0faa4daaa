"""The PIM export end to end: layout, full and delta, tombstones, the lock, and every fault the issue names.

Every check of what landed goes through tests/support/pim_reader.py, which reads the export as the PIM
would (plain boto3 or the filesystem, the published schemas) and rebuilds the catalog from it.
"""
from __future__ import annotations

import gzip
import json
import re
import threading
from datetime import timedelta
from pathlib import Path
from typing import Any

import boto3
import pytest
from sqlalchemy import delete, select, update

from portal.accounts.models import Merchant
from portal.catalog import services as catalog
from portal.catalog.models import Product
from portal.category_mapping import requests as mapping_requests
from portal.category_mapping.models import ValueMapping
from portal.db import get_session, utcnow
from portal.pim_export import services
from portal.pim_export.models import ExportedProduct, ExportRun
from portal.storage import S3Storage
from portal.tenancy import Principal
from tests.support import pim_reader
from tests.support.catalog import csv_bytes, import_file
from tests.support.pim import HEADER, ready_catalog, ready_shop, rows, summarised
from tests.support.s3 import faulty_proxy, free_port, moto_server

BUCKET = "pim-exports"
KEY = re.compile(r"^products/(full|delta)/\d{4}-\d{2}-\d{2}/\d{8}T\d{6}Z-[0-9a-f]{6}/(part-\d{5}\.jsonl\.gz|manifest\.json)$")


# --- fixtures ------------------------------------------------------------------------------------------


@pytest.fixture
def export_dir(tmp_path: Path, app_config: dict) -> Path:
    path = tmp_path / "pim"
    app_config["PIM_EXPORT_URL"] = path.as_uri()
    return path


@pytest.fixture(scope="module")
def s3_endpoint():
    with moto_server() as endpoint:
        client = boto3.client("s3", endpoint_url=endpoint)
        client.create_bucket(Bucket=BUCKET)
        client.close()
        yield endpoint


@pytest.fixture
def s3(s3_endpoint: str, app_config: dict, request: pytest.FixtureRequest):
    """The app exports to its own prefix of the moto bucket; the reader looks there with its own client."""
    prefix = f"t/{request.node.name[:40]}-{utcnow():%H%M%S%f}"
    app_config["PIM_EXPORT_URL"] = f"s3://{BUCKET}/{prefix}"
    app_config["S3_ENDPOINT_URL"] = s3_endpoint
    client = boto3.client("s3", endpoint_url=s3_endpoint)
    yield pim_reader.S3Source(client, BUCKET, prefix)
    client.close()


def run(app, kind: str, **kwargs: Any) -> ExportRun:
    with app.app_context():
        result = services.run_export(get_session(), kind, **kwargs)
        get_session().expunge(result)
        return result


def assert_pim_matches_portal(app, source) -> dict[tuple[int, str], dict[str, Any]]:
    catalog = pim_reader.rebuild(source)
    assert summarised(catalog) == ready_catalog(app)
    return catalog


# --- layout, full and delta ---------------------------------------------------------------------------


def test_full_export_writes_the_layout_and_the_reader_rebuilds_the_ready_catalog(export_dir, app, factory):
    ready_shop(app, factory, "wear", 5, extra=[["W-NOSIZE", "Футболка без размера", "10", "1", "Футболки", "", "red", "", ""],
                                                ["W-PLAIN", "Кружка", "10", "1", "Посуда", "", "", "", ""]])
    result = run(app, "full")

    assert result.status == "succeeded", result.error
    assert (result.records, result.tombstones, result.files) == (5, 0, 1)
    source = pim_reader.DirectorySource(export_dir)
    keys = source.keys()
    assert "products/LATEST.json" in keys
    assert all(KEY.match(key) for key in keys if key != "products/LATEST.json"), keys
    latest = json.loads(source.get("products/LATEST.json"))
    assert latest["run_id"] == result.run_id and latest["kind"] == "full" and latest["manifest"] == result.manifest_key
    catalog = assert_pim_matches_portal(app, source)
    assert len(catalog) == 5  # the incomplete and the unmapped product stay out
    record = next(iter(catalog.values()))
    assert record["attributes"] == {"color": "white", "size": "m"}  # Цвет/Размер under the marketplace's codes
    assert record["category_path"] == "Apparel & Accessories > Clothing > Shirts & Tops"
    assert re.fullmatch(r"\d+\.50", record["price"])


def test_parts_are_bounded_and_each_is_checked_by_the_reader(export_dir, app, factory):
    ready_shop(app, factory, "many", 23)
    result = run(app, "full", part_records=10, batch=7)

    assert (result.records, result.files) == (23, 3)
    manifest = pim_reader.read_run(pim_reader.DirectorySource(export_dir), result.manifest_key).manifest
    assert [entry["records"] for entry in manifest["files"]] == [10, 10, 3]
    assert [entry["key"].rsplit("/", 1)[1] for entry in manifest["files"]] == [
        "part-00000.jsonl.gz", "part-00001.jsonl.gz", "part-00002.jsonl.gz"]


def test_delta_carries_what_changed_and_tombstones_what_left(export_dir, app, factory):
    shop = ready_shop(app, factory, "shop", 8)
    assert run(app, "full").status == "succeeded"
    # Deactivated by a whole-catalog upload without SHOP-00004; SHOP-00005 loses its size; a new one arrives.
    kept = [row for row in rows("SHOP", 8) if row[0] != "SHOP-00004"]
    for row in kept:
        if row[0] == "SHOP-00005":
            row[7] = ""
    import_file(app, shop.id, csv_bytes([HEADER, *kept, *rows("SHOP", 1, start=9)]), deactivate_missing=True)
    principal = Principal(role="merchant_admin", merchant_id=shop.id)
    with app.app_context():
        db = get_session()
        by_sku = {p.sku: p for p in db.scalars(select(Product).where(Product.merchant_id == shop.id))}
        catalog.update_offer(db, by_sku["SHOP-00001"], principal=principal, price=None, stock=40)  # stock: changed
        catalog.update_offer(db, by_sku["SHOP-00002"], principal=principal, price=None, stock=by_sku["SHOP-00002"].stock)
        db.execute(delete(Product).where(Product.id == by_sku["SHOP-00003"].id))  # removed outright
        db.commit()

    result = run(app, "delta")

    assert result.status == "succeeded", result.error
    assert result.kind == "delta" and result.previous_run_id
    delta = pim_reader.read_run(pim_reader.DirectorySource(export_dir), result.manifest_key)
    assert sorted(r["sku"] for r in delta.records) == ["SHOP-00001", "SHOP-00009"]
    assert sorted(t["sku"] for t in delta.tombstones) == ["SHOP-00003", "SHOP-00004", "SHOP-00005"]
    assert delta.lines[0].get("deleted") is True  # tombstones come first
    assert delta.manifest["previous"]["manifest"].startswith("products/full/")
    catalog_after = assert_pim_matches_portal(app, pim_reader.DirectorySource(export_dir))
    assert catalog_after[(shop.id, "SHOP-00001")]["available"] == 40

    batches: list[int] = []
    quiet = run(app, "delta", hooks=services.Hooks(after_batch=batches.append))
    assert (quiet.status, quiet.records, quiet.tombstones, quiet.files) == ("succeeded", 0, 0, 0)
    assert batches == []  # nothing changed, so no product was even read again
    assert_pim_matches_portal(app, pim_reader.DirectorySource(export_dir))


def test_worker_processes_build_the_same_export_as_threads(export_dir, app, factory, monkeypatch):
    """Large runs build records in worker processes; here every run does, and the PIM sees the same catalog."""
    monkeypatch.setattr(services, "PROCESS_THRESHOLD", 0)
    shop = ready_shop(app, factory, "procs", 12)
    full = run(app, "full", batch=5)
    assert (full.status, full.records) == ("succeeded", 12), full.error
    assert_pim_matches_portal(app, pim_reader.DirectorySource(export_dir))
    with app.app_context():
        db = get_session()
        product = db.scalar(select(Product).where(Product.sku == "PROCS-00004"))
        catalog.update_offer(db, product, principal=Principal(role="merchant_admin", merchant_id=shop.id), stock=77)
    delta = run(app, "delta", batch=5)
    assert (delta.status, delta.records) == ("succeeded", 1), delta.error
    assert pim_reader.rebuild(pim_reader.DirectorySource(export_dir))[(shop.id, "PROCS-00004")]["available"] == 77
    assert_pim_matches_portal(app, pim_reader.DirectorySource(export_dir))


def test_deactivated_merchant_is_tombstoned_and_mapping_changes_reach_the_pim(export_dir, app, factory):
    one = ready_shop(app, factory, "one", 3)
    two = ready_shop(app, factory, "two", 2, extra=[["TWO-X", "Футболка", "5", "1", "Футболки", "", "Белый", "m", ""]])
    with app.app_context():
        assert get_session().scalar(select(Product.readiness).where(Product.sku == "TWO-X")) == "incomplete"
    assert run(app, "full").status == "succeeded"
    with app.app_context():
        db = get_session()
        db.execute(update(Merchant).where(Merchant.id == one.id).values(is_active=False))
        # "Белый" becomes the marketplace's "white" for merchant two: TWO-X turns ready, with the mapped value.
        db.add(ValueMapping(merchant_id=two.id, code="color", source_value="Белый", value="white", updated_at=utcnow()))
        mapping_requests.refresh(db, [two.id])
        db.commit()

    result = run(app, "delta")

    delta = pim_reader.read_run(pim_reader.DirectorySource(export_dir), result.manifest_key)
    assert sorted(t["sku"] for t in delta.tombstones) == ["ONE-00001", "ONE-00002", "ONE-00003"]
    assert [(r["sku"], r["attributes"]["color"]) for r in delta.records] == [("TWO-X", "white")]
    assert_pim_matches_portal(app, pim_reader.DirectorySource(export_dir))


def test_a_delta_with_nothing_to_follow_or_a_foreign_latest_becomes_a_full(export_dir, app, factory):
    ready_shop(app, factory, "solo", 2)
    first = run(app, "delta")
    assert (first.kind, first.requested, first.status) == ("full", "delta", "succeeded")
    with app.app_context():
        assert "No earlier export" in first.reason_text
    (export_dir / "products" / "LATEST.json").write_text(json.dumps({"kind": "full", "run_id": "someone-else",
                                                                     "manifest": "x/manifest.json"}))
    second = run(app, "delta")
    assert (second.kind, second.status) == ("full", "succeeded")
    with app.app_context():
        assert first.run_id in second.reason_text
    assert_pim_matches_portal(app, pim_reader.DirectorySource(export_dir))


# --- S3 ----------------------------------------------------------------------------------------------------


def test_export_to_s3_is_read_back_by_a_plain_boto3_reader(s3, app, factory):
    shop = ready_shop(app, factory, "cloud", 6)
    assert run(app, "full", part_records=4).status == "succeeded"
    with app.app_context():
        db = get_session()
        product = db.scalar(select(Product).where(Product.sku == "CLOUD-00002"))
        catalog.update_offer(db, product, principal=Principal(role="merchant_admin", merchant_id=shop.id),
                             price=product.price + 1)
    delta = run(app, "delta")
    assert (delta.status, delta.records) == ("succeeded", 1)
    assert_pim_matches_portal(app, s3)
    assert [run.manifest["kind"] for run in pim_reader.chain(s3)] == ["full", "delta"]


def test_large_parts_go_up_to_s3_in_multipart_uploads(s3, s3_endpoint, app, factory):
    """Descriptions of random text keep the part above S3's 5 MiB minimum part size after gzip."""
    import secrets

    shop = ready_shop(app, factory, "big", 1)
    with app.app_context():
        db = get_session()
        template = db.scalar(select(Product).where(Product.merchant_id == shop.id))
        values = {c: getattr(template, c) for c in ("merchant_id", "title", "price", "currency", "stock", "category",
                                                    "attributes", "readiness", "marketplace_category_id", "status")}
        db.execute(Product.__table__.insert(), [
            {**values, "sku": f"BIG-R{n:05d}", "description": secrets.token_urlsafe(1500), "images": [],
             "updated_at": utcnow(), "created_at": utcnow(), "content_hash": "", "source_hash": "", "reserved": 0,
             "brand": "", "gtin": "", "required_count": 2, "filled_required": 2, "missing": []} for n in range(4000)])
        db.commit()
    bucket, prefix = app.config["PIM_EXPORT_URL"][5:].split("/", 1)
    storage = S3Storage(app.config["PIM_EXPORT_URL"], bucket, prefix, endpoint_url=s3_endpoint,
                        multipart_threshold=5 * 1024 * 1024, multipart_chunksize=5 * 1024 * 1024)
    try:
        result = run(app, "full", storage=storage)
    finally:
        storage.close()

    assert (result.status, result.files, result.records) == ("succeeded", 1, 4001)
    assert result.bytes > 5 * 1024 * 1024
    part = pim_reader.read_run(s3, result.manifest_key).manifest["files"][0]["key"]
    etag = s3.client.head_object(Bucket=BUCKET, Key=f"{s3.prefix}/{part}")["ETag"]
    assert "-" in etag  # S3 gives multipart objects an ETag of "<md5 of md5s>-<parts>"
    assert len(pim_reader.rebuild(s3)) == 4001


# --- faults: whatever happens, LATEST.json names a whole run ----------------------------------------------


@pytest.fixture
def exported_once(s3, app, factory):
    """A shop, one successful full export, and then a change the next run must carry."""
    shop = ready_shop(app, factory, "fault", 7)
    first = run(app, "full")
    assert first.status == "succeeded"
    with app.app_context():
        db = get_session()
        product = db.scalar(select(Product).where(Product.sku == "FAULT-00001"))
        catalog.update_offer(db, product, principal=Principal(role="merchant_admin", merchant_id=shop.id), stock=99)
    return {"shop": shop, "first": first, "latest": s3.get("products/LATEST.json"),
            "catalog": pim_reader.rebuild(s3)}


def assert_failed_and_untouched(app, s3, failed: ExportRun, before: dict[str, Any]) -> None:
    assert failed.status == "failed" and failed.error
    assert s3.get("products/LATEST.json") == before["latest"]
    assert pim_reader.rebuild(s3) == before["catalog"]  # the PIM still sees the previous whole run
    with app.app_context():
        assert services.running(get_session()) is None  # the lock is released
    # The next delta covers what the failed run missed.
    recovered = run(app, "delta")
    assert recovered.status == "succeeded", recovered.error
    assert recovered.previous_run_id == before["first"].run_id
    catalog_now = assert_pim_matches_portal(app, s3)
    assert catalog_now[(before["shop"].id, "FAULT-00001")]["available"] == 99


def test_s3_unreachable_at_the_start(s3, app, exported_once, make_app, app_config):
    dead = make_app({**app_config, "S3_ENDPOINT_URL": f"http://127.0.0.1:{free_port()}"})
    failed = run(dead, "delta")
    assert "products/LATEST.json" in failed.error
    assert_failed_and_untouched(app, s3, failed, exported_once)


def test_s3_failing_on_the_third_part(s3, s3_endpoint, app, exported_once, make_app, app_config):
    with faulty_proxy(s3_endpoint, lambda method, path: method == "PUT" and "part-00002" in path) as proxy:
        flaky = make_app({**app_config, "S3_ENDPOINT_URL": proxy.endpoint})
        failed = run(flaky, "full", part_records=2)
    assert proxy.failed and "part-00002" in failed.error
    # The failed run's two uploaded parts were removed again; the PIM never saw them anyway.
    assert not [key for key in s3.keys() if failed.run_id in key]
    assert_failed_and_untouched(app, s3, failed, exported_once)


def test_killed_between_the_parts_and_the_manifest(s3, app, exported_once):
    def killed() -> None:
        raise RuntimeError("killed before the manifest")

    failed = run(app, "delta", hooks=services.Hooks(before_manifest=killed))
    assert "killed before the manifest" in failed.error
    assert not any(key.endswith("manifest.json") and failed.run_id in key for key in s3.keys())
    assert_failed_and_untouched(app, s3, failed, exported_once)


def test_a_process_that_died_mid_run_leaves_its_lock_to_the_next_run(s3, app, exported_once):
    """A real kill leaves the run 'running': its silent heartbeat (or dead pid) frees the lock."""
    with app.app_context():
        db = get_session()
        db.add(ExportRun(run_id="20261101T020000Z-dead00", kind="delta", requested="delta", status="running",
                         started_at=utcnow() - timedelta(hours=1), heartbeat_at=utcnow() - timedelta(minutes=30),
                         host="elsewhere", pid=1, context={}))
        db.commit()
    result = run(app, "delta")
    assert result.status == "succeeded"
    with app.app_context():
        dead = get_session().scalar(select(ExportRun).where(ExportRun.run_id == "20261101T020000Z-dead00"))
        assert dead.status == "failed" and "gave no sign of life" in dead.error


def test_a_bucket_that_does_not_exist(s3_endpoint, app, factory, make_app, app_config):
    ready_shop(app, factory, "nobucket", 2)
    missing = make_app({**app_config, "PIM_EXPORT_URL": "s3://no-such-bucket/pim", "S3_ENDPOINT_URL": s3_endpoint})
    failed = run(missing, "full")
    assert failed.status == "failed"
    assert "no-such-bucket" in failed.error
    with app.app_context():
        assert get_session().scalar(select(ExportedProduct).limit(1)) is None  # nothing counted as delivered


def test_a_product_changed_while_the_export_runs_is_in_this_run_or_the_next(s3, app, exported_once):
    shop = exported_once["shop"]
    principal = Principal(role="merchant_admin", merchant_id=shop.id)

    def change_during_run(batch: int) -> None:
        if batch != 1:
            return
        with app.app_context():
            db = get_session()
            for sku, stock in (("FAULT-00002", 500), ("FAULT-00007", 700)):  # already read / not read yet
                product = db.scalar(select(Product).where(Product.sku == sku))
                catalog.update_offer(db, product, principal=principal, stock=stock)

    during = run(app, "full", batch=1, hooks=services.Hooks(after_batch=change_during_run))
    assert during.status == "succeeded"
    seen = pim_reader.rebuild(s3)
    assert seen[(shop.id, "FAULT-00002")]["available"] != 500  # read before the change: in the next run
    assert seen[(shop.id, "FAULT-00007")]["available"] == 700  # read after it: in this run
    after = run(app, "delta")
    delta = pim_reader.read_run(s3, after.manifest_key)
    assert [r["sku"] for r in delta.records] == ["FAULT-00002"]
    assert pim_reader.rebuild(s3)[(shop.id, "FAULT-00002")]["available"] == 500
    assert_pim_matches_portal(app, s3)


# --- the lock ----------------------------------------------------------------------------------------------


def test_a_second_run_is_refused_while_one_runs(export_dir, app, factory):
    ready_shop(app, factory, "locked", 4)
    reading, release = threading.Event(), threading.Event()
    outcome: dict[str, ExportRun] = {}

    def hold(batch: int) -> None:
        reading.set()
        assert release.wait(30)

    worker = threading.Thread(target=lambda: outcome.setdefault("run", run(app, "full", batch=2,
                                                                           hooks=services.Hooks(after_batch=hold))))
    worker.start()
    try:
        assert reading.wait(30)
        with pytest.raises(services.ExportBusy) as refused:
            run(app, "delta")
        assert "Another export is running" in refused.value.message
    finally:
        release.set()
        worker.join(60)
    assert outcome["run"].status == "succeeded"
    with app.app_context():
        assert get_session().scalar(select(ExportRun).where(ExportRun.requested == "delta")) is None
    assert_pim_matches_portal(app, pim_reader.DirectorySource(export_dir))


# --- schedule ----------------------------------------------------------------------------------------------


def test_celery_beat_runs_the_nightly_delta_and_the_weekly_full(export_dir, app, factory):
    from celery.schedules import crontab

    from portal.jobs.celery_app import make_celery
    from portal.jobs.models import Job

    celery = make_celery(app)
    schedule = celery.conf.beat_schedule
    assert schedule["pim-export-nightly-delta"]["args"] == ("delta",)
    assert schedule["pim-export-nightly-delta"]["schedule"] == crontab(hour=2, minute=0)
    assert schedule["pim-export-weekly-full"]["args"] == ("full",)
    assert schedule["pim-export-weekly-full"]["schedule"] == crontab(hour=3, minute=30, day_of_week="sun")

    ready_shop(app, factory, "nightly", 2)
    celery.tasks["portal.pim_export"]("delta")  # what beat sends, run here

    with app.app_context():
        db = get_session()
        made = db.scalar(select(ExportRun))
        assert (made.trigger, made.status, made.records) == ("schedule", "succeeded", 2)
        job = db.scalar(select(Job).where(Job.kind == "pim.export"))
        assert job.status == "succeeded" and job.result["run_id"] == made.run_id


def test_parts_stay_within_their_size_bound(export_dir, app, factory):
    ready_shop(app, factory, "sized", 30)
    result = run(app, "full", part_bytes=2_000)
    manifest = pim_reader.read_run(pim_reader.DirectorySource(export_dir), result.manifest_key).manifest
    sizes = []
    for entry in manifest["files"]:
        sizes.append(len(gzip.decompress((export_dir / entry["key"]).read_bytes())))
    assert result.records == 30 and len(sizes) > 1
    assert max(sizes) <= 2_000
    assert_pim_matches_portal(app, pim_reader.DirectorySource(export_dir))


def test_a_run_whose_lock_was_taken_over_never_publishes(s3, app, exported_once):
    """A run silent for too long is marked failed by the next one; should it wake up, it must not publish."""

    def taken_over(batch: int) -> None:
        with app.app_context():
            db = get_session()
            db.execute(update(ExportRun).where(ExportRun.status == "running").values(status="failed"))
            db.commit()

    stalled = run(app, "delta", hooks=services.Hooks(after_batch=taken_over))
    assert stalled.status == "failed" and "took the lock over" in stalled.error
    assert_failed_and_untouched(app, s3, stalled, exported_once)


def test_the_heartbeat_keeps_the_lock_and_notices_when_it_is_taken_over(app):
    with app.app_context():
        db = get_session()
        held = ExportRun(run_id="20261123T010000Z-beat00", kind="full", requested="full", status="running",
                         started_at=utcnow() - timedelta(minutes=20), heartbeat_at=utcnow() - timedelta(minutes=20),
                         host="h", pid=1, context={})
        db.add(held)
        db.commit()
        heartbeat = services._Heartbeat(db.get_bind(), held.id)
        heartbeat.beat()
        db.refresh(held)
        assert not heartbeat.lost and held.heartbeat_at > utcnow() - timedelta(minutes=1)
        heartbeat.check()
        held.status = "failed"
        db.commit()
        heartbeat.beat()
        assert heartbeat.lost
        with pytest.raises(services.LockLost):
            heartbeat.check()
