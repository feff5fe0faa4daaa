"""The export run: read ready products in keyset batches, write gzip'd JSON Lines parts as they fill, then
``manifest.json``, then ``products/LATEST.json`` — so a PIM following ``LATEST.json`` always finds a whole run.

What the PIM was told about each product is kept in ``pim_export_state`` and changed only by a run that
succeeded, in the transaction that records its success; ``LATEST.json`` is written before that commit.
A failed run therefore leaves both as they were, and the next delta, which compares products with that
state (not with a clock), covers whatever the failed one would have carried. A product that changes
while a run reads is exported as it was read; its state then differs from the product and the next
delta carries it again.
"""
from __future__ import annotations

import csv
import gzip
import hashlib
import io
import json
import logging
import os
import secrets
import socket
import tempfile
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from flask import current_app
from flask_babel import gettext
from sqlalchemy import String, and_, cast, delete, func, insert, or_, select, text, true, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from portal.accounts.models import Merchant
from portal.catalog.models import Product
from portal.db import utcnow
from portal.errors import PortalError
from portal.pim_export import records
from portal.pim_export.models import ExportedProduct, ExportRun
from portal.storage import Storage, StorageError, StorageKeyNotFound, open_storage

log = logging.getLogger(__name__)

LATEST_KEY = "products/LATEST.json"
PART_RECORDS = 100_000
PART_BYTES = 64 * 1024 * 1024  # compressed
BATCH = 10_000
# A running run whose heartbeat is older than this has lost its process: its lock is released.
STALE_AFTER = timedelta(minutes=10)
COMPRESS_LEVEL = 5


class ExportBusy(PortalError):
    status = 409
    code = "pim_export_running"


class ExportFailed(PortalError):
    status = 502
    code = "pim_export_failed"


def signature() -> Any:
    """The product columns whose change means "read this product again", as one text the database builds.

    Built by the database on both sides of the comparison, so it reads the same whatever the driver makes
    of timestamps. Stock and reservations are in it because the record carries what is available.
    """
    return (cast(Product.updated_at, String) + "|" + func.coalesce(cast(Product.readiness_at, String), "") + "|"
            + cast(Product.stock, String) + "|" + cast(Product.reserved, String) + "|"
            + func.coalesce(cast(Product.marketplace_category_id, String), ""))


def exportable() -> Any:
    return and_(Product.readiness == "ready", Merchant.is_active.is_(True))


# --- the lock: one running run -----------------------------------------------------------------


def _release_stale(db: Session) -> None:
    """Mark failed the running runs whose process is gone (same host, pid not alive) or silent for too long."""
    now = utcnow()
    for run in db.scalars(select(ExportRun).where(ExportRun.status == "running")):
        dead = run.host == socket.gethostname() and run.pid and run.pid != os.getpid() and not _alive(run.pid)
        if dead or run.heartbeat_at < now - STALE_AFTER:
            run.status, run.finished_at = "failed", now
            run.error = (f"The run's process (pid {run.pid} on {run.host}) stopped without finishing; "
                         "LATEST.json was left as it was.")
            log.warning("pim export %s abandoned by its process; marked failed", run.run_id)
    db.commit()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _start(db: Session, kind: str, trigger: str, user_id: int | None) -> ExportRun:
    _release_stale(db)
    now = utcnow()
    run = ExportRun(run_id=f"{now:%Y%m%dT%H%M%SZ}-{secrets.token_hex(3)}", kind=kind, requested=kind, trigger=trigger,
                    created_by_id=user_id, status="running", started_at=now, heartbeat_at=now,
                    host=socket.gethostname(), pid=os.getpid(), context={})
    db.add(run)
    try:
        db.commit()
    except IntegrityError:
        db.rollback()
        running = db.scalar(select(ExportRun).where(ExportRun.status == "running"))
        raise ExportBusy(gettext("Another export is running (%(run)s, started %(started)s); this one was not started.",
                                 run=running.run_id if running else "?",
                                 started=records.iso(running.started_at) if running else "?"),
                         details={"running": running.run_id if running else None}) from None
    return run


# --- parts ----------------------------------------------------------------------------------------


