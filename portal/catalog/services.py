"""The catalog: receiving uploads, mapping their columns, and applying them (or previewing) in bulk."""
from __future__ import annotations

import json
import logging
import re
import shutil
import tempfile
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import IO, Any

import pandas as pd
from flask import current_app
from flask_babel import force_locale, gettext
from flask_babel import lazy_gettext as _l
from sqlalchemy import String, Text, any_, bindparam, cast, select, update
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import Session
from werkzeug.local import LocalProxy

from portal import audit
from portal.catalog.bulk import (
    CONTENT,
    deactivate_missing,
    insert_events,
    lock_merchant_catalog,
    set_last_errors,
    prepare_products,
    upsert_products,
)
from portal.catalog.exceptions import CatalogError, UploadBusy
from portal.catalog.hashing import row_hashes
from portal.catalog.fields import FIELD_NAMES, REQUIRED_FOR_NEW, check_mapping, suggest_mapping
from portal.catalog.models import ColumnTemplate, Product, ProductEvent, Upload, UploadIssue
from portal.catalog.readers import CatalogFile, UnreadableFile, open_catalog, open_text_copy, save_text_copy
from portal.catalog.reports import ErrorReport
from portal.catalog.validation import ROW, message, parse_prices, validate_chunk
from portal.category_mapping import services as mapping_services
from portal.db import utcnow
from portal.jobs.models import Job
from portal.jobs.services import JobContext, enqueue, job
from portal.storage_access import get_storage
from portal.tenancy import Principal, scope

log = logging.getLogger(__name__)

CHUNK_ROWS = 50_000
FIRST_CHUNK_ROWS = 5_000
MAX_STORED_ISSUES = 1000
DEFAULT_TEXT: dict[str, str] = {"title": "", "brand": "", "gtin": "", "description": "", "category": "", "price": "",
                                 "currency": "RUB", "stock": "0", "images": "[]", "attributes": "{}"}
Progress = Callable[[int, int | None], None]


# -- receiving and mapping -----------------------------------------------------------------------


def _safe_filename(name: str) -> str:
    name = Path(name.replace("\\", "/")).name.strip() or "catalog"
    return re.sub(r"[^\w.\-]+", "_", name)[:120]


def receive_upload(db: Session, principal: Principal, *, stream: IO[bytes], filename: str, source: str = "web",
                   locale: str = "en") -> Upload:
    """Keep the file in storage and read its columns; an unreadable file is recorded as failed, nothing else."""
    if principal.merchant_id is None:
        raise CatalogError(gettext("Only a merchant can upload a catalog."), status=403, code="merchant_only")
    max_bytes = current_app.config["MAX_CONTENT_LENGTH"]
    key = f"catalog/{principal.merchant_id}/uploads/{uuid.uuid4().hex}/{_safe_filename(filename)}"
    with tempfile.TemporaryDirectory(prefix="portal-upload-") as tmp:
        local = Path(tmp) / _safe_filename(filename)
        with local.open("wb") as out:
            shutil.copyfileobj(stream, out, 1024 * 1024)
        size = local.stat().st_size
        upload = Upload(
            merchant_id=principal.merchant_id, uploaded_by_id=principal.user_id, uploaded_by_token_id=principal.token_id,
            source=source, filename=filename[:255] or "catalog", size_bytes=size, storage_key=key, locale=locale,
        )
        text_copy: Path | None = None
        try:
            catalog = open_catalog(local, filename, max_bytes=max_bytes)
            if catalog.format == "xlsx":
                # The workbook's cells are turned into text once, here; applying reads that text.
                text_copy = Path(tmp) / "rows.arrow"
                save_text_copy(catalog, text_copy, CHUNK_ROWS)
                catalog = open_text_copy(text_copy)
            upload.format = catalog.format
            upload.columns = list(catalog.columns)
            upload.samples = _samples(catalog)
            upload.mapping = suggest_mapping(catalog.columns, _template(db, principal))
        except UnreadableFile as exc:
            _fail(upload, exc.code, exc.message)
        if size <= max_bytes:
            get_storage().put_file(key, local)
            if text_copy is not None and upload.status != "failed":
                get_storage().put_file(_text_copy_key(key), text_copy)
        else:
            upload.storage_key = ""  # a refused file is not kept
    db.add(upload)
    db.flush()
    audit.record(db, "catalog.upload_received", actor=principal, target=upload,
                 details={"filename": upload.filename, "bytes": size, "status": upload.status})
    db.commit()
    return upload


def _samples(catalog: CatalogFile) -> dict[str, list[str]]:
    first = next(iter(catalog.chunks(10)), None)
    if first is None:
        return {}
    return {c: [v for v in first[c].astype(str).tolist() if v][:3] for c in catalog.columns}


def _template(db: Session, principal: Principal) -> dict[str, str]:
    template = db.scalar(scope(select(ColumnTemplate), ColumnTemplate, principal))
    return dict(template.mapping) if template else {}


