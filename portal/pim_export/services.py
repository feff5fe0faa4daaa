"""The export run: read ready products in batches by primary key, write gzip'd JSON Lines parts as they fill,
then ``manifest.json``, then ``products/LATEST.json`` — so a PIM following ``LATEST.json`` always finds a
whole run.

What the PIM was told about each product is kept in ``pim_export_state`` and changed only by a run that
succeeded, in the transaction that records its success; ``LATEST.json`` is written before that commit.
A failed run therefore leaves both as they were, and the next delta, which compares products with that
state (not with a clock), covers whatever the failed one would have carried. A product that changes
while a run reads is exported as it was read; its state then differs from the product and the next
delta carries it again.
"""
from __future__ import annotations

import collections
import contextlib
import csv
import gzip
import hashlib
import io
import itertools
import json
import logging
import multiprocessing
import os
import queue
import secrets
import socket
import tempfile
import threading
from array import array
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from flask import current_app
from flask_babel import gettext
from sqlalchemy import (
    ARRAY, Integer, String, Text, and_, any_, bindparam, case, cast, delete, func, or_, select, text, true, type_coerce,
    update,
)
from sqlalchemy.engine import Connection
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
PART_BYTES = 64 * 1024 * 1024  # of JSON, before gzip
BATCH = 10_000
# A running run whose heartbeat is older than this has lost its process: its lock is released.
STALE_AFTER = timedelta(minutes=10)
COMPRESS_LEVEL = 1  # gzip -1: parts 15 % larger than -6, at a third of its time


class ExportBusy(PortalError):
    status = 409
    code = "pim_export_running"


class ExportFailed(PortalError):
    status = 502
    code = "pim_export_failed"


# Product columns whose change means "read this product again", and where pim_export_state keeps them. Stock and
# reservations are here because a record carries what is available; readiness_at moves with readiness,
# missing attributes and the marketplace category.
VECTOR = (("updated_at", "updated_at"), ("readiness_at", "readiness_at"), ("stock", "stock"), ("reserved", "reserved"),
          ("marketplace_category_id", "category_id"))


def _raw(column: Any) -> Any:
    """The column as the driver gives it, without the model's type processing (SQLite: the stored text)."""
    return type_coerce(column, String())


def vector_differs() -> Any:
    return or_(*(getattr(ExportedProduct, kept).is_distinct_from(getattr(Product, name)) for name, kept in VECTOR))


def exportable() -> Any:
    return and_(Product.readiness == "ready", Merchant.is_active.is_(True))


# --- the lock: one running run -----------------------------------------------------------------