class _HashingFile(io.RawIOBase):
    """A file that hashes and counts what is written to it."""

    def __init__(self, path: Path) -> None:
        self._file = path.open("wb")
        self.sha256 = hashlib.sha256()
        self.size = 0

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:  # type: ignore[override]
        self._file.write(data)
        self.sha256.update(data)
        self.size += len(data)
        return len(data)

    def close(self) -> None:
        if not self.closed:
            self._file.close()
        super().close()


@dataclass
class PartInfo:
    key: str
    records: int = 0
    tombstones: int = 0
    bytes: int = 0
    sha256: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {"key": self.key, "records": self.records, "tombstones": self.tombstones, "bytes": self.bytes,
                "sha256": self.sha256}


@dataclass
class PartWriter:
    """Writes lines into gzip'd parts of bounded size in a local directory; each full part is uploaded by a
    background thread while the next one fills (one upload in flight, so disk use stays at two parts)."""

    storage: Storage
    prefix: str
    workdir: Path
    max_records: int = PART_RECORDS
    max_bytes: int = PART_BYTES
    on_part: Callable[[PartInfo], None] | None = None
    parts: list[PartInfo] = field(default_factory=list)
    _current: PartInfo | None = None
    _raw: _HashingFile | None = None
    _gzip: gzip.GzipFile | None = None
    _lines: int = 0
    _executor: ThreadPoolExecutor = field(default_factory=lambda: ThreadPoolExecutor(1, thread_name_prefix="pim-upload"))
    _pending: Future[None] | None = None

    def write(self, lines: list[bytes], *, tombstones: bool = False) -> None:
        for line in lines:
            if self._gzip is None:
                self._open()
            assert self._gzip is not None and self._current is not None and self._raw is not None
            self._gzip.write(line)
            self._gzip.write(b"\n")
            if tombstones:
                self._current.tombstones += 1
            else:
                self._current.records += 1
            self._lines += 1
            if self._lines >= self.max_records or self._raw.size >= self.max_bytes:
                self._seal()

    def _open(self) -> None:
        key = f"{self.prefix}/part-{len(self.parts):05d}.jsonl.gz"
        self._current = PartInfo(key)
        self._raw = _HashingFile(self.workdir / f"part-{len(self.parts):05d}.jsonl.gz")
        # mtime 0 and no file name: the same lines make the same bytes.
        self._gzip = gzip.GzipFile(filename="", mode="wb", fileobj=self._raw, compresslevel=COMPRESS_LEVEL, mtime=0)
        self._lines = 0

    def _seal(self) -> None:
        assert self._gzip is not None and self._raw is not None and self._current is not None
        self._gzip.close()
        self._raw.close()
        part, path = self._current, Path(self._raw._file.name)
        part.bytes, part.sha256 = self._raw.size, self._raw.sha256.hexdigest()
        self._gzip = self._raw = self._current = None
        self.parts.append(part)
        self._wait()
        self._pending = self._executor.submit(self._upload, part, path)

    def _upload(self, part: PartInfo, path: Path) -> None:
        self.storage.put_file(part.key, path, content_type="application/gzip")
        path.unlink(missing_ok=True)
        if self.on_part is not None:
            self.on_part(part)

    def _wait(self) -> None:
        if self._pending is not None:
            pending, self._pending = self._pending, None
            pending.result()  # an upload's failure stops the run here

    def finish(self) -> list[PartInfo]:
        if self._gzip is not None:
            self._seal()
        self._wait()
        return self.parts

    def close(self) -> None:
        if self._gzip is not None:
            self._gzip.close()
            assert self._raw is not None
            self._raw.close()
        self._executor.shutdown(wait=True, cancel_futures=True)


# --- the state file: what this run told the PIM, applied to pim_export_state on success ------------------


class _StateFile:
    """CSV lines ``product_id, merchant_id, sku, signature, content_hash, deleted`` on local disk."""

    COLUMNS = ("product_id", "merchant_id", "sku", "signature", "content_hash", "deleted")

    def __init__(self, path: Path) -> None:
        self.path = path
        self._handle = path.open("w", newline="", encoding="utf-8")
        self._writer = csv.writer(self._handle)
        self.rows = 0

    def add(self, rows: list[tuple[Any, ...]]) -> None:
        self._writer.writerows(rows)
        self.rows += len(rows)

    def close(self) -> None:
        if not self._handle.closed:
            self._handle.close()

    def chunks(self, size: int = 20_000) -> Iterator[list[tuple[int, int, str, str, str, bool]]]:
        with self.path.open(newline="", encoding="utf-8") as handle:
            chunk = []
            for row in csv.reader(handle):
                chunk.append((int(row[0]), int(row[1]), row[2], row[3], row[4], row[5] == "1"))
                if len(chunk) >= size:
                    yield chunk
                    chunk = []
            if chunk:
                yield chunk


