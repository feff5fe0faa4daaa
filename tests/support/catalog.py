"""Uploading catalog files in tests through the real services, and reading products back."""
from __future__ import annotations

import io
from typing import Any

from flask import Flask
from sqlalchemy import select

from portal.catalog import services
from portal.catalog.models import Product, Upload
from portal.db import get_session
from portal.tenancy import Principal


def import_file(app: Flask, merchant_id: int, content: bytes, filename: str = "catalog.csv", *,
                dry_run: bool = False, mapping: dict[str, str] | None = None, deactivate_missing: bool = False) -> dict[str, Any]:
    """Receive and process a file as the merchant would; returns the upload's result dict."""
    with app.app_context():
        db = get_session()
        principal = Principal(role="merchant_admin", merchant_id=merchant_id)
        upload = services.receive_upload(db, principal, stream=io.BytesIO(content), filename=filename, source="cli")
        if upload.status != "failed":
            if mapping is not None or deactivate_missing:
                services.update_mapping(db, upload, {**upload.mapping, **(mapping or {})}, principal=principal,
                                        deactivate_missing_products=deactivate_missing)
            upload = services.process_upload(db, upload.id, dry_run=dry_run)
        return services.upload_result(db, upload, limit=1000)


def products(app: Flask, merchant_id: int) -> dict[str, Product]:
    with app.app_context():
        rows = get_session().scalars(select(Product).where(Product.merchant_id == merchant_id)).all()
        return {p.sku: p for p in rows}


def upload(app: Flask, upload_id: int) -> Upload:
    with app.app_context():
        return get_session().get(Upload, upload_id)


def csv_bytes(rows: list[list[str]], *, delimiter: str = ",", encoding: str = "utf-8") -> bytes:
    text = "\n".join(delimiter.join(_quote(c, delimiter) for c in row) for row in rows) + "\n"
    return text.encode(encoding)


def _quote(cell: str, delimiter: str) -> str:
    if any(ch in cell for ch in (delimiter, '"', "\n")):
        return '"' + cell.replace('"', '""') + '"'
    return cell