def update_mapping(db: Session, upload: Upload, mapping: dict[str, str], *, principal: Principal,
                   save_template: bool = False, deactivate_missing_products: bool = False) -> Upload:
    """Set the column mapping; ``save_template`` keeps it for the merchant's next uploads."""
    _ensure_idle(upload)
    unknown = set(mapping) - set(upload.columns)
    if unknown:
        raise CatalogError(gettext("The file has no column %(name)s.", name=sorted(unknown)[0]))
    cleaned = {c: (mapping.get(c) or "") for c in upload.columns}
    if any(f and f not in FIELD_NAMES for f in cleaned.values()):
        raise CatalogError(message("unknown_field"))
    problems = check_mapping(cleaned)
    if problems:
        raise CatalogError(message(problems[0]), code=problems[0])
    upload.mapping = cleaned
    upload.deactivate_missing = deactivate_missing_products
    if save_template:
        template = db.scalar(scope(select(ColumnTemplate), ColumnTemplate, principal))
        if template is None:
            template = ColumnTemplate(merchant_id=upload.merchant_id)
            db.add(template)
        template.mapping = {**(template.mapping or {}), **cleaned}
        template.updated_at = utcnow()
    db.commit()
    return upload


def _ensure_idle(upload: Upload) -> None:
    if upload.status in ("queued", "running"):
        raise UploadBusy(gettext("This upload is being processed; wait until it ends."))
    if upload.status == "applied":
        raise UploadBusy(gettext("This upload has been applied already; upload the file again to repeat it."))
    if upload.status == "failed" and upload.error_code not in (None, "no_sku_column", "field_mapped_twice", "unknown_field"):
        raise CatalogError(upload.error or gettext("This upload failed."), code=upload.error_code or "upload_failed")


def start_processing(db: Session, upload: Upload, *, dry_run: bool, principal: Principal) -> Job:
    """Queue the preview (``dry_run``) or the application of an upload as a background job."""
    _ensure_idle(upload)
    problems = check_mapping(upload.mapping)
    if problems:
        raise CatalogError(message(problems[0]), code=problems[0])
    # A conditional update: two clicks (or two API calls) at once queue the upload once.
    claimed = db.execute(
        update(Upload).where(Upload.id == upload.id, Upload.status.in_(("uploaded", "previewed", "failed")))
        .values(status="queued", dry_run=dry_run).execution_options(synchronize_session=False)
    ).rowcount
    db.commit()
    if not claimed:
        raise UploadBusy(gettext("This upload is being processed; wait until it ends."))
    db.refresh(upload)
    record = enqueue("catalog.process", {"upload_id": upload.id, "dry_run": dry_run},
                     merchant_id=upload.merchant_id, user_id=principal.user_id)
    upload.job_id = record.id
    db.commit()
    return record


@job("catalog.process", label=_l("Catalog upload"))
def process_job(ctx: JobContext) -> dict[str, Any]:
    upload = process_upload(ctx.session, ctx.payload["upload_id"], dry_run=bool(ctx.payload.get("dry_run")),
                            progress=ctx.progress)
    return {"upload_id": upload.id, "status": upload.status, **upload.counts}


# -- processing ----------------------------------------------------------------------------------


@dataclass
class _Run:
    upload: Upload
    principal: Principal
    dry_run: bool
    now: Any
    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(
        ("rows", "created", "updated", "unchanged", "rejected", "warnings", "deactivated", "zeroed", "existing"), 0))
    issues: list[dict[str, Any]] = field(default_factory=list)
    report: ErrorReport | None = None

    def keep_issue(self, issue: dict[str, Any]) -> None:
        if len(self.issues) < MAX_STORED_ISSUES:
            self.issues.append(issue)


def process_upload(db: Session, upload_id: int, *, dry_run: bool, progress: Progress | None = None) -> Upload:
    """Preview or apply an upload in one transaction: a file that turns out unreadable changes nothing."""
    # The database thread below needs the session itself, not the request-bound proxy of portal.db.
    db = db._get_current_object() if isinstance(db, LocalProxy) else db  # type: ignore[attr-defined]
    upload = db.get(Upload, upload_id)
    if upload is None:
        raise CatalogError(f"upload {upload_id} not found", status=404, code="not_found")
    if upload.status not in ("uploaded", "queued", "previewed"):
        log.warning("upload %s is %s; not processed again", upload_id, upload.status)
        return upload
    principal = Principal(role="merchant_admin", merchant_id=upload.merchant_id,
                          user_id=upload.uploaded_by_id, token_id=upload.uploaded_by_token_id)
    upload.status, upload.dry_run = "running", dry_run
    db.commit()
    with force_locale(upload.locale), _source(upload) as (local, kept_text):
        run = _Run(upload=upload, principal=principal, dry_run=dry_run, now=utcnow())
        try:
            if kept_text:
                catalog = open_text_copy(local)
            else:
                # The file was checked whole when it was received; reading it checks it again as it goes.
                catalog = open_catalog(local, upload.filename, max_bytes=current_app.config["MAX_CONTENT_LENGTH"],
                                       scan=False)
            _process(db, run, catalog, local, progress)
        except (UnreadableFile, CatalogError) as exc:
            db.rollback()
            upload = db.get(Upload, upload_id)
            _fail(upload, exc.code, exc.message)
            upload.finished_at = utcnow()
            db.commit()
            return upload
        except Exception:
            # Nothing of the upload was applied; its record says so, and the job records the error.
            db.rollback()
            upload = db.get(Upload, upload_id)
            _fail(upload, "internal_error", gettext("The upload could not be processed because of an error on our side."))
            upload.finished_at = utcnow()
            db.commit()
            raise
        finally:
            if run.report is not None:
                run.report.cleanup()
    if not dry_run:
        _catalog_changed(db, upload.merchant_id)
    return upload


