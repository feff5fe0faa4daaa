"""Export runs, and what the last successful runs told the PIM about each product."""
from __future__ import annotations

from datetime import datetime
from typing import Any

from flask_babel import gettext
from sqlalchemy import JSON, ForeignKey, Index, String, Text, text
from sqlalchemy.orm import Mapped, mapped_column

from portal.db import Base, utcnow

RUN_KINDS = ("full", "delta")


class ExportRun(Base):
    """One run of the export. At most one is ``running`` (a unique partial index): the lock."""

    __tablename__ = "pim_export_runs"
    __table_args__ = (Index("uq_pim_export_runs_one_running", "status", unique=True,
                            sqlite_where=text("status = 'running'"), postgresql_where=text("status = 'running'")),)

    id: Mapped[int] = mapped_column(primary_key=True)
    # The run's name in the export layout: products/{kind}/{date}/{run_id}/…
    run_id: Mapped[str] = mapped_column(String(40), unique=True)
    kind: Mapped[str] = mapped_column(String(8))
    # What was asked for; a delta becomes a full when there is nothing sound to compare with (``reason``:
    # "no_previous", or "latest_mismatch <run id>"; worded in the reader's language by reason_text).
    requested: Mapped[str] = mapped_column(String(8))
    reason: Mapped[str | None] = mapped_column(Text)
    trigger: Mapped[str] = mapped_column(String(16), default="cli")  # cli, web, schedule
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    status: Mapped[str] = mapped_column(String(16), default="running", index=True)
    started_at: Mapped[datetime] = mapped_column(default=utcnow)
    heartbeat_at: Mapped[datetime] = mapped_column(default=utcnow)
    finished_at: Mapped[datetime | None]
    # Where the run's process lives, so a run whose process died is recognised and its lock released.
    host: Mapped[str] = mapped_column(String(255), default="")
    pid: Mapped[int] = mapped_column(default=0)
    # Delta: the successful run it continues from, and when that one started reading.
    previous_run_id: Mapped[str | None] = mapped_column(String(40))
    since: Mapped[datetime | None]
    records: Mapped[int] = mapped_column(default=0)
    tombstones: Mapped[int] = mapped_column(default=0)
    files: Mapped[int] = mapped_column(default=0)
    bytes: Mapped[int] = mapped_column(default=0)
    manifest_key: Mapped[str | None] = mapped_column(String(255))
    error: Mapped[str | None] = mapped_column(Text)
    # Fingerprints of what records depend on besides the product row (merchants' names and mappings,
    # the taxonomy and its attributes): a later delta re-reads the products whose context changed.
    context: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)

    @property
    def duration(self) -> float | None:
        return (self.finished_at - self.started_at).total_seconds() if self.finished_at else None

    def summary(self) -> dict[str, Any]:
        """What ``portal pim export --json`` prints."""
        result: dict[str, Any] = {"run_id": self.run_id, "kind": self.kind, "status": self.status,
                                  "records": self.records, "tombstones": self.tombstones, "files": self.files,
                                  "manifest": self.manifest_key}
        if self.error:
            result["error"] = self.error
        if self.reason:
            result["reason"] = self.reason_text
        return result

    @property
    def reason_text(self) -> str | None:
        if not self.reason:
            return None
        code, _, run = self.reason.partition(" ")
        if code == "no_previous":
            return gettext("No earlier export succeeded: a delta has nothing to follow.")
        return gettext("LATEST.json does not name the last successful run (%(run)s): a full export sets the PIM "
                       "straight.", run=run)


class ExportedProduct(Base):
    """A product as the PIM last received it from a successful run: compared by the next delta.

    No foreign key to products: a deleted product's row stays here until its tombstone is delivered.
    """

    __tablename__ = "pim_export_state"

    product_id: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    merchant_id: Mapped[int] = mapped_column(index=True)
    sku: Mapped[str] = mapped_column(String(128))
    # The product's change columns as the run read them (see services.VECTOR): any differing from the
    # product's means "read it again". Written as the database gave them, so they compare exactly.
    updated_at: Mapped[datetime | None]
    readiness_at: Mapped[datetime | None]
    stock: Mapped[int] = mapped_column(default=0)
    reserved: Mapped[int] = mapped_column(default=0)
    category_id: Mapped[int | None]
    # The record's content hash: equal means the PIM already has this record.
    content_hash: Mapped[str] = mapped_column(String(64))
