"""An export reader that behaves like the PIM: it knows the layout and the published schemas, not the portal.

It reads through plain boto3 (or the filesystem), starts at ``products/LATEST.json``, checks the manifest
and every part (size, SHA-256, line counts, each line against docs/pim_export/record.schema.json), follows
``previous`` back to the full export the chain starts from, and replays the chain into a catalog.
Nothing here imports the portal's export code.
"""
from __future__ import annotations

import gzip
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from jsonschema import Draft202012Validator

SCHEMAS = Path(__file__).resolve().parents[2] / "docs" / "pim_export"


def _validator(name: str) -> Draft202012Validator:
    schema = json.loads((SCHEMAS / name).read_text(encoding="utf-8"))
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema)


RECORD = _validator("record.schema.json")
MANIFEST = _validator("manifest.schema.json")
LATEST = _validator("latest.schema.json")


class ExportInvalid(AssertionError):
    """What the PIM would refuse to import."""


class Source(Protocol):
    """Keys relative to the export URL; ``get`` raises KeyError for a missing key."""

    def get(self, key: str) -> bytes: ...

    def keys(self) -> list[str]: ...


@dataclass
class DirectorySource:
    root: Path

    def get(self, key: str) -> bytes:
        path = self.root / key
        if not path.is_file():
            raise KeyError(key)
        return path.read_bytes()

    def keys(self) -> list[str]:
        return sorted(p.relative_to(self.root).as_posix() for p in self.root.rglob("*") if p.is_file())


@dataclass
class S3Source:
    client: Any  # a plain boto3 S3 client
    bucket: str
    prefix: str = ""

    def _key(self, key: str) -> str:
        return f"{self.prefix.rstrip('/')}/{key}" if self.prefix else key

    def get(self, key: str) -> bytes:
        try:
            return self.client.get_object(Bucket=self.bucket, Key=self._key(key))["Body"].read()
        except self.client.exceptions.NoSuchKey as exc:
            raise KeyError(key) from exc

    def keys(self) -> list[str]:
        found = []
        for page in self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=self._key("")):
            found += [item["Key"][len(self._key("")):] for item in page.get("Contents", [])]
        return sorted(found)


@dataclass
class Run:
    manifest_key: str
    manifest: dict[str, Any]
    lines: list[dict[str, Any]] = field(default_factory=list)

    @property
    def records(self) -> list[dict[str, Any]]:
        return [line for line in self.lines if not line.get("deleted")]

    @property
    def tombstones(self) -> list[dict[str, Any]]:
        return [line for line in self.lines if line.get("deleted")]


def _check(validator: Draft202012Validator, document: Any, where: str) -> None:
    errors = sorted(validator.iter_errors(document), key=lambda e: list(e.path))
    if errors:
        raise ExportInvalid(f"{where}: {errors[0].message} at {list(errors[0].path)}")


def latest(source: Source) -> dict[str, Any] | None:
    try:
        document = json.loads(source.get("products/LATEST.json"))
    except KeyError:
        return None
    _check(LATEST, document, "products/LATEST.json")
    return document


def read_run(source: Source, manifest_key: str) -> Run:
    """One run, verified: manifest schema, each file's size and SHA-256, counts, every line's schema."""
    manifest = json.loads(source.get(manifest_key))
    _check(MANIFEST, manifest, manifest_key)
    run = Run(manifest_key, manifest)
    records = tombstones = 0
    for entry in manifest["files"]:
        data = source.get(entry["key"])
        if len(data) != entry["bytes"]:
            raise ExportInvalid(f"{entry['key']}: {len(data)} bytes, manifest says {entry['bytes']}")
        if hashlib.sha256(data).hexdigest() != entry["sha256"]:
            raise ExportInvalid(f"{entry['key']}: SHA-256 differs from the manifest")
        in_file = [json.loads(line) for line in gzip.decompress(data).decode("utf-8").splitlines()]
        for number, line in enumerate(in_file, 1):
            _check(RECORD, line, f"{entry['key']} line {number}")
        file_tombstones = sum(1 for line in in_file if line.get("deleted"))
        if len(in_file) - file_tombstones != entry["records"] or file_tombstones != entry.get("tombstones", 0):
            raise ExportInvalid(f"{entry['key']}: counts differ from the manifest")
        records += len(in_file) - file_tombstones
        tombstones += file_tombstones
        run.lines += in_file
    if (records, tombstones) != (manifest["records"], manifest["tombstones"]):
        raise ExportInvalid(f"{manifest_key}: totals differ from its files")
    if manifest["kind"] == "full" and (tombstones or manifest["previous"] is not None):
        raise ExportInvalid(f"{manifest_key}: a full export has no tombstones and follows nothing")
    for record in run.records:
        body = {k: v for k, v in record.items() if k not in ("updated_at", "content_hash")}
        digest = hashlib.sha256(json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()).hexdigest()
        if digest != record["content_hash"]:
            raise ExportInvalid(f"{manifest_key}: content_hash of {record['merchant_id']}/{record['sku']} is wrong")
    return run


def chain(source: Source) -> list[Run]:
    """The runs to replay, oldest first: the full export and the deltas after it, up to LATEST.json."""
    pointer = latest(source)
    if pointer is None:
        return []
    runs: list[Run] = []
    key: str | None = pointer["manifest"]
    while key is not None:
        run = read_run(source, key)
        runs.append(run)
        if run.manifest["kind"] == "full":
            break
        previous = run.manifest["previous"]
        if previous is None:
            raise ExportInvalid(f"{key}: a delta that follows nothing")
        key = previous["manifest"]
    if runs[0].manifest["run_id"] != pointer["run_id"]:
        raise ExportInvalid("LATEST.json names another run than its manifest")
    return list(reversed(runs))


def rebuild(source: Source) -> dict[tuple[int, str], dict[str, Any]]:
    """The catalog the PIM holds after importing the chain: (merchant id, sku) -> record."""
    catalog: dict[tuple[int, str], dict[str, Any]] = {}
    for run in chain(source):
        if run.manifest["kind"] == "full":
            catalog = {}
        for line in run.lines:
            identity = (line["merchant_id"], line["sku"])
            if line.get("deleted"):
                catalog.pop(identity, None)
            else:
                catalog[identity] = line
    return catalog