def _apply_state(db: Session, state: _StateFile, *, full: bool) -> None:
    """Make pim_export_state what this run delivered (no commit): a full replaces it, a delta updates its rows."""
    table = ExportedProduct.__table__
    if full:
        db.execute(delete(ExportedProduct))
    if db.get_bind().dialect.name == "postgresql":
        db.execute(text("CREATE TEMP TABLE IF NOT EXISTS pim_state_staging (product_id integer, merchant_id integer, "
                        "sku text, signature text, content_hash text, deleted boolean) ON COMMIT DROP"))
        db.execute(text("TRUNCATE pim_state_staging"))
        cursor = db.connection().connection.driver_connection.cursor()
        with cursor.copy("COPY pim_state_staging FROM STDIN WITH (FORMAT csv)") as copy, \
                state.path.open("rb") as handle:
            while block := handle.read(1024 * 1024):
                copy.write(block)
        if not full:
            db.execute(text("DELETE FROM pim_export_state AS s USING pim_state_staging AS t "
                            "WHERE s.product_id = t.product_id"))
        db.execute(text("INSERT INTO pim_export_state (product_id, merchant_id, sku, signature, content_hash) "
                        "SELECT product_id, merchant_id, sku, signature, content_hash FROM pim_state_staging "
                        "WHERE NOT deleted"))
        return
    for chunk in state.chunks():
        if not full:
            ids = [row[0] for row in chunk]
            db.execute(delete(ExportedProduct).where(ExportedProduct.product_id.in_(ids)))
        kept = [dict(zip(("product_id", "merchant_id", "sku", "signature", "content_hash"), row[:5]))
                for row in chunk if not row[5]]
        if kept:
            db.execute(insert(table), kept)


# --- the run --------------------------------------------------------------------------------------------


@dataclass
class Hooks:
    """Points where tests step in: after each batch is read, and after the parts before the manifest."""

    after_batch: Callable[[int], None] | None = None
    before_manifest: Callable[[], None] | None = None


def export_storage() -> Storage:
    app = current_app
    return open_storage(app.config["PIM_EXPORT_URL"], endpoint_url=app.config["S3_ENDPOINT_URL"])


def run_export(db: Session, kind: str, *, trigger: str = "cli", user_id: int | None = None,
               storage: Storage | None = None, part_records: int = PART_RECORDS, part_bytes: int = PART_BYTES,
               batch: int = BATCH, hooks: Hooks | None = None) -> ExportRun:
    """Run one export (``full`` or ``delta``) and return its run record, succeeded or failed.

    Raises ExportBusy when another run holds the lock; any other failure is recorded on the run.
    """
    if kind not in ("full", "delta"):
        raise ValueError(f"kind must be full or delta, not {kind!r}")
    run = _start(db, kind, trigger, user_id)
    own_storage = storage is None
    written: list[str] = []
    latest_written = False
    try:
        storage = storage or export_storage()
        with tempfile.TemporaryDirectory(prefix="portal-pim-") as workdir:
            latest_written = _run(db, run, storage, Path(workdir), part_records, part_bytes, batch, hooks or Hooks(),
                                  written)
    except Exception as exc:
        log.exception("pim export %s failed", run.run_id)
        db.rollback()
        message = str(exc) if isinstance(exc, (StorageError, PortalError)) else f"{type(exc).__name__}: {exc}"
        run = db.get(ExportRun, run.id)
        assert run is not None
        run.status, run.finished_at, run.error = "failed", utcnow(), message[:4000]
        db.commit()
        if storage is not None and not latest_written:
            _clean_up(storage, written)
    finally:
        if own_storage and storage is not None:
            storage.close()
    return run


def _clean_up(storage: Storage, keys: list[str]) -> None:
    """Best effort: a failed run's parts and manifest are never read by the PIM, so they are removed."""
    for key in keys:
        try:
            storage.delete(key)
        except StorageError:
            log.warning("could not remove %s of a failed export", key)


