"""Files that cannot be read fail with one clear message, and the catalog stays exactly as it was."""
from __future__ import annotations

import io
import zipfile

import pytest

from tests.support.catalog import csv_bytes, import_file, products

GOOD = csv_bytes([["sku", "title", "price", "stock"], ["A-1", "Товар", "100", "5"], ["A-2", "Другой", "200", "1"]])


def _zip_bomb() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("[Content_Types].xml", "<Types/>")
        archive.writestr("xl/workbook.xml", "<workbook/>")
        with archive.open("xl/worksheets/sheet1.xml", "w", force_zip64=True) as member:
            block = b"\0" * (1024 * 1024)
            for _ in range(600):
                member.write(block)
    return buffer.getvalue()


def _yml(offers: int) -> bytes:
    body = "".join(
        f'<offer id="Y-{n}"><name>Товар {n}</name><price>{100 + n}</price><currencyId>RUB</currencyId></offer>'
        for n in range(offers)
    )
    return ('<?xml version="1.0" encoding="UTF-8"?><yml_catalog date="2026-11-01"><shop><offers>'
            + body + "</offers></shop></yml_catalog>").encode()


BAD_FILES = {
    "empty": (b"", "catalog.csv"),
    "header only": (b"sku,title,price\n", "catalog.csv"),
    "no sku column": (csv_bytes([["title", "price"], ["Товар", "10"]]), "catalog.csv"),
    "binary named csv": (b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR" + bytes(range(256)) * 8, "catalog.csv"),
    "corrupt xlsx": (b"PK\x03\x04 this is not really a workbook" * 10, "catalog.xlsx"),
    "zip bomb xlsx": (_zip_bomb(), "catalog.xlsx"),
    "huge line": (b"sku,title,price\nA-1," + b"x" * (3 * 1024 * 1024) + b",10\n", "catalog.csv"),
    "mixed encodings": ("sku;title;price\n".encode() + "A-9;Футболка;10\n".encode() * 3000
                        + "A-10;Футболка;10\n".encode("cp1251"), "catalog.csv"),
    "yml broken halfway": (_yml(50)[: len(_yml(50)) // 2], "feed.yml"),
    "pdf": (b"%PDF-1.7 not a catalog", "catalog.pdf"),
}


@pytest.mark.parametrize("name", sorted(BAD_FILES))
def test_unreadable_file_fails_with_one_message_and_changes_nothing(name, app, factory):
    merchant = factory.merchant()
    import_file(app, merchant.id, GOOD)
    before = {sku: (p.title, p.price, p.stock, p.updated_at) for sku, p in products(app, merchant.id).items()}
    content, filename = BAD_FILES[name]
    result = import_file(app, merchant.id, content, filename)
    assert result["status"] == "failed", result
    assert len(result["errors"]) == 1
    error = result["errors"][0]
    assert error["code"] and error["message"] and len(error["message"]) < 300
    after = {sku: (p.title, p.price, p.stock, p.updated_at) for sku, p in products(app, merchant.id).items()}
    assert after == before


def test_file_over_the_size_limit_is_refused(app, factory):
    merchant = factory.merchant()
    app.config["MAX_CONTENT_LENGTH"] = 1024
    result = import_file(app, merchant.id, GOOD + b"A-3,x,1,1\n" * 200)
    assert result["status"] == "failed"
    assert "limit" in result["errors"][0]["message"]
    assert products(app, merchant.id) == {}
