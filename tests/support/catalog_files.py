"""Catalog files as merchants make them (CSV, XLSX, YML, and broken ones) for the reader tests."""
from __future__ import annotations

import codecs
import csv
import io
import zipfile
from collections.abc import Iterable, Sequence
from datetime import date, datetime, time
from pathlib import Path
from xml.sax.saxutils import escape, quoteattr

import xlsxwriter

Cell = str | int | float | bool | date | datetime | time | None


def write_csv(path: Path, rows: Iterable[Sequence[str]], encoding: str = "utf-8", delimiter: str = ",",
              bom: bool = False, newline: str = "\n") -> Path:
    """Rows quoted the way Excel and csv.writer quote them; ``utf-16`` means little-endian."""
    buffer = io.StringIO()
    csv.writer(buffer, delimiter=delimiter, lineterminator=newline).writerows(rows)
    text = buffer.getvalue()
    if encoding == "utf-16":
        data = (codecs.BOM_UTF16_LE if bom else b"") + text.encode("utf-16-le")
    else:
        data = (codecs.BOM_UTF8 if bom else b"") + text.encode(encoding)
    path.write_bytes(data)
    return path


def write_xlsx(path: Path, rows: Iterable[Sequence[Cell]], title_rows: Sequence[str] = (),
               sheet: str = "Лист1", empty_sheets_before: int = 0, notes_sheet: str | None = None) -> Path:
    """Numbers, dates and booleans as real typed cells; each title row is followed by a blank row.

    ``notes_sheet`` puts a one-line sheet of instructions in front, as some suppliers do.
    """
    book = xlsxwriter.Workbook(str(path))
    for n in range(empty_sheets_before):
        book.add_worksheet(f"Empty {n + 1}")
    if notes_sheet is not None:
        book.add_worksheet("Инструкция").write_string(0, 0, notes_sheet)
    worksheet = book.add_worksheet(sheet)
    formats = {
        date: book.add_format({"num_format": "dd.mm.yyyy"}),
        datetime: book.add_format({"num_format": "dd.mm.yyyy hh:mm"}),
        time: book.add_format({"num_format": "hh:mm"}),
    }
    row = 0
    for title in title_rows:
        worksheet.write_string(row, 0, title)
        row += 2
    for values in rows:
        for col, value in enumerate(values):
            _write_cell(worksheet, row, col, value, formats)
        row += 1
    book.close()
    return path


def _write_cell(worksheet, row: int, col: int, value: Cell, formats: dict) -> None:
    if value is None:
        return
    if isinstance(value, bool):
        worksheet.write_boolean(row, col, value)
    elif isinstance(value, (int, float)):
        worksheet.write_number(row, col, value)
    elif isinstance(value, datetime):
        worksheet.write_datetime(row, col, value, formats[datetime])
    elif isinstance(value, date):
        worksheet.write_datetime(row, col, value, formats[date])
    elif isinstance(value, time):
        worksheet.write_datetime(row, col, value, formats[time])
    else:
        worksheet.write_string(row, col, value)


def write_yml(path: Path, offers: Sequence[dict], categories: Sequence[tuple[str, str | None, str]] = (),
              encoding: str = "utf-8", categories_last: bool = False) -> Path:
    """One element per line, so a test can tell which line each <offer> starts on.

    An offer is a dict: ``id`` and ``available`` become attributes, ``params`` a list of (name, unit, value),
    list values repeat the element (pictures, barcodes), everything else is one child element.
    """
    category_lines = ["<categories>"] + [
        f"<category id={quoteattr(cid)}" + (f" parentId={quoteattr(parent)}" if parent else "") + f">{escape(name)}"
        "</category>" for cid, parent, name in categories
    ] + ["</categories>"]
    offer_lines = ["<offers>"]
    for offer in offers:
        offer_lines.extend(_offer_lines(offer))
    offer_lines.append("</offers>")
    body = offer_lines + category_lines if categories_last else category_lines + offer_lines
    lines = [f'<?xml version="1.0" encoding="{encoding}"?>', '<yml_catalog date="2026-11-01 10:00">', "<shop>",
             "<name>Ромашка</name>", "<currencies><currency id=\"RUB\" rate=\"1\"/></currencies>",
             *body, "</shop>", "</yml_catalog>"]
    path.write_bytes(("\n".join(lines) + "\n").encode(encoding))
    return path


def _offer_lines(offer: dict) -> list[str]:
    attributes = "".join(f" {name}={quoteattr(str(offer[name]))}" for name in ("id", "available") if name in offer)
    lines = [f"<offer{attributes}>"]
    for name, value in offer.items():
        if name in ("id", "available"):
            continue
        if name == "params":
            for param, unit, text in value:
                unit_attr = f" unit={quoteattr(unit)}" if unit else ""
                lines.append(f"<param name={quoteattr(param)}{unit_attr}>{escape(text)}</param>")
            continue
        for item in value if isinstance(value, list) else [value]:
            lines.append(f"<{name}>{escape(str(item))}</{name}>")
    lines.append("</offer>")
    return lines


def offer_lines(path: Path) -> list[int]:
    """Line numbers (1-based) of the <offer> start tags in a feed."""
    text = path.read_bytes().decode("utf-8", errors="replace")
    return [n for n, line in enumerate(text.split("\n"), 1) if line.lstrip().startswith("<offer ")]


def write_zip_bomb(path: Path, unpacked: int = 600 * 1024 * 1024) -> Path:
    """A workbook-shaped zip whose one member inflates to ``unpacked`` bytes of zeros.

    Level 1 deflates zeros about 230:1 in a third of the time level 6 takes: the test stays fast and small.
    """
    block = b"\x00" * (1024 * 1024)
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=1) as archive:
        archive.writestr("xl/workbook.xml", "<workbook/>")
        with archive.open("xl/worksheets/sheet1.xml", "w", force_zip64=True) as member:
            for _ in range(unpacked // len(block)):
                member.write(block)
    return path