def _read_latest(storage: Storage) -> dict[str, Any] | None:
    try:
        raw = storage.get_bytes(LATEST_KEY)
    except StorageKeyNotFound:
        return None
    try:
        latest = json.loads(raw)
    except ValueError:
        return {}
    return latest if isinstance(latest, dict) else {}


def _run(db: Session, run: ExportRun, storage: Storage, workdir: Path, part_records: int, part_bytes: int,
         batch: int, hooks: Hooks, written: list[str]) -> bool:
    # Read LATEST.json first: an unreachable store or a missing bucket stops the run before any work.
    latest = _read_latest(storage)
    previous = db.scalar(select(ExportRun).where(ExportRun.status == "succeeded")
                         .order_by(ExportRun.finished_at.desc(), ExportRun.id.desc()).limit(1))
    if run.kind == "delta":
        if previous is None:
            run.kind, run.reason = "full", gettext("No earlier export succeeded: a delta has nothing to follow.")
        elif latest is None or latest.get("run_id") != previous.run_id:
            run.kind = "full"
            run.reason = gettext("LATEST.json does not name the last successful run (%(run)s): a full export "
                                 "sets the PIM straight.", run=previous.run_id)
    full = run.kind == "full"
    if not full:
        assert previous is not None
        run.previous_run_id, run.since = previous.run_id, previous.started_at
    context = records.Context.load(db)
    run.context = context.fingerprints()
    db.commit()

    prefix = f"products/{run.kind}/{run.started_at:%Y-%m-%d}/{run.run_id}"
    state = _StateFile(workdir / "state.csv")
    writer = PartWriter(storage, prefix, workdir, part_records, part_bytes, on_part=lambda part: written.append(part.key))
    try:
        if full:
            _export_all(db, run, context, writer, state, hooks, batch)
        else:
            assert previous is not None
            _export_changes(db, run, context, previous, writer, state, hooks, batch)
        parts = writer.finish()
    finally:
        writer.close()
        state.close()

    if hooks.before_manifest is not None:
        hooks.before_manifest()
    manifest_key = f"{prefix}/manifest.json"
    generated_at = utcnow()
    manifest = {
        "schema": records.SCHEMA,
        "schema_version": records.SCHEMA_VERSION,
        "run_id": run.run_id,
        "kind": run.kind,
        "generated_at": records.iso(generated_at),
        "since": records.iso(run.since) if run.since else None,
        "previous": ({"run_id": previous.run_id, "manifest": previous.manifest_key} if not full and previous else None),
        "records": sum(part.records for part in parts),
        "tombstones": sum(part.tombstones for part in parts),
        "files": [part.as_dict() for part in parts],
    }
    written.append(manifest_key)
    storage.put(manifest_key, json.dumps(manifest, indent=2).encode(), content_type="application/json")

    _apply_state(db, state, full=full)
    run.status, run.finished_at, run.heartbeat_at = "succeeded", utcnow(), utcnow()
    run.records, run.tombstones = manifest["records"], manifest["tombstones"]
    run.files, run.bytes, run.manifest_key = len(parts), sum(part.bytes for part in parts), manifest_key
    db.flush()
    latest_doc = {"kind": run.kind, "run_id": run.run_id, "manifest": manifest_key,
                  "generated_at": manifest["generated_at"]}
    storage.put(LATEST_KEY, json.dumps(latest_doc, indent=2).encode(), content_type="application/json")
    # From here the PIM may read the new run. Should this commit fail, the next run finds LATEST.json naming a
    # run the database does not count as successful, and exports in full.
    db.commit()
    return True


def _heartbeat(db: Session, run: ExportRun) -> None:
    db.execute(update(ExportRun).where(ExportRun.id == run.id).values(heartbeat_at=utcnow()))
    db.commit()


def _columns() -> list[Any]:
    return [getattr(Product, name) for name in records.COLUMNS] + [signature().label("signature")]