def _release_stale(db: Session) -> None:
    """Mark failed the running runs that gave no sign of life for STALE_AFTER: their process is gone.

    Only the heartbeat counts: a pid says nothing across hosts or containers. Should such a run still be
    alive after all, it finds its lock lost at its next heartbeat or when it would publish, and stops.
    """
    now = utcnow()
    for run_id, host, pid in db.execute(select(ExportRun.run_id, ExportRun.host, ExportRun.pid).where(
            ExportRun.status == "running", ExportRun.heartbeat_at < now - STALE_AFTER)).tuples().all():
        db.execute(update(ExportRun).where(ExportRun.run_id == run_id, ExportRun.status == "running",
                                           ExportRun.heartbeat_at < now - STALE_AFTER).values(
            status="failed", finished_at=now,
            error=gettext("The run's process (pid %(pid)s on %(host)s) gave no sign of life for %(minutes)s minutes; "
                          "LATEST.json was left as it was.", pid=pid, host=host, minutes=STALE_AFTER.seconds // 60)))
        log.warning("pim export %s abandoned by its process; marked failed", run_id)
    db.commit()


class LockLost(ExportFailed):
    """Another run found this one silent and took over; this one must not publish."""


class _Heartbeat:
    """Keeps the run's lock alive from a thread of its own, whatever the run is busy with, and notices when
    another run has taken the lock over (the run then stops at its next batch, and never publishes)."""

    INTERVAL = 30.0

    def __init__(self, bind: Any, run_key: int) -> None:
        self.bind, self.run_key = bind, run_key
        self.lost = False
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, name="pim-heartbeat", daemon=True)

    def __enter__(self) -> _Heartbeat:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _beat(self) -> None:
        while not self._stop.wait(self.INTERVAL):
            try:
                self.beat()
            except Exception:  # noqa: BLE001 - a database hiccup; the next beat tries again
                log.warning("pim export heartbeat failed", exc_info=True)

    def beat(self) -> None:
        with Session(self.bind) as session:
            changed = session.execute(update(ExportRun).where(
                ExportRun.id == self.run_key, ExportRun.status == "running").values(heartbeat_at=utcnow())).rowcount
            session.commit()
        if changed == 0:
            self.lost = True

    def check(self) -> None:
        if self.lost:
            raise LockLost(gettext("This run was silent for too long and another run took the lock over; it "
                                   "stopped without publishing."))


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
        self.name = str(path)
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


class PartWriter:
    """Cuts lines into parts of at most ``max_records`` lines or ``max_bytes`` of JSON, whichever comes first.

    The caller's thread only joins lines; a compressor thread gzips them into a local file and an uploader
    thread sends each sealed part while the next one fills. At most one upload is in flight, so local disk
    holds two parts at most, and memory a few chunks of lines.
    """

    def __init__(self, storage: Storage, prefix: str, workdir: Path, max_records: int = PART_RECORDS,
                 max_bytes: int = PART_BYTES, on_part: Callable[[PartInfo], None] | None = None) -> None:
        self.storage, self.prefix, self.workdir = storage, prefix, workdir
        self.max_records, self.max_bytes, self.on_part = max_records, max_bytes, on_part
        self.parts: list[PartInfo] = []
        self._current: PartInfo | None = None
        self._lines = self._bytes = 0
        self._queue: queue.Queue[tuple[str, Any]] = queue.Queue(maxsize=8)
        self._error: BaseException | None = None
        self._uploader = ThreadPoolExecutor(1, thread_name_prefix="pim-upload")
        self._upload: Future[None] | None = None
        self._compressor = threading.Thread(target=self._compress, name="pim-gzip", daemon=True)
        self._compressor.start()

    # caller's side
    def write(self, lines: list[bytes], *, tombstones: bool = False) -> None:
        """Append lines, a thousand at a time, starting a new part when one reaches its bound."""
        self._raise()
        start = 0
        while start < len(lines):
            if self._current is None:
                self._current = PartInfo(f"{self.prefix}/part-{len(self.parts):05d}.jsonl.gz")
                self.parts.append(self._current)
                self._lines = self._bytes = 0
                self._queue.put(("open", self._current))
            chunk = lines[start:start + min(1000, self.max_records - self._lines)]
            data = b"\n".join(chunk) + b"\n"
            while len(chunk) > 1 and self._bytes + len(data) > self.max_bytes:  # fill the part up to its bound
                chunk = chunk[:len(chunk) // 2]
                data = b"\n".join(chunk) + b"\n"
            if self._lines and self._bytes + len(data) > self.max_bytes:  # not even one more line fits
                self._queue.put(("seal", self._current))
                self._current = None
                continue
            self._queue.put(("data", data))
            start += len(chunk)
            if tombstones:
                self._current.tombstones += len(chunk)
            else:
                self._current.records += len(chunk)
            self._lines += len(chunk)
            self._bytes += len(data)
            if self._lines >= self.max_records or self._bytes >= self.max_bytes:
                self._queue.put(("seal", self._current))
                self._current = None

    def finish(self) -> list[PartInfo]:
        """Seal the last part, wait for every upload, and return the parts (with sizes and hashes)."""
        if self._current is not None:
            self._queue.put(("seal", self._current))
            self._current = None
        self._stop()
        self._raise()
        return self.parts

    def close(self) -> None:
        self._stop()
        self._uploader.shutdown(wait=True, cancel_futures=True)

    def _stop(self) -> None:
        if self._compressor.is_alive():
            self._queue.put(("stop", None))
            self._compressor.join()
        if self._upload is not None:
            self._settle_upload()

    def _raise(self) -> None:
        if self._error is not None:
            # A new exception: the stored one must not gather this thread's frames (which hold the writer).
            error = self._error
            message = str(error) if isinstance(error, StorageError) else f"{type(error).__name__}: {error}"
            raise StorageError(message) from error

    # compressor thread
    def _compress(self) -> None:
        raw: _HashingFile | None = None
        packer: gzip.GzipFile | None = None
        while True:
            command, value = self._queue.get()
            if command == "stop":
                if packer is not None:
                    packer.close()
                if raw is not None:
                    raw.close()
                return
            if self._error is not None:
                continue  # drain, so the caller never blocks on a full queue
            try:
                if command == "open":
                    raw = _HashingFile(self.workdir / value.key.rsplit("/", 1)[1])
                    # mtime 0 and no file name: the same lines make the same bytes.
                    packer = gzip.GzipFile(filename="", mode="wb", fileobj=raw, compresslevel=COMPRESS_LEVEL, mtime=0)
                elif command == "data":
                    assert packer is not None
                    packer.write(value)
                elif command == "seal":
                    assert packer is not None and raw is not None
                    packer.close()
                    raw.close()
                    value.bytes, value.sha256 = raw.size, raw.sha256.hexdigest()
                    path = Path(raw.name)
                    packer = raw = None
                    if self._upload is not None:
                        self._settle_upload()
                    self._upload = self._uploader.submit(self._send, value, path)
            except BaseException as exc:  # noqa: BLE001 - handed to the caller's thread
                self._error = exc

    def _settle_upload(self) -> None:
        upload, self._upload = self._upload, None
        assert upload is not None
        try:
            upload.result()
        except BaseException as exc:  # noqa: BLE001 - handed to the caller's thread
            self._error = self._error or exc

    # uploader thread
    def _send(self, part: PartInfo, path: Path) -> None:
        self.storage.put_file(part.key, path, content_type="application/gzip")
        path.unlink(missing_ok=True)
        if self.on_part is not None:
            self.on_part(part)


# --- the state file: what this run told the PIM, applied to pim_export_state on success ------------------


STATE_COLUMNS = ("product_id", "merchant_id", "sku", "updated_at", "readiness_at", "stock", "reserved", "category_id",
                 "content_hash")
_CSV_SPECIAL = frozenset(',"\r\n\\')


def _csv_text(value: str) -> str:
    return f'"{value.replace(chr(34), chr(34) * 2)}"' if not _CSV_SPECIAL.isdisjoint(value) else value


def _csv_value(value: Any) -> str:
    """An empty cell is NULL to COPY (and to chunks()); datetimes as the driver gave them, in their own text."""
    return "" if value is None else _csv_text(str(value))


class _StateFile:
    """CSV lines of STATE_COLUMNS, and for a delta ``deleted``, on local disk (a full export's file goes
    straight into the table by COPY)."""

    def __init__(self, path: Path, *, full: bool) -> None:
        self.path, self.full = path, full
        self._handle = path.open("w", encoding="utf-8", newline="")

    def add_text(self, lines: str) -> None:
        """Lines made by state_lines()."""
        self._handle.write(lines)

    def add_deleted(self, gone: list[tuple[int, int, str]]) -> None:
        self._handle.write("".join(f"{product_id},{merchant_id},{_csv_text(sku)},,,0,0,,,1\n"
                                   for product_id, merchant_id, sku in gone))

    def close(self) -> None:
        if not self._handle.closed:
            self._handle.close()

    def chunks(self, size: int = 20_000) -> Iterator[list[dict[str, Any]]]:
        """The rows as dicts for an INSERT (empty cells are NULL, as COPY reads them)."""
        with self.path.open(newline="", encoding="utf-8") as handle:
            chunk = []
            for row in csv.reader(handle):
                values = dict(zip(STATE_COLUMNS, [cell if cell != "" else None for cell in row]))
                values["deleted"] = len(row) > len(STATE_COLUMNS) and row[-1] == "1"
                chunk.append(values)
                if len(chunk) >= size:
                    yield chunk
                    chunk = []
            if chunk:
                yield chunk

    def copy_into(self, db: Session, table: str, columns: str) -> None:
        cursor = db.connection().connection.driver_connection.cursor()
        with cursor.copy(f"COPY {table} ({columns}) FROM STDIN WITH (FORMAT csv)") as copy, self.path.open("rb") as handle:
            while block := handle.read(1024 * 1024):
                copy.write(block)


def state_lines(rows: list[Any], hashes: list[str], *, full: bool) -> str:
    """_StateFile lines for record rows (see _columns): their change columns as read, and content hashes."""
    tail = "\n" if full else ",0\n"
    return "".join(f"{row[0]},{row[1]},{_csv_text(row[2])},{_csv_value(row[13])},{_csv_value(row[15])},{row[9]},"
                   f"{row[10]},{_csv_value(row[14])},{content_hash}{tail}" for row, content_hash in zip(rows, hashes))


def _apply_state(db: Session, state: _StateFile) -> None:
    """Make pim_export_state what this run delivered (no commit): a full replaces it, a delta updates its rows."""
    columns = ", ".join(STATE_COLUMNS)
    if db.get_bind().dialect.name == "postgresql":
        if state.full:
            db.execute(text("TRUNCATE pim_export_state"))  # the export's own table; the run holds the lock
            state.copy_into(db, "pim_export_state", columns)
            db.execute(text("ANALYZE pim_export_state"))  # the next delta's plan counts on fresh statistics
            return
        db.execute(text("CREATE TEMP TABLE IF NOT EXISTS pim_state_staging (product_id integer, merchant_id integer, "
                        "sku text, updated_at timestamptz, readiness_at timestamptz, stock integer, reserved integer, "
                        "category_id integer, content_hash text, deleted boolean) ON COMMIT DROP"))
        db.execute(text("TRUNCATE pim_state_staging"))
        state.copy_into(db, "pim_state_staging", columns + ", deleted")
        db.execute(text("ANALYZE pim_state_staging"))  # so the DELETE below probes the index, not a scan
        db.execute(text("DELETE FROM pim_export_state AS s USING pim_state_staging AS t WHERE s.product_id = t.product_id"))
        db.execute(text(f"INSERT INTO pim_export_state ({columns}) SELECT DISTINCT ON (product_id) {columns} "
                        "FROM pim_state_staging WHERE NOT deleted ORDER BY product_id"))
        return
    if state.full:
        db.execute(delete(ExportedProduct))
    # Plain SQL, so the values go in exactly as they were read (no type processing to reformat them).
    insert_row = text(f"INSERT INTO pim_export_state ({columns}) VALUES ({', '.join(':' + c for c in STATE_COLUMNS)})")
    for chunk in state.chunks():
        if not state.full:
            db.execute(delete(ExportedProduct).where(ExportedProduct.product_id.in_([row["product_id"] for row in chunk])))
        kept = [row for row in chunk if not row["deleted"]]
        if kept:
            db.execute(insert_row, kept)


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
    run_key, run_name = run.id, run.run_id  # readable after a rollback too
    own_storage = storage is None
    written: list[str] = []
    try:
        storage = storage or export_storage()
        with tempfile.TemporaryDirectory(prefix="portal-pim-") as workdir:
            _run(db, run, storage, Path(workdir), part_records, part_bytes, batch, hooks or Hooks(), written)
        db.refresh(run)  # its success was written by a guarded UPDATE, not through the object
    except Exception as exc:
        log.exception("pim export %s failed", run_name)
        db.rollback()
        message = str(exc) if isinstance(exc, (StorageError, PortalError)) else f"{type(exc).__name__}: {exc}"
        run = db.get(ExportRun, run_key)
        assert run is not None
        run.status, run.finished_at, run.error = "failed", utcnow(), message[:4000]
        db.commit()
        if storage is not None:
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
         batch: int, hooks: Hooks, written: list[str]) -> None:
    # Read LATEST.json first: an unreachable store or a missing bucket stops the run before any work.
    latest = _read_latest(storage)
    previous = latest_successful(db)
    if run.kind == "delta":
        if previous is None:
            run.kind, run.reason = "full", "no_previous"
        elif latest is None or latest.get("run_id") != previous.run_id:
            run.kind = "full"
            run.reason = f"latest_mismatch {previous.run_id}"
    full = run.kind == "full"
    if not full:
        assert previous is not None
        run.previous_run_id, run.since = previous.run_id, previous.started_at
    context = records.Context.load(db)
    run.context = context.fingerprints()
    db.commit()

    prefix = f"products/{run.kind}/{run.started_at:%Y-%m-%d}/{run.run_id}"
    state = _StateFile(workdir / "state.csv", full=full)
    writer = PartWriter(storage, prefix, workdir, part_records, part_bytes, on_part=lambda part: written.append(part.key))
    with _Heartbeat(db.get_bind(), run.id) as heartbeat:
        try:
            if full:
                _export_all(db, context, writer, state, hooks, batch, heartbeat)
            else:
                assert previous is not None
                _export_changes(db, context, previous, writer, state, hooks, batch, heartbeat)
            parts = writer.finish()
        finally:
            writer.close()
            state.close()

        if hooks.before_manifest is not None:
            hooks.before_manifest()
        heartbeat.check()
        manifest_key = f"{prefix}/manifest.json"
        manifest = {
            "schema": records.SCHEMA,
            "schema_version": records.SCHEMA_VERSION,
            "run_id": run.run_id,
            "kind": run.kind,
            "generated_at": records.iso(utcnow()),
            "since": records.iso(run.since) if run.since else None,
            "previous": {"run_id": previous.run_id, "manifest": previous.manifest_key} if not full and previous else None,
            "records": sum(part.records for part in parts),
            "tombstones": sum(part.tombstones for part in parts),
            "files": [part.as_dict() for part in parts],
        }
        written.append(manifest_key)
        storage.put(manifest_key, json.dumps(manifest, indent=2).encode(), content_type="application/json")
        heartbeat.check()

    # Publishing: the state and the run's success in one transaction, LATEST.json written just before its commit.
    _apply_state(db, state)
    now = utcnow()
    # Only while this run still holds the lock (status running): a run another one took over never publishes.
    # On PostgreSQL the row stays locked until the commit, so no other run can take it over meanwhile.
    held = db.execute(update(ExportRun).where(ExportRun.id == run.id, ExportRun.status == "running").values(
        status="succeeded", finished_at=now, heartbeat_at=now, records=manifest["records"],
        tombstones=manifest["tombstones"], files=len(parts), bytes=sum(part.bytes for part in parts),
        manifest_key=manifest_key)).rowcount
    if held != 1:
        raise LockLost(gettext("This run was silent for too long and another run took the lock over; it "
                               "stopped without publishing."))
    latest_doc = {"kind": run.kind, "run_id": run.run_id, "manifest": manifest_key,
                  "generated_at": manifest["generated_at"]}
    # Should this write fail after all (an answer lost on the way back), LATEST.json may name this run: its
    # files must then stay, so a failure from here on removes nothing.
    written.clear()
    storage.put(LATEST_KEY, json.dumps(latest_doc, indent=2).encode(), content_type="application/json")
    # From here the PIM may read the new run. Should this commit fail, the next run finds LATEST.json naming a
    # run the database does not count as successful, and exports in full.
    db.commit()


def _columns() -> list[Any]:
    """The record's columns, then readiness_at: price and the JSON ones as the database's text (orjson parses
    them faster), the change columns as the driver gives them (they go back into pim_export_state as they are)."""
    special = {"price": cast(Product.price, String), "images": cast(Product.images, Text),
               "attributes": cast(Product.attributes, Text), "updated_at": _raw(Product.updated_at)}
    return [special.get(name, getattr(Product, name)) for name in records.COLUMNS] + [_raw(Product.readiness_at)]


# --- reading and building, in worker threads or processes -----------------------------------------------

# From this many products on, records are built in worker processes (PIM_EXPORT_WORKERS) rather than threads.
PROCESS_THRESHOLD = 50_000


@dataclass(frozen=True)
class _Job:
    """One batch: a range of product ids [low, high) of a full export, or a delta's chosen ids."""

    full: bool
    low: int = 0
    high: int = 0
    ids: tuple[int, ...] = ()


@dataclass
class _Done:
    lines: list[bytes]
    state: str


class _Builder:
    """Builds batches with one run's context on connections of its own: one per thread of this process, or
    one in each worker process (made there by _init_process)."""

    def __init__(self, context: records.Context, bind: Any) -> None:
        self.context, self.bind = context, bind
        self._local = threading.local()
        self._opened: list[Connection] = []
        self._lock = threading.Lock()

    def _connection(self) -> Connection:
        connection = getattr(self._local, "connection", None)
        if connection is None:
            connection = self._local.connection = self.bind.connect()
            with self._lock:
                self._opened.append(connection)
        return connection

    def close(self) -> None:
        with self._lock:
            opened, self._opened = self._opened, []
        for connection in opened:
            connection.close()

    def build(self, job: _Job) -> _Done:
        """Read a batch and build its records and state lines."""
        connection = self._connection()
        try:
            chosen = (and_(Product.id >= job.low, Product.id < job.high) if job.full
                      else _among(Product.id, list(job.ids), connection))
            rows = connection.execute(select(*_columns()).join(Merchant, Merchant.id == Product.merchant_id)
                                      .where(exportable(), chosen).order_by(Product.id)).all()
            known: dict[int, str] = {}
            if not job.full:
                known = dict(connection.execute(select(ExportedProduct.product_id, ExportedProduct.content_hash).where(
                    _among(ExportedProduct.product_id, list(job.ids), connection))).tuples().all())
        finally:
            connection.rollback()  # no snapshot held between batches
        context, build = self.context, records.build
        lines: list[bytes] = []
        hashes: list[str] = []
        for row in rows:
            line, content_hash = build(row, context)
            hashes.append(content_hash)
            if known.get(row[0]) != content_hash:
                lines.append(line)
        return _Done(lines, state_lines(rows, hashes, full=job.full))


_process_builder: list[_Builder] = []  # in a worker process: the builder _init_process made


def _init_process(url: str, context: records.Context) -> None:
    from portal.db import make_engine

    _process_builder[:] = [_Builder(context, make_engine(url))]


def _build_in_process(job: _Job) -> _Done:
    return _process_builder[0].build(job)


def _run_jobs(db: Session, context: records.Context, jobs: Iterable[_Job], *, processes: bool) -> Iterator[_Done]:
    """Yield each job's result in order, a few jobs running ahead.

    Small runs: two threads of this process (one reads while the other builds). Large runs: a thread of this
    process takes every (workers + 1)-th job and worker processes the others, so every core builds.
    """
    builder = _Builder(context, db.get_bind())
    local = ThreadPoolExecutor(2 if not processes else 1, thread_name_prefix="pim-build")
    workers = current_app.config.get("PIM_EXPORT_WORKERS", 0) if processes else 0
    remote: Any = None
    if workers > 0 and not multiprocessing.current_process().daemon:  # Celery's prefork workers may not fork
        url = db.get_bind().url.render_as_string(hide_password=False)
        # "spawn": a fresh interpreter, nothing inherited from a threaded web or job process.
        remote = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"),
                                     initializer=_init_process, initargs=(url, context))
    cycle = workers + 1 if remote is not None else 1
    pending: collections.deque[Future[_Done]] = collections.deque()
    numbered = enumerate(jobs)

    def submit(count: int) -> None:
        for number, job in itertools.islice(numbered, count):
            if number % cycle == 0:
                pending.append(local.submit(builder.build, job))
            else:
                pending.append(remote.submit(_build_in_process, job))

    try:
        submit(cycle + 1)
        while pending:
            done = pending.popleft().result()
            submit(1)
            yield done
    finally:
        for executor in (local, remote):
            if executor is not None:
                executor.shutdown(wait=True, cancel_futures=True)
        builder.close()


def _among(column: Any, ids: list[int], connection: Connection) -> Any:
    """``column IN ids``; on PostgreSQL one array parameter (``= ANY``) rather than thousands of them."""
    if connection.dialect.name == "postgresql":
        return column == any_(bindparam("ids", ids, type_=ARRAY(Integer), unique=True))
    return column.in_(ids)


def _consume(results: Iterator[_Done], writer: PartWriter, state: _StateFile, hooks: Hooks,
             heartbeat: _Heartbeat) -> None:
    # closing(): the workers stop and their connections close now, also when writing fails.
    with contextlib.closing(results):
        for number, done in enumerate(results, 1):
            heartbeat.check()
            writer.write(done.lines)
            state.add_text(done.state)
            if hooks.after_batch is not None:
                hooks.after_batch(number)


def _export_all(db: Session, context: records.Context, writer: PartWriter, state: _StateFile, hooks: Hooks,
                batch: int, heartbeat: _Heartbeat) -> None:
    low, high = db.execute(select(func.min(Product.id), func.max(Product.id))
                           .join(Merchant, Merchant.id == Product.merchant_id).where(exportable())).one()
    db.commit()
    if low is None:
        return
    jobs = (_Job(True, start, start + batch) for start in range(low, high + 1, batch))
    # Ids are dense in practice, so their span stands in for the number of products.
    _consume(_run_jobs(db, context, jobs, processes=high - low >= PROCESS_THRESHOLD), writer, state, hooks, heartbeat)


def _export_changes(db: Session, context: records.Context, previous: ExportRun, writer: PartWriter,
                    state: _StateFile, hooks: Hooks, batch: int, heartbeat: _Heartbeat) -> None:
    """A delta: tombstones first (a deleted product's SKU may be in use again by a new one), then records.

    One pass over products and pim_export_state finds what the PIM has that is no longer ready, and ready
    products it lacks or whose change columns (or context) moved since; a second, what it has of deleted
    products. Both are streamed: tombstones are written as they come, the other ids kept 8 bytes apiece.
    """
    taxonomy_changed, merchants_changed = context.changed_since(previous.context or {})
    wanted = or_(ExportedProduct.product_id.is_(None), vector_differs())
    if taxonomy_changed:
        wanted = true()
    elif merchants_changed:
        wanted = or_(wanted, Product.merchant_id.in_(sorted(merchants_changed)))
    if db.get_bind().dialect.name == "postgresql":
        db.execute(text("SET LOCAL work_mem = '256MB'"))  # both sides' hashes in memory, not in 16 batches on disk
    ready = and_(Product.readiness == "ready", Merchant.is_active.is_(True))
    found = (select(Product.id, case((ready, True), else_=False), ExportedProduct.merchant_id, ExportedProduct.sku)
             .join(Merchant, Merchant.id == Product.merchant_id)
             .outerjoin(ExportedProduct, ExportedProduct.product_id == Product.id)
             .where(or_(and_(ready, wanted), and_(ExportedProduct.product_id.is_not(None), ~ready)))
             .order_by(Product.id))
    deleted = (select(ExportedProduct.product_id, true(), ExportedProduct.merchant_id, ExportedProduct.sku)
               .where(~select(Product.id).where(Product.id == ExportedProduct.product_id).exists())
               .order_by(ExportedProduct.product_id))
    candidates = array("q")
    gone: list[tuple[int, int, str]] = []

    def bury() -> None:
        writer.write([records.tombstone(merchant_id, sku) for _id, merchant_id, sku in gone], tombstones=True)
        state.add_deleted(gone)
        gone.clear()

    for statement, missing in ((found, False), (deleted, True)):
        for rows in db.execute(statement.execution_options(yield_per=batch)).tuples().partitions():
            for product_id, is_ready, merchant_id, sku in rows:
                if missing or not is_ready:
                    gone.append((product_id, merchant_id, sku))
                else:
                    candidates.append(product_id)
            if len(gone) >= batch:
                bury()
            heartbeat.check()
    if gone:
        bury()
    db.commit()  # the reads below run on their own connection; this one holds no snapshot meanwhile

    jobs = (_Job(False, ids=tuple(candidates[start:start + batch])) for start in range(0, len(candidates), batch))
    _consume(_run_jobs(db, context, jobs, processes=len(candidates) >= PROCESS_THRESHOLD), writer, state, hooks,
             heartbeat)


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