def _catalog_changed(db: Session, merchant_id: int) -> None:
    """New category paths get their suggestions, and readiness follows, once the upload is applied.

    The upload is committed by then: a failure here is logged and leaves it applied; the next change of
    the merchant's catalog or mappings brings readiness up to date.
    """
    try:
        mapping_services.catalog_changed(db, merchant_id)
    except Exception:
        db.rollback()
        log.exception("readiness of merchant %s not refreshed after an upload", merchant_id)


def _derived_key(storage_key: str, name: str) -> str:
    """Where a file made from an upload is kept: beside the original, in a folder no file name can take
    (``_safe_filename`` never keeps a "+")."""
    return storage_key.rsplit("/", 1)[0] + f"/+derived/{name}"


def _text_copy_key(storage_key: str) -> str:
    return _derived_key(storage_key, "rows.arrow")


@contextmanager
def _source(upload: Upload) -> Iterator[tuple[Path, bool]]:
    """The local file to read an upload from: the text kept from its workbook when there is one."""
    storage = get_storage()
    copy_key = _text_copy_key(upload.storage_key)
    if upload.format == "xlsx" and storage.exists(copy_key):
        with storage.local_file(copy_key) as path:
            yield path, True
    else:
        with storage.local_file(upload.storage_key) as path:
            yield path, False


def _count_lines(path: Path) -> int:
    lines = 0
    with path.open("rb") as handle:
        while block := handle.read(4 * 1024 * 1024):
            lines += block.count(b"\n")
    return lines


def _process(db: Session, run: _Run, catalog: CatalogFile, local: Path, progress: Progress | None) -> None:
    upload = run.upload
    mapping = {c: f for c, f in upload.mapping.items() if c in catalog.columns}
    problems = check_mapping(mapping)
    if problems:
        raise CatalogError(message(problems[0]), code=problems[0])
    present = {f for f in mapping.values() if f}
    attribute_columns = [c for c, f in mapping.items() if not f]
    total = catalog.rows if catalog.rows is not None else max(1, _count_lines(local) - catalog.header_row + 1)
    seen: dict[str, int] = {}
    done = 0
    if not run.dry_run:
        lock_merchant_catalog(db, upload.merchant_id)
    # A merchant's first catalog has nothing to compare with: its rows need no look-ups at all.
    catalog_empty = db.scalar(scope(select(Product.id), Product, run.principal).limit(1)) is None
    if progress:
        progress(0, total)
    sku_column = next(c for c, f in mapping.items() if f == "sku")
    # The database works in its own process. While it writes earlier chunks (on one thread and this
    # transaction's connection), another connection looks up the next chunk's products (and the old
    # values that history and attribute merging need) and this thread checks that chunk. The look-ups
    # see the catalog as it was before this upload, which is what they need: a file's SKUs are
    # unique, so no chunk changes another chunk's products.
    lookup_session = Session(bind=db.get_bind())
    try:
        # Leaving this block waits for both threads, so the look-up session is closed only when idle.
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="catalog-db") as database, \
                ThreadPoolExecutor(max_workers=1, thread_name_prefix="catalog-lookup") as lookups:

            def look_up(chunk: pd.DataFrame) -> tuple[pd.DataFrame, pd.Series, Future[tuple[pd.Series, pd.DataFrame]]]:
                skus = chunk[sku_column].astype(str).str.strip()
                chunk["__source__"] = source_hash(chunk, catalog.columns, mapping)
                if catalog_empty:
                    return chunk, skus, lookups.submit(_nothing_existing, lookup_session, run.principal, present)
                return chunk, skus, lookups.submit(_look_up_chunk, lookup_session, run.principal, skus,
                                                   chunk["__source__"], present)

            def read(query: Callable[..., Any], *args: Any) -> Any:
                """Run a read of the catalog as it was before this upload, on the look-up connection."""
                return lookups.submit(query, lookup_session, *args).result()

            # Writes queue on the database thread; at most two chunks wait there, to bound memory.
            pending: list[Future[None]] = []
            # One chunk ahead: the next chunk is read while the current one's products are looked up.
            for chunk, skus, lookup in _ahead(map(look_up, _ramp(catalog.chunks(CHUNK_ROWS)))):
                applied_from, existing = lookup.result()
                same = _same_as_applied(chunk, skus, applied_from, seen)
                # A repeat of an unchanged row was not looked up in full; its product is needed after all.
                missed = skus[~same & _in_index(skus, applied_from.index) & ~_in_index(skus, existing.index)]
                missed = missed.unique().tolist()
                if missed:
                    existing = pd.concat([existing, read(_existing, run.principal, missed, present)])
                run.counts["rows"] += int(same.sum())
                run.counts["unchanged"] += int(same.sum())
                fresh = chunk.loc[~same]
                if len(fresh):
                    checked = validate_chunk(fresh, mapping, seen)
                    write = _apply_chunk(db, run, catalog, fresh, skus.loc[fresh.index], existing, checked, mapping,
                                         present, attribute_columns, read)
                    if write is not None:
                        while len(pending) >= 2:
                            pending.pop(0).result()
                        pending.append(database.submit(write))
                done += len(chunk)
                if progress:
                    progress(min(done, total), max(total, done))
            for write_done in pending:
                write_done.result()
    finally:
        lookup_session.close()
    _finish(db, run, seen)