def _export_all(db: Session, run: ExportRun, context: records.Context, writer: PartWriter, state: _StateFile,
                hooks: Hooks, batch: int) -> None:
    last = 0
    batches = 0
    while True:
        rows = db.execute(select(*_columns()).join(Merchant, Merchant.id == Product.merchant_id)
                          .where(exportable(), Product.id > last).order_by(Product.id).limit(batch)).tuples().all()
        if not rows:
            return
        _write_records(rows, context, writer, state, known={})
        last = rows[-1][0]
        batches += 1
        _heartbeat(db, run)
        if hooks.after_batch is not None:
            hooks.after_batch(batches)


def _write_records(rows: list[Any], context: records.Context, writer: PartWriter, state: _StateFile,
                   known: dict[int, str]) -> None:
    """Write the records of ``rows`` whose content the PIM does not have yet (``known``: id -> hash it has)."""
    lines: list[bytes] = []
    changes: list[tuple[Any, ...]] = []
    for row in rows:
        line, content_hash = records.build(row[:-1], context)
        if known.get(row[0]) != content_hash:
            lines.append(line)
        changes.append((row[0], row[1], row[2], row[-1], content_hash, 0))
    writer.write(lines)
    state.add(changes)


def _export_changes(db: Session, run: ExportRun, context: records.Context, previous: ExportRun,
                    writer: PartWriter, state: _StateFile, hooks: Hooks, batch: int) -> None:
    """A delta: tombstones first (a deleted product's SKU may be in use again by a new one), then records."""
    gone = db.execute(
        select(ExportedProduct.product_id, ExportedProduct.merchant_id, ExportedProduct.sku)
        .outerjoin(Product, Product.id == ExportedProduct.product_id)
        .outerjoin(Merchant, Merchant.id == Product.merchant_id)
        .where(or_(Product.id.is_(None), Product.readiness != "ready", Merchant.is_active.is_not(True)))
        .order_by(ExportedProduct.product_id)).tuples().all()
    for start in range(0, len(gone), batch):
        chunk = gone[start:start + batch]
        writer.write([records.tombstone(merchant_id, sku) for _id, merchant_id, sku in chunk], tombstones=True)
        state.add([(product_id, merchant_id, sku, "", "", 1) for product_id, merchant_id, sku in chunk])

    taxonomy_changed, merchants_changed = context.changed_since(previous.context or {})
    differs = or_(ExportedProduct.product_id.is_(None), ExportedProduct.signature != signature())
    if taxonomy_changed:
        differs = true()
    elif merchants_changed:
        differs = or_(differs, Product.merchant_id.in_(sorted(merchants_changed)))
    candidates = db.execute(
        select(Product.id).join(Merchant, Merchant.id == Product.merchant_id)
        .outerjoin(ExportedProduct, ExportedProduct.product_id == Product.id)
        .where(exportable(), differs).order_by(Product.id)).scalars().all()
    batches = 0
    for start in range(0, len(candidates), batch):
        ids = candidates[start:start + batch]
        rows = db.execute(select(*_columns()).join(Merchant, Merchant.id == Product.merchant_id)
                          .where(exportable(), Product.id.in_(ids)).order_by(Product.id)).tuples().all()
        known = dict(db.execute(select(ExportedProduct.product_id, ExportedProduct.content_hash)
                                .where(ExportedProduct.product_id.in_(ids))).tuples().all())
        _write_records(rows, context, writer, state, known)
        batches += 1
        _heartbeat(db, run)
        if hooks.after_batch is not None:
            hooks.after_batch(batches)


# --- reading back ---------------------------------------------------------------------------------------


def latest_successful(db: Session) -> ExportRun | None:
    return db.scalar(select(ExportRun).where(ExportRun.status == "succeeded")
                     .order_by(ExportRun.finished_at.desc(), ExportRun.id.desc()).limit(1))


def running(db: Session) -> ExportRun | None:
    return db.scalar(select(ExportRun).where(ExportRun.status == "running"))


def ready_count(db: Session) -> int:
    return db.scalar(select(func.count()).select_from(Product).join(Merchant, Merchant.id == Product.merchant_id)
                     .where(exportable())) or 0


def read_manifest(run: ExportRun) -> bytes:
    if not run.manifest_key:
        raise StorageKeyNotFound(f"run {run.run_id} wrote no manifest")
    storage = export_storage()
    try:
        return storage.get_bytes(run.manifest_key)
    finally:
        storage.close()


def stale_before() -> datetime:
    return utcnow() - STALE_AFTER