def _ramp(chunks: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
    """The first chunk split off small, so the database has work to do while the rest is checked."""
    first = FIRST_CHUNK_ROWS
    head = next(chunks, None)
    if head is None:
        return
    if len(head) > first * 2:
        yield head.iloc[:first]
        yield head.iloc[first:]
    else:
        yield head
    yield from chunks


def _ahead(items: Iterator[Any]) -> Iterator[Any]:
    """Yield each item only once the next one has been produced (a one-item read-ahead)."""
    previous = next(items, None)
    for item in items:
        yield previous
        previous = item
    if previous is not None:
        yield previous


def source_hash(chunk: pd.DataFrame, columns: list[str], mapping: dict[str, str]) -> pd.Series:
    """A fingerprint of each file row as sent, with the mapping it is read with (in the file's column
    order: swapping two headers must read the row afresh)."""
    fingerprint = json.dumps([[c, mapping.get(c, "")] for c in columns], ensure_ascii=False)
    return row_hashes(chunk, list(columns), prefix=fingerprint)


def _same_as_applied(chunk: pd.DataFrame, skus: pd.Series, applied_from: pd.Series, seen: dict[str, int]) -> pd.Series:
    """Rows exactly as last applied to an active product with no pending error: nothing to check or write.

    ``applied_from`` maps such products' SKUs to the fingerprint of the row they were last applied
    from. Their SKUs still count as seen, so a later repeat in the file is reported as a duplicate.
    """
    if applied_from.empty:
        return pd.Series(False, index=chunk.index)
    known = skus.map(applied_from).fillna("")
    repeated = skus.duplicated(keep="first") | pd.Series([s in seen for s in skus.tolist()], index=skus.index)
    same = (known == chunk["__source__"]) & ~repeated & (skus != "")
    seen.update(zip(skus[same].tolist(), chunk.loc[same, ROW].tolist()))
    return same


def _in_index(values: pd.Series, index: pd.Index) -> pd.Series:
    """Membership in a unique index by hash look-up (``isin`` builds a Python object per Arrow string)."""
    if index.empty:
        return pd.Series(False, index=values.index)
    return pd.Series(index.get_indexer(values) >= 0, index=values.index)


def _look_up_chunk(db: Session, principal: Principal, skus: pd.Series, sources: pd.Series,
                   present: set[str]) -> tuple[pd.Series, pd.DataFrame]:
    """First the SKUs whose rows may be unchanged (two short columns), then in full only the others.

    An unchanged re-upload thus reads a fingerprint per product and nothing more.
    """
    wanted = skus[skus != ""].unique().tolist()
    applied_from = _applied_from(db, principal, wanted)
    if applied_from.empty:
        return applied_from, _existing(db, principal, wanted, present)
    candidate = skus.map(applied_from).fillna("") == sources
    others = skus[(skus != "") & (~candidate | skus.duplicated(keep=False))].unique().tolist()
    return applied_from, _existing(db, principal, others, present)


def _nothing_existing(db: Session, principal: Principal, present: set[str]) -> tuple[pd.Series, pd.DataFrame]:
    return pd.Series([], dtype=str), _existing(db, principal, [], present)


def _applied_from(db: Session, principal: Principal, skus: list[str]) -> pd.Series:
    """SKU -> fingerprint of the row last applied, for active products without a pending error.

    The query has the shape of ``_existing``'s (merchant and SKUs only), so PostgreSQL probes the
    (merchant, sku) index; status and errors are sorted out here, not by a plan that might scan.
    """
    columns = (Product.sku, Product.source_hash, Product.status, Product.last_error.is_(None).label("clean"))
    rows: list[Any] = []
    if not skus:
        pass
    elif db.get_bind().dialect.name == "postgresql":
        stmt = select(*columns).where(Product.sku == any_(bindparam("skus", skus, type_=ARRAY(String))))
        rows.extend(db.execute(scope(stmt, Product, principal)).all())
    else:
        for start in range(0, len(skus), 10_000):
            stmt = select(*columns).where(Product.sku.in_(skus[start:start + 10_000]))
            rows.extend(db.execute(scope(stmt, Product, principal)).all())
    usable = [(sku, source) for sku, source, status, clean in rows if source and status == "active" and clean]
    if not usable:
        return pd.Series([], dtype=str)
    found, hashes = zip(*usable)
    return pd.Series(hashes, index=pd.Index(found, dtype=str), dtype=str)


def _apply_chunk(db: Session, run: _Run, catalog: CatalogFile, chunk: pd.DataFrame, skus: pd.Series,
                 existing: pd.DataFrame, checked: Any, mapping: dict[str, str], present: set[str],
                 attribute_columns: list[str], read: Callable[..., Any]) -> Callable[[], None] | None:
    """Compare one checked chunk with the catalog, count and report it, and return its writes.

    ``read`` runs a query against the catalog as it was before the upload, away from ``db``, whose
    connection may be busy writing an earlier chunk.
    """
    upload = run.upload
    merged = _merge(checked.clean, existing, present, attribute_columns,
                    lambda ids: read(_old_attributes, run.principal, ids))
    missing = merged["missing"] != ""
    errors = list(checked.errors) + [
        {"row": int(r), "column": next(c for c, f in mapping.items() if f == field) if field in present else None,
         "code": f"{field}_required", "params": {}}
        for r, fields_ in zip(merged.loc[missing, ROW].tolist(), merged.loc[missing, "missing"].tolist())
        for field in fields_.split(",")
    ]
    rejected = sorted(set(checked.rejected) | set(merged.index[missing]))
    merged = merged.loc[~missing]
    _count(run, merged, mapping)
    events = _events(read, run, merged.loc[merged["kind"] == "updated"])
    noops = int((merged["kind"] == "updated").sum()) - len(events)
    run.counts["updated"] += len(events)
    run.counts["unchanged"] += noops
    last_errors = {sku: None for sku in merged.loc[(merged["kind"] == "unchanged") & merged["old_last_error"].notna(), "sku"]}
    run.counts["rows"] += len(chunk)
    run.counts["rejected"] += len(rejected)
    for issue in sorted(errors, key=lambda i: i["row"]):
        run.keep_issue({"severity": "error", **issue})
    if rejected:
        messages = _report_rejected(run, catalog, chunk, rejected, errors)
        for sku, text in zip(skus.loc[rejected].tolist(), messages):
            if sku in existing.index:
                last_errors[sku] = text
    if run.dry_run:
        return None
    writing = merged.loc[merged["kind"].isin(["created", "updated"])]
    rows = writing[["sku", *CONTENT, "content_hash"]].assign(
        source_hash=chunk.loc[writing.index, "__source__"].to_numpy(), is_new=(writing["kind"] == "created").to_numpy())
    # Made ready here, so the database thread only sends: the database never waits for Python.
    writes = prepare_products(db.get_bind().dialect.name, upload.merchant_id, upload.id, rows, run.now)

    def write() -> None:
        upsert_products(db, upload.merchant_id, upload.id, writes, run.now)
        insert_events(db, events)
        set_last_errors(db, upload.merchant_id, last_errors)

    return write


def content_hash(frame: pd.DataFrame) -> pd.Series:
    """A fingerprint of each product's content: equal content, equal hash; unchanged rows are not rewritten."""
    return row_hashes(frame, list(CONTENT))


def _merge(clean: pd.DataFrame, existing: pd.DataFrame, present: set[str], attribute_columns: list[str],
           old_attributes: Callable[[list[int]], pd.Series]) -> pd.DataFrame:
    """Each valid row as the product it makes: columns in the file replace values, absent ones keep them.

    Attributes the file does not name stay with the product; they are fetched only for the rows whose
    content differs without them, so an unchanged re-upload never reads them.
    """
    frame = clean.join(existing, on="sku")
    is_old = frame["id"].notna()
    out = pd.DataFrame({ROW: frame[ROW], "sku": frame["sku"]}, index=frame.index)
    for name in CONTENT:
        if name == "attributes":
            continue
        old = frame[f"old_{name}"] if f"old_{name}" in frame else pd.Series(DEFAULT_TEXT[name], index=frame.index)
        old = old.where(is_old, DEFAULT_TEXT[name]).fillna(DEFAULT_TEXT[name]).astype(str)
        if name in present:
            value = frame[name].astype(str)
            out[name] = value.mask(value == "", old) if name == "currency" else value
        else:
            out[name] = old
    out["stock"] = pd.to_numeric(out["stock"]).astype("int64")
    out["attributes"] = frame["attributes"].astype(str)
    out["content_hash"] = content_hash(out)
    differs = is_old & (out["content_hash"] != frame["content_hash"])
    if differs.any():
        ids = frame.loc[differs, "id"].astype("int64")
        old_json = old_attributes(ids.tolist()).reindex(ids.to_numpy())
        rows = out.loc[differs]
        merged = _merge_attributes(rows["attributes"], pd.Series(old_json.to_numpy(), index=rows.index), attribute_columns)
        out.loc[differs, "attributes"] = merged
        out.loc[differs, "content_hash"] = content_hash(out.loc[differs])
    missing = pd.Series("", index=frame.index, dtype=str)
    for name in REQUIRED_FOR_NEW:
        missing = missing.mask(out[name] == "", (missing + "," + name).str.strip(","))
    out["missing"] = missing
    out["product_id"] = frame["id"]
    out["old_last_error"] = frame["last_error"]
    out["old_price"] = frame["old_price"]
    out["old_stock"] = frame["old_stock"]
    same = out["content_hash"] == frame["content_hash"]
    active = frame["status"] == "active"
    kind = pd.Series("updated", index=frame.index, dtype=str)
    kind = kind.mask(~is_old, "created").mask(is_old & same & active, "unchanged")
    out["kind"] = kind
    return out


def _merge_attributes(new: pd.Series, old: pd.Series, attribute_columns: list[str]) -> pd.Series:
    """Attributes in the file replace the same ones; others the product has (filled in elsewhere) stay."""
    needs = old.notna() & ~old.isin(["{}", ""]) & (old != new)
    if not needs.any():
        return new
    merged = new.copy()
    columns = set(attribute_columns)
    for index, old_text, new_text in zip(new.index[needs], old[needs].tolist(), new[needs].tolist()):
        kept = {k: v for k, v in json.loads(old_text).items() if k not in columns}
        if kept:
            merged.loc[index] = json.dumps({**kept, **json.loads(new_text)}, ensure_ascii=False, separators=(",", ":"))
    return merged


def _count(run: _Run, merged: pd.DataFrame, mapping: dict[str, str]) -> None:
    """Counts, and the warnings a person should look at before applying (price jumps, zeroed stock)."""
    kinds = merged["kind"].value_counts()
    for kind in ("created", "unchanged"):
        run.counts[kind] += int(kinds.get(kind, 0))
    old = merged["product_id"].notna()
    run.counts["existing"] += int(old.sum())
    run.counts["zeroed"] += int((old & (merged["old_stock"].fillna(0) > 0) & (merged["stock"] == 0)).sum())
    changed = merged.loc[(merged["kind"] == "updated") & (merged["old_price"].fillna("") != merged["price"])
                         & (merged["old_price"].fillna("") != "")]
    if len(changed):
        before = pd.to_numeric(changed["old_price"])
        after = pd.to_numeric(changed["price"])
        jumps = changed.loc[((after - before).abs() / before) > 0.5]
        price_column = next((c for c, f in mapping.items() if f == "price"), None)
        for row, old_price, new_price in zip(jumps[ROW].tolist(), jumps["old_price"].tolist(), jumps["price"].tolist()):
            run.counts["warnings"] += 1
            run.keep_issue({"severity": "warning", "row": int(row), "column": price_column, "code": "price_jump",
                            "params": {"old": old_price, "new": new_price}})


def _events(read: Callable[..., Any], run: _Run, updated: pd.DataFrame) -> list[dict[str, Any]]:
    """History of the updated products: each changed field with its old and new value.

    A row whose hash differs but whose values do not (a hash written by an older version) makes no
    event; it is rewritten with the current hash and counted as unchanged.
    """
    if updated.empty:
        return []
    upload = run.upload
    olds = read(_old_content, run.principal, updated["product_id"].astype("int64").tolist())
    events = []
    for record in updated[["product_id", *CONTENT]].to_dict("records"):
        product_id = int(record["product_id"])
        old = olds[product_id]
        new = {**record, "images": json.loads(record["images"]), "attributes": json.loads(record["attributes"]),
               "stock": int(record["stock"])}
        changes = {name: [old[name], new[name]] for name in CONTENT if old[name] != new[name]}
        if old["status"] != "active":
            changes["status"] = [old["status"], "active"]
        if not changes:
            continue
        events.append({"product_id": product_id, "merchant_id": upload.merchant_id, "at": run.now, "source": "upload",
                       "upload_id": upload.id, "actor_user_id": upload.uploaded_by_id,
                       "actor_token_id": upload.uploaded_by_token_id, "changes": changes})
    return events


def _existing(db: Session, principal: Principal, skus: list[str], present: set[str]) -> pd.DataFrame:
    """The merchant's current products for these SKUs: what comparing needs, and what the file lacks."""
    columns: list[Any] = [Product.sku, Product.id, Product.status, Product.content_hash, Product.source_hash,
                          Product.last_error, cast(Product.price, String).label("old_price"),
                          Product.stock.label("old_stock")]
    columns += [cast(getattr(Product, name), Text).label(f"old_{name}") for name in CONTENT
                if name not in present and name not in ("price", "stock", "attributes")]
    names = [c.key if hasattr(c, "key") else c.name for c in columns]
    rows: list[Any] = []
    if db.get_bind().dialect.name == "postgresql":
        # One array parameter instead of thousands of bound values.
        stmt = scope(select(*columns).where(Product.sku == any_(bindparam("skus", skus, type_=ARRAY(String)))),
                     Product, principal)
        rows.extend(db.execute(stmt).all())
    else:
        for start in range(0, len(skus), 10_000):
            stmt = scope(select(*columns).where(Product.sku.in_(skus[start:start + 10_000])), Product, principal)
            rows.extend(db.execute(stmt).all())
    frame = pd.DataFrame(dict(zip(names, zip(*rows))) if rows else {n: pd.Series([], dtype=object) for n in names})
    frame = frame.set_index("sku")
    if len(frame):
        if db.get_bind().dialect.name != "postgresql":
            # SQLite keeps numerics as numbers (1299, 1299.5); PostgreSQL's text is already "1299.00".
            frame["old_price"] = parse_prices(frame["old_price"].astype(str))[0]
        frame["old_stock"] = frame["old_stock"].astype("int64")
    return frame


def _old_attributes(db: Session, principal: Principal, ids: list[int]) -> pd.Series:
    """Products' attributes as stored (JSON text), by product id."""
    found: dict[int, str] = {}
    for start in range(0, len(ids), 10_000):
        stmt = scope(select(Product.id, cast(Product.attributes, Text)).where(Product.id.in_(ids[start:start + 10_000])),
                     Product, principal)
        found.update({pid: text_ for pid, text_ in db.execute(stmt).all()})
    return pd.Series(found, dtype=object)


def _old_content(db: Session, principal: Principal, ids: list[int]) -> dict[int, dict[str, Any]]:
    found: dict[int, dict[str, Any]] = {}
    for start in range(0, len(ids), 10_000):
        stmt = scope(select(Product).where(Product.id.in_(ids[start:start + 10_000])), Product, principal)
        for product in db.scalars(stmt):
            found[product.id] = {**{name: getattr(product, name) for name in CONTENT}, "status": product.status,
                                 "price": _price_text(product.price), "images": list(product.images or []),
                                 "attributes": dict(product.attributes or {})}
    return found


def _price_text(value: Any) -> str:
    try:
        return f"{Decimal(value):.2f}"
    except (InvalidOperation, TypeError):
        return ""


def _report_rejected(run: _Run, catalog: CatalogFile, chunk: pd.DataFrame, rejected: list[Any],
                     errors: list[dict[str, Any]]) -> list[str]:
    if run.report is None:
        run.report = ErrorReport(catalog.format, list(catalog.columns), gettext("Error"),
                                 encoding=catalog.encoding, delimiter=catalog.delimiter)
    by_row: dict[int, list[str]] = {}
    for issue in errors:
        text = message(issue["code"], issue["params"])
        by_row.setdefault(issue["row"], []).append(f"{issue['column']}: {text}" if issue["column"] else text)
    raw = chunk.loc[rejected]
    messages = ["; ".join(by_row.get(int(r), [])) for r in raw[ROW].tolist()]
    run.report.add(raw, messages)
    return messages


def _finish(db: Session, run: _Run, seen: dict[str, int]) -> None:
    upload = run.upload
    counts = run.counts
    if counts["zeroed"] >= 10 and counts["zeroed"] * 5 >= counts["existing"]:
        counts["warnings"] += 1
        run.issues.insert(0, {"severity": "warning", "row": None, "column": None, "code": "stock_zeroed",
                              "params": {"count": counts["zeroed"]}})
    if upload.deactivate_missing:
        missing = deactivate_missing(db, run.principal, seen.keys(), run.now, apply=not run.dry_run)
        counts["deactivated"] = len(missing)
        if not run.dry_run:
            insert_events(db, [{"product_id": pid, "merchant_id": upload.merchant_id, "at": run.now, "source": "upload",
                                "upload_id": upload.id, "actor_user_id": upload.uploaded_by_id,
                                "actor_token_id": upload.uploaded_by_token_id,
                                "changes": {"status": ["active", "inactive"]}} for pid in missing])
    db.execute(UploadIssue.__table__.delete().where(UploadIssue.upload_id == upload.id))
    if run.issues:
        db.execute(UploadIssue.__table__.insert(), [{"upload_id": upload.id, **i} for i in run.issues])
    for name in ("rows", "created", "updated", "unchanged", "rejected", "warnings", "deactivated"):
        setattr(upload, name, counts[name])
    upload.error_report_key = None
    if run.report is not None and run.report.rows:
        path = run.report.close()
        key = _derived_key(upload.storage_key, f"errors.{run.report.format}")
        with path.open("rb") as handle:
            get_storage().put(key, handle, content_type=run.report.content_type)
        upload.error_report_key = key
    upload.status = "previewed" if run.dry_run else "applied"
    upload.error, upload.error_code = None, None
    upload.finished_at = utcnow()
    if not run.dry_run:
        audit.record(db, "catalog.upload_applied", actor=run.principal, target=upload, details=upload.counts)
    db.commit()


def _fail(upload: Upload, code: str, text: str) -> None:
    upload.status = "failed"
    upload.error_code = code
    upload.error = text


# -- reading results -----------------------------------------------------------------------------


def upload_result(db: Session, upload: Upload, *, limit: int = 100) -> dict[str, Any]:
    """The upload as the API and ``portal catalog import --json`` report it."""
    if upload.status == "failed":
        errors = [{"row": None, "column": None, "code": upload.error_code, "message": upload.error}]
    else:
        issues = db.scalars(select(UploadIssue).where(UploadIssue.upload_id == upload.id, UploadIssue.severity == "error")
                            .order_by(UploadIssue.row, UploadIssue.id).limit(limit))
        errors = [{"row": i.row, "column": i.column, "code": i.code, "message": message(i.code, i.params)} for i in issues]
    return {"upload_id": upload.id, "status": upload.status, "dry_run": upload.dry_run, **upload.counts,
            "deactivated": upload.deactivated, "errors": errors}


def record_product_event(db: Session, product: Product, changes: dict[str, Any], *, principal: Principal, source: str) -> None:
    db.add(ProductEvent(product_id=product.id, merchant_id=product.merchant_id, source=source, changes=changes,
                        actor_user_id=principal.user_id, actor_token_id=principal.token_id))


def update_offer(db: Session, product: Product, *, principal: Principal, price: Decimal | None = None,
                 stock: int | None = None, source: str = "api") -> Product:
    """Quick offer update: price and stock on hand only, without a catalog upload; reservations stay."""
    changes: dict[str, Any] = {}
    if price is not None:
        if not price.is_finite() or price <= 0 or price != price.quantize(Decimal("0.01")):
            raise CatalogError(gettext("The price must be more than zero with at most 2 decimals."), code="price_invalid")
        if price > Decimal("999999999999.99"):
            raise CatalogError(gettext("The price is too large."), code="price_invalid")
        if _price_text(product.price) != f"{price:.2f}":
            changes["price"] = [_price_text(product.price), f"{price:.2f}"]
            product.price = price
    if stock is not None:
        if stock < 0 or stock > 2_000_000_000:
            raise CatalogError(gettext("The stock must be a whole number, 0 or more."), code="stock_invalid")
        if stock != product.stock:
            changes["stock"] = [product.stock, stock]
            product.stock = stock
    if changes:
        _changed(db, product, changes, principal=principal, source=source)
    db.commit()
    return product


def consume_stock(db: Session, product: Product, quantity: int, *, principal: Principal, order_number: str) -> None:
    """Shipped units leave the shelf: stock on hand goes down (never below zero); no commit.

    Recorded like any other change of the product, so its content hash matches it again and the next
    upload of the merchant's own stock figure is compared with what is really on hand.
    """
    new = max(0, product.stock - quantity)
    if new != product.stock:
        changes = {"stock": [product.stock, new], "order": order_number}
        product.stock = new
        _changed(db, product, changes, principal=principal, source="order")


def set_attributes(db: Session, product: Product, values: dict[str, str], *, principal: Principal,
                   source: str = "web") -> dict[str, Any]:
    """Fill in attributes outside an upload (checked by the caller); a later upload keeps them unless its
    file has the same column. Returns the changes; no commit."""
    changes: dict[str, Any] = {}
    attributes = dict(product.attributes or {})
    for name, value in values.items():
        if attributes.get(name, "") != value:
            changes[f"attributes.{name}"] = [attributes.get(name), value]
            attributes[name] = value
    if changes:
        product.attributes = attributes
        _changed(db, product, changes, principal=principal, source=source)
    return changes


def _changed(db: Session, product: Product, changes: dict[str, Any], *, principal: Principal, source: str) -> None:
    compact = {"ensure_ascii": False, "separators": (",", ":")}
    canonical = {**{c: getattr(product, c) for c in CONTENT}, "price": _price_text(product.price),
                 "stock": str(product.stock), "images": json.dumps(list(product.images or []), **compact),
                 "attributes": json.dumps(dict(product.attributes or {}), **compact)}
    product.content_hash = content_hash(pd.DataFrame([canonical])).iloc[0]
    product.source_hash = ""  # the file row no longer describes the product: check it next time
    product.updated_at = utcnow()
    record_product_event(db, product, changes, principal=principal, source=source)


def product_by_sku(db: Session, sku: str) -> Product | None:
    return db.scalar(scope(select(Product).where(Product.sku == sku), Product, None))


def product_dict(product: Product) -> dict[str, Any]:
    return {
        "id": product.id, "sku": product.sku, "title": product.title, "price": _price_text(product.price),
        "currency": product.currency, "stock": product.stock, "reserved": product.reserved,
        "available": product.available, "status": product.status, "brand": product.brand, "gtin": product.gtin,
        "category": product.category, "description": product.description, "images": list(product.images or []),
        "attributes": dict(product.attributes or {}), "last_error": product.last_error,
        "updated_at": product.updated_at.isoformat(),
    }
