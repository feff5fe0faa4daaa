"""Open a merchant's catalog file (CSV, XLSX or YML) as it was uploaded and stream its cells as text."""
from __future__ import annotations

import codecs
import csv
import io
import itertools
import math
import re
import zipfile
import zlib
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

import fastexcel
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv
from charset_normalizer import from_bytes
from flask_babel import gettext
from lxml import etree

from portal.errors import PortalError

MB = 1024 * 1024
MAX_BYTES = 200 * MB
MAX_LINE_BYTES = 1 * MB
MAX_UNPACKED_BYTES = 500 * MB
MAX_ZIP_RATIO = 200
# Small members (styles, shared strings of a few repeated words) legitimately compress very well.
ZIP_RATIO_MIN_BYTES = 1 * MB
SAMPLE_BYTES = 1 * MB
BLOCK_BYTES = 1 * MB
HEADER_SCAN_ROWS = 20
SAMPLE_RECORDS = 200
ROW = "__row__"

CSV_EXTENSIONS = {".csv", ".txt", ".tsv"}
XLSX_EXTENSIONS = {".xlsx", ".xlsm"}
YML_EXTENSIONS = {".yml", ".xml"}
DELIMITERS = (",", ";", "\t", "|")
OLE_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
ZIP_MAGIC = b"PK\x03\x04"
BINARY_MAGICS = (b"%PDF", b"\x89PNG", b"GIF8", b"\xff\xd8\xff", b"Rar!", b"7z\xbc\xaf", b"\x1f\x8b")
ENCODING_NAMES = {"utf-8": "UTF-8", "cp1251": "Windows-1251", "utf-16": "UTF-16"}

_CONTROL_BYTES = bytes(range(0, 9)) + b"\x0b\x0c" + bytes(range(14, 26)) + bytes(range(27, 32))
_CONTROL_RE = re.compile(b"[" + re.escape(_CONTROL_BYTES) + b"]")
# UTF-8 Cyrillic is 0xD0/0xD1 followed by a continuation byte; read as Windows-1251 it is "Р"/"С" plus
# punctuation, and real Russian text never has three such pairs in a row.
_UTF8_CYRILLIC_RUN = re.compile(rb"(?:[\xd0\xd1][\x80-\xbf]){3,}")
_CYRILLIC = re.compile("[А-яЁёІіЇїЄєҐґЎў]")
# Approximate letter frequencies of Russian text, in percent; Ukrainian letters get small shares of their own.
_LETTER_LOG_FREQUENCY = {letter: math.log(share) for letter, share in {
    "о": 10.97, "е": 8.45, "а": 8.01, "и": 7.35, "н": 6.70, "т": 6.26, "с": 5.47, "р": 4.73, "в": 4.54, "л": 4.40,
    "к": 3.49, "м": 3.21, "д": 2.98, "п": 2.81, "у": 2.62, "я": 2.01, "ы": 1.90, "ь": 1.74, "г": 1.70, "з": 1.65,
    "б": 1.59, "ч": 1.44, "й": 1.21, "х": 0.97, "ж": 0.94, "ш": 0.73, "ю": 0.64, "ц": 0.48, "щ": 0.36, "э": 0.32,
    "ф": 0.26, "ъ": 0.04, "ё": 0.04, "і": 0.5, "ї": 0.1, "є": 0.1, "ґ": 0.02, "ў": 0.02,
}.items()}
_RARE_LETTER = math.log(0.01)
_CP1251_PUNCTUATION = re.compile("[«»–—№“”„‘’…•°±™©®§\u00a0€‰]")
_GLUED_TO_LATIN = re.compile("[A-Za-z][\u0400-\u04ff]|[\u0400-\u04ff][A-Za-z]")
_NUMBERISH = re.compile(r"^[\s+\-−]*[\d\s.,:/\-]*\d[\d\s.,:/\-]*(?:[eE][+-]?\d+)?\s*(?:₽|руб\.?|р\.?|rub|\$|€|%)?\s*$",
                        re.IGNORECASE)
_LXML_POSITION = re.compile(r",\s*line \d+, column \d+\s*$")


class UnreadableFile(PortalError):
    """The uploaded file cannot be read as a catalog; ``code`` says why, the message says what and where."""

    status = 422
    code = "unreadable_file"


@dataclass
class CatalogFile:
    """An opened catalog: its shape is known, its rows come from ``chunks()`` as often as asked."""

    format: str
    columns: list[str]
    header_row: int
    encoding: str | None = None
    delimiter: str | None = None
    sheet: str | None = None
    categories: dict[str, tuple[str | None, str]] = field(default_factory=dict)
    rows: int | None = None
    _read: Callable[[int], Iterator[pd.DataFrame]] | None = field(default=None, repr=False, compare=False)

    def chunks(self, size: int = 50_000) -> Iterator[pd.DataFrame]:
        """Text frames of at most ``size`` rows with ``columns`` plus ``__row__``; each call reads the file afresh."""
        if self._read is None or size < 1:
            raise ValueError("chunks() needs a reader and a positive size")
        seen = False
        for frame in self._read(size):
            seen = seen or not frame.empty
            if not frame.empty:
                yield frame
        # Only reached for files whose sample looked fine but held no rows after all (huge blank tails).
        if not seen:
            raise _no_rows()


def open_catalog(path: str | Path, filename: str, *, max_bytes: int = MAX_BYTES, scan: bool = True) -> CatalogFile:
    """Check the upload enough that an unreadable file fails here, before any row is processed.

    ``scan=False`` is for a file checked so when it was received: it skips the pass over a whole CSV
    file (its checks still run as the rows are read, inside a transaction a failure rolls back) and
    the unpacking of a workbook that proves it is no zip bomb.
    """
    path = Path(path)
    size = path.stat().st_size
    if size > max_bytes:
        raise UnreadableFile(gettext("The file is larger than the %(limit)s limit.", limit=_size_text(max_bytes)),
                             code="too_large")
    if size == 0:
        raise _empty()
    with path.open("rb") as handle:
        head = handle.read(SAMPLE_BYTES)
    kind = _kind(path, filename, head)
    if kind == "xlsx":
        return _open_xlsx(path, check_zip=scan)
    if kind == "yml":
        return _open_yml(path, head)
    return _open_csv(path, head, complete=size <= SAMPLE_BYTES, scan=scan)


# --- errors -------------------------------------------------------------------------------------------------------

def _empty() -> UnreadableFile:
    return UnreadableFile(gettext("The file is empty."), code="empty_file")


def _no_rows() -> UnreadableFile:
    return UnreadableFile(gettext("The file has a header but no rows."), code="no_rows")


def _damaged_xlsx() -> UnreadableFile:
    return UnreadableFile(gettext("The XLSX file is damaged and cannot be opened."), code="damaged_xlsx")


def _zip_bomb(ratio: bool = False) -> UnreadableFile:
    if ratio:
        message = gettext("The XLSX file is compressed more than %(ratio)s to 1; it is refused as a possible zip "
                          "bomb.", ratio=MAX_ZIP_RATIO)
    else:
        message = gettext("The XLSX file unpacks to more than %(limit)s; it is refused as a possible zip bomb.",
                          limit=_size_text(MAX_UNPACKED_BYTES))
    return UnreadableFile(message, code="zip_bomb")


def _mixed(encoding: str, line: int) -> UnreadableFile:
    name = ENCODING_NAMES.get(encoding, encoding)
    return UnreadableFile(
        gettext("The file mixes text encodings: it reads as %(encoding)s but line %(line)s is not valid %(encoding)s.",
                encoding=name, line=line),
        code="mixed_encoding",
    )


def _binary(where: str) -> UnreadableFile:
    return UnreadableFile(
        gettext("This does not look like a CSV file: it contains binary data (%(where)s).", where=where),
        code="binary_file",
    )


def _line_too_long(line: int) -> UnreadableFile:
    return UnreadableFile(gettext("Line %(line)s is longer than %(limit)s.", line=line,
                                  limit=_size_text(MAX_LINE_BYTES)), code="line_too_long")


def _size_text(size: int) -> str:
    if size >= MB:
        return gettext("%(size)s MB", size=f"{size / MB:g}")
    if size >= 1024:
        return gettext("%(size)s KB", size=f"{size / 1024:g}")
    return gettext("%(size)s B", size=size)


# --- choosing the reader --------------------------------------------------------------------------------------------

def _kind(path: Path, filename: str, head: bytes) -> str:
    """The extension decides, except where the content plainly says otherwise (renamed workbooks)."""
    ext = Path(filename).suffix.lower()
    if head.startswith(OLE_MAGIC):
        raise UnreadableFile(
            gettext("This is an old Excel file (.xls) or a password-protected workbook: open it in Excel, "
                    "save it as XLSX without a password and upload it again."),
            code="old_excel",
        )
    if head.startswith(ZIP_MAGIC) and ext not in XLSX_EXTENSIONS and _is_workbook(path):
        return "xlsx"
    if ext == ".xls":
        raise UnreadableFile(gettext("This is an old Excel file (.xls): open it in Excel, save it as XLSX and "
                                     "upload it again."), code="old_excel")
    if ext in XLSX_EXTENSIONS:
        return "xlsx"
    if ext in YML_EXTENSIONS:
        return "yml"
    if ext in CSV_EXTENSIONS:
        return "csv"
    if _looks_like_xml(head):
        return "yml"
    if _looks_like_text(head):
        return "csv"
    raise UnreadableFile(
        gettext("Unsupported file type %(ext)s: upload CSV, XLSX or YML (XML).", ext=ext or gettext("(no extension)")),
        code="unsupported_type",
    )


def _is_workbook(path: Path) -> bool:
    try:
        with zipfile.ZipFile(path) as archive:
            return "xl/workbook.xml" in archive.namelist()
    except (zipfile.BadZipFile, OSError):
        return False


def _looks_like_xml(head: bytes) -> bool:
    start = _strip_bom(head)[:512].lstrip()
    return start.startswith((b"<?xml", b"<yml_catalog", b"<!DOCTYPE yml_catalog"))


def _looks_like_text(head: bytes) -> bool:
    if head.startswith(BINARY_MAGICS):
        return False
    if head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)) or _bare_utf16(head):
        return True
    sample = head[:8192]
    return b"\x00" not in sample and _control_count(sample) <= max(8, len(sample) // 100)


def _strip_bom(data: bytes) -> bytes:
    return data[3:] if data.startswith(codecs.BOM_UTF8) else data


def _control_count(data: bytes) -> int:
    return len(data) - len(data.translate(None, _CONTROL_BYTES))


# --- CSV: encoding --------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class _Encoding:
    name: str       # what CatalogFile.encoding reports
    codec: str      # what Python decodes with
    skip: int       # BOM bytes the decoder must not see


def _detect_encoding(path: Path, head: bytes, complete: bool) -> _Encoding:
    """BOM, then UTF-8, then Windows-1251; where the text changes encoding the full scan names the line."""
    if head.startswith(codecs.BOM_UTF8):
        return _Encoding("utf-8-sig", "utf-8", 3)
    if head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return _Encoding("utf-16", "utf-16", 0)
    bare = _bare_utf16(head)
    if bare:
        return _Encoding("utf-16", bare, 0)
    _refuse_binary(head)
    # English headers and SKUs can fill the first megabyte: judge by the first text that is not ASCII.
    sample = _first_non_ascii(path, len(head)) if not complete and head.isascii() else head
    if sample is None or _starts_as_utf8(sample):
        return _Encoding("utf-8", "utf-8", 0)
    return _legacy_encoding(sample)


def _first_non_ascii(path: Path, start: int) -> bytes | None:
    """From the start of the first line holding a non-ASCII byte: a character boundary in any ASCII superset."""
    with path.open("rb") as handle:
        handle.seek(start)
        while block := handle.read(BLOCK_BYTES):
            if not block.isascii():
                match = re.search(rb"[\x80-\xff]", block)
                position = match.start() if match else 0
                return block[block.rfind(b"\n", 0, position) + 1:]
    return None


def _starts_as_utf8(sample: bytes) -> bool:
    try:
        codecs.getincrementaldecoder("utf-8")().decode(sample, final=False)
        return True
    except UnicodeDecodeError as exc:
        before = sample[: exc.start].decode("utf-8", errors="replace")
    # Real UTF-8 characters before the first bad byte: a UTF-8 file that changes later, not a 1251 one.
    return sum(1 for ch in before if ord(ch) > 127) >= 3


def _bare_utf16(head: bytes) -> str | None:
    """UTF-16 without a BOM shows as NUL bytes in every other position (ASCII digits, delimiters, newlines)."""
    sample = head[:8192]
    if len(sample) < 8:
        return None
    even, odd = sample[0::2], sample[1::2]
    even_nul, odd_nul = even.count(0) / len(even), odd.count(0) / len(odd)
    codec = "utf-16-le" if odd_nul >= 0.25 and even_nul <= 0.02 else (
        "utf-16-be" if even_nul >= 0.25 and odd_nul <= 0.02 else None)
    if codec is None:
        return None
    try:
        codecs.getincrementaldecoder(codec)().decode(sample[: len(sample) // 2 * 2])
    except UnicodeDecodeError:
        return None
    return codec


def _refuse_binary(head: bytes) -> None:
    if head.startswith(BINARY_MAGICS) or head.startswith(ZIP_MAGIC):
        raise _binary(gettext("at byte %(byte)s", byte=1))
    nul = head.find(b"\x00")
    if nul >= 0:
        raise _binary(gettext("at byte %(byte)s", byte=nul + 1))
    if _control_count(head) > max(8, len(head) // 100):
        match = _CONTROL_RE.search(head)
        raise _binary(gettext("at byte %(byte)s", byte=match.start() + 1 if match else 1))


def _legacy_encoding(sample: bytes) -> _Encoding:
    """Not UTF-8: Windows-1251 is the one legacy encoding promised; anything else is refused by name."""
    window = sample[:65536]
    try:
        text = window.decode("cp1251")
    except UnicodeDecodeError:
        text = None
    if text is not None and _reads_as_russian(text):
        if not _reads_better_as_koi8(text, window):
            return _Encoding("cp1251", "cp1251", 0)
        guess = "KOI8-R"
    else:
        best = from_bytes(window).best()
        guess = best.encoding if best is not None else ""
    raise UnreadableFile(
        gettext("The file's text encoding%(guess)s is not supported: save it as UTF-8 (or Windows-1251) and "
                "upload it again.", guess=f" ({guess})" if guess else ""),
        code="unsupported_encoding",
    )


def _reads_as_russian(text: str) -> bool:
    non_ascii = sum(1 for ch in text if ord(ch) > 127)
    cyrillic = len(_CYRILLIC.findall(text))
    if not non_ascii or (cyrillic + len(_CP1251_PUNCTUATION.findall(text))) < 0.9 * non_ascii:
        return False
    # Latin-1 text read as 1251 also turns into Cyrillic letters, but single ones glued to Latin words.
    return len(_GLUED_TO_LATIN.findall(text)) <= 0.2 * cyrillic


def _reads_better_as_koi8(text: str, raw: bytes) -> bool:
    """KOI8-R also decodes to Cyrillic letters, only the wrong ones; a word or two cannot tell, so 1251 wins ties."""
    if len(_CYRILLIC.findall(text)) < 20:
        return False
    return _russian_score(raw.decode("koi8_r", errors="replace")) > _russian_score(text) + 0.15


def _russian_score(text: str) -> float:
    """Mean log-frequency of the Cyrillic letters: real Russian is mostly о, е, а, и, н; mojibake is not."""
    letters = _CYRILLIC.findall(text.lower())
    if not letters:
        return -math.inf
    return sum(_LETTER_LOG_FREQUENCY.get(letter, _RARE_LETTER) for letter in letters) / len(letters)


# --- CSV: shape -----------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class _CsvPlan:
    encoding: _Encoding
    delimiter: str
    cr_lines: bool          # classic Mac files end lines with a bare CR
    header_lines: int       # physical lines up to and including the header record
    width: int


def _open_csv(path: Path, head: bytes, *, complete: bool, scan: bool = True) -> CatalogFile:
    encoding = _detect_encoding(path, head, complete)
    text = _sample_text(head, encoding, complete)
    if not text.strip():
        raise _empty()
    cr_lines = "\n" not in text and "\r" in text
    if cr_lines:
        text = text.replace("\r", "\n")
    delimiter = _detect_delimiter(text)
    records = _records(text, delimiter, SAMPLE_RECORDS)
    numbered = [(n, cells) for n, (cells, _) in enumerate(records, 1) if _filled(cells)]
    if not numbered:
        raise _empty()
    header_at = _pick_header(numbered[:HEADER_SCAN_ROWS])
    header_row, header = numbered[header_at]
    data = [cells for _, cells in numbered[header_at + 1:]]
    if complete and not data:
        raise _no_rows()
    width = _width(header, data)
    plan = _CsvPlan(encoding, delimiter, cr_lines, records[header_row - 1][1], width)
    # One quick pass over the whole file: encoding switches, binary junk and giant lines fail the upload now.
    if scan:
        with _CheckedStream(path, plan) as stream:
            stream.scan()
    columns = _column_names(header[:width] + [""] * (width - len(header)))
    return CatalogFile(
        format="csv", columns=columns, header_row=header_row, encoding=encoding.name, delimiter=delimiter,
        _read=lambda size: _csv_chunks(path, plan, columns, header_row, size),
    )


def _sample_text(head: bytes, encoding: _Encoding, complete: bool) -> str:
    decoder = codecs.getincrementaldecoder(encoding.codec)("replace")
    text = decoder.decode(head[encoding.skip:], final=complete)
    if not complete and "\n" in text:
        text = text[: text.rindex("\n") + 1]
    return text.lstrip("\ufeff")


def _records(text: str, delimiter: str, limit: int) -> list[tuple[list[str], int]]:
    """The first records with the number of physical lines read once each is complete."""
    pieces = text.split("\n")
    lines = (piece + "\n" for piece in pieces[:-1])
    tail = [pieces[-1]] if pieces[-1] else []
    reader = csv.reader(itertools.chain(lines, tail), delimiter=delimiter, quotechar='"', doublequote=True, strict=False)
    found: list[tuple[list[str], int]] = []
    try:
        for cells in reader:
            found.append((cells, reader.line_num))
            if len(found) >= limit:
                break
    except csv.Error:
        pass  # a giant cell in the sample: what was read before it is enough to see the shape
    return found


def _detect_delimiter(text: str) -> str:
    """The candidate that splits the first records into the same number (>1) of cells most consistently."""
    snippet = "\n".join(text.split("\n", 120)[:120])
    best: tuple[float, int, str] | None = None
    for delimiter in DELIMITERS:
        counts = [len(cells) for cells, _ in _records(snippet, delimiter, 60) if _filled(cells)]
        if not counts:
            continue
        width, hits = Counter(counts).most_common(1)[0]
        if width < 2:
            continue
        score = (round(hits / len(counts), 1), width, delimiter)
        if best is None or score[:2] > best[:2]:
            best = score
    return best[2] if best else ","


def _filled(cells: list[str]) -> bool:
    return any(cell.strip() for cell in cells)


def _pick_header(rows: list[tuple[int, list[str]]]) -> int:
    """Skip title rows: the header is the first row with most of the text cells and values under it."""
    texts = [sum(1 for cell in cells if cell.strip() and not _NUMBERISH.match(cell)) for _, cells in rows]
    most = max(texts)
    needed = max(min(2, most), (most + 1) // 2)
    for i, (_, cells) in enumerate(rows):
        if texts[i] < needed:
            continue
        if i + 1 < len(rows):
            named = [j for j, cell in enumerate(cells) if cell.strip()]
            below = rows[i + 1][1]
            under = sum(1 for j in named if j < len(below) and below[j].strip())
            if under * 2 < len(named):
                continue
        return i
    return 0


def _width(header: list[str], data: list[list[str]]) -> int:
    """Named columns, plus unnamed ones only where the sampled rows have values (Excel pads with ;;;)."""
    width = _last_filled(header)
    for cells in data:
        width = max(width, _last_filled(cells))
    return max(width, 1)


def _last_filled(cells: list[str]) -> int:
    for i in range(len(cells) - 1, -1, -1):
        if cells[i].strip():
            return i + 1
    return 0


def _column_names(cells: list[str]) -> list[str]:
    names: list[str] = []
    taken = {ROW}
    for position, cell in enumerate(cells, 1):
        base = cell.strip().lstrip("\ufeff").strip() or f"Column {position}"
        name, n = base, 2
        while name in taken:
            name, n = f"{base} ({n})", n + 1
        taken.add(name)
        names.append(name)
    return names


# --- CSV: streaming -------------------------------------------------------------------------------------------------

class _CheckedStream(io.RawIOBase):
    """The file as UTF-8 bytes for pandas, checked block by block, starting after the header record.

    A first line of bare delimiters stands in for the header: pandas then knows the full width even when
    every row in a chunk is shorter, and it drops extra cells of longer rows instead of failing.
    """

    def __init__(self, path: Path, plan: _CsvPlan):
        super().__init__()
        self._plan = plan
        self._file: BinaryIO = path.open("rb")
        self._file.seek(plan.encoding.skip)
        self._decoder = codecs.getincrementaldecoder(plan.encoding.codec)("strict")
        self._passthrough = plan.encoding.codec == "utf-8"
        self._to_skip = plan.header_lines
        self._line = 0          # physical lines fully seen
        self._line_bytes = 0    # bytes of the line still open at the end of the last block
        self._buffer = b""
        self.tail = b""         # the bytes after the last line break so far: the last line, when it is unended
        self._carry = b""       # the start of a UTF-8 character cut by the end of the last block
        self._offset = 0
        self._done = False

    def readable(self) -> bool:
        return True

    def readinto(self, target: memoryview) -> int:  # type: ignore[override]
        while self._offset >= len(self._buffer) and not self._done:
            self._buffer, self._offset = self._next_block(), 0
        n = min(len(target), len(self._buffer) - self._offset)
        target[:n] = self._buffer[self._offset:self._offset + n]
        self._offset += n
        return n

    def close(self) -> None:
        self._file.close()
        super().close()

    def scan(self) -> None:
        """Run every check over the whole file without handing the bytes to anyone."""
        while not self._done:
            self._next_block()

    def _next_block(self) -> bytes:
        raw = self._file.read(BLOCK_BYTES)
        self._done = not raw
        if self._passthrough:
            out = self._checked_utf8(raw)
        else:
            out = self._decoded(raw)
        if self._plan.cr_lines:
            out = out.replace(b"\r", b"\n")
        newlines = self._check_line_lengths(out)
        self._line += newlines
        last_break = out.rfind(b"\n")
        self.tail = out[last_break + 1:] if last_break >= 0 else self.tail + out
        return self._after_header(out, newlines)

    def _decoded(self, raw: bytes) -> bytes:
        """A block of a CP1251 or UTF-16 file as UTF-8."""
        if self._plan.encoding.name == "cp1251":
            self._refuse_utf8_runs(raw)
        try:
            text = self._decoder.decode(raw, final=self._done)
        except UnicodeDecodeError as exc:
            prefix = raw[: max(exc.start, 0)].decode(self._plan.encoding.codec, errors="replace")
            raise _mixed(_family(self._plan.encoding.name), self._line + prefix.count("\n") + 1) from None
        if "\x00" in text:
            raise _binary(gettext("at line %(line)s", line=self._line + text[: text.index("\x00")].count("\n") + 1))
        return text.encode("utf-8")

    def _checked_utf8(self, raw: bytes) -> bytes:
        """A block of a UTF-8 file as it is, once Arrow has validated it (no Python string is made).

        A character split by the block's end waits for the next block; Python's decoder is asked only
        to place an error that Arrow found.
        """
        data = self._carry + raw if self._carry else raw
        cut = len(data) if self._done else _utf8_boundary(data)
        block, self._carry = data[:cut], data[cut:]
        if not _valid_utf8(block):
            try:
                block.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise _mixed("utf-8", self._line + block.count(b"\n", 0, max(exc.start, 0)) + 1) from None
        if b"\x00" in block:
            raise _binary(gettext("at line %(line)s", line=self._line + block.count(b"\n", 0, block.index(b"\x00")) + 1))
        return block

    def _refuse_utf8_runs(self, raw: bytes) -> None:
        match = _UTF8_CYRILLIC_RUN.search(raw)
        if match:
            raise _mixed("cp1251", self._line + raw.count(b"\n", 0, match.start()) + 1)

    def _check_line_lengths(self, out: bytes) -> int:
        ends = np.flatnonzero(np.frombuffer(out, dtype=np.uint8) == 10)
        if ends.size == 0:
            self._line_bytes += len(out)
            if self._line_bytes > MAX_LINE_BYTES:
                raise _line_too_long(self._line + 1)
            return 0
        if self._line_bytes + int(ends[0]) > MAX_LINE_BYTES:
            raise _line_too_long(self._line + 1)
        if ends.size > 1:
            gaps = np.diff(ends) - 1
            longest = int(gaps.argmax())
            if gaps[longest] > MAX_LINE_BYTES:
                raise _line_too_long(self._line + longest + 2)
        self._line_bytes = len(out) - int(ends[-1]) - 1
        if self._line_bytes > MAX_LINE_BYTES:
            raise _line_too_long(self._line + int(ends.size) + 1)
        return int(ends.size)

    def _after_header(self, out: bytes, newlines: int) -> bytes:
        if self._to_skip <= 0:
            return out
        if newlines < self._to_skip:
            self._to_skip -= newlines
            return b""
        cut = -1
        for _ in range(self._to_skip):
            cut = out.index(b"\n", cut + 1)
        self._to_skip = 0
        stand_in = (self._plan.delimiter * (self._plan.width - 1) + "\n").encode()
        return stand_in + out[cut + 1:]


def _utf8_boundary(data: bytes) -> int:
    """The length of ``data`` up to the last complete UTF-8 character (an invalid tail is left to validation)."""
    end = len(data)
    start = end - 1
    while start >= 0 and end - start < 4 and data[start] & 0xC0 == 0x80:
        start -= 1
    if start < 0:
        return end
    lead = data[start]
    size = 1 if lead < 0x80 else 2 if lead < 0xE0 else 3 if lead < 0xF0 else 4
    return end if end - start >= size else start


def _valid_utf8(block: bytes) -> bool:
    """Arrow's (vectorised) UTF-8 validation of one block, without copying it."""
    if not block:
        return True
    offsets = np.array([0, len(block)], dtype=np.int32)
    array = pa.Array.from_buffers(pa.string(), 1, [None, pa.py_buffer(offsets), pa.py_buffer(block)])
    try:
        array.validate(full=True)
    except pa.ArrowInvalid:
        return False
    return True


def _family(name: str) -> str:
    return "utf-8" if name.startswith("utf-8") else name


def _csv_chunks(path: Path, plan: _CsvPlan, columns: list[str], header_row: int,
                size: int) -> Iterator[pd.DataFrame]:
    """Arrow's CSV reader (C++, several threads, no Python objects per cell) for files it reads exactly
    as pandas would; the rest of the file goes through pandas' reader, which pads short rows, cuts long
    ones and names the row of an unclosed quote."""
    fast = _ArrowCsv(path, plan, columns, header_row, size)
    try:
        yield from fast.chunks()
    except _NeedsPandas:
        yield from _pandas_csv_chunks(path, plan, columns, header_row, size, skip=fast.records_done)


class _NeedsPandas(Exception):
    """The Arrow reader met a row it would read differently from pandas (or not at all)."""


class _ArrowCsv:
    BLOCK = 8 * MB

    def __init__(self, path: Path, plan: _CsvPlan, columns: list[str], header_row: int, size: int):
        self.path, self.plan, self.columns, self.header_row, self.size = path, plan, columns, header_row, size
        self.records_done = 0  # records (blank ones too) already handed out as chunks

    def chunks(self) -> Iterator[pd.DataFrame]:
        names = [str(i) for i in range(self.plan.width)]
        read = pa_csv.ReadOptions(block_size=self.BLOCK, skip_rows=1, column_names=names)  # row 1: the stand-in
        parse = pa_csv.ParseOptions(delimiter=self.plan.delimiter, quote_char='"', double_quote=True,
                                    escape_char=False, newlines_in_values=True, ignore_empty_lines=False)
        convert = pa_csv.ConvertOptions(column_types=dict.fromkeys(names, pa.large_string()), check_utf8=False,
                                        strings_can_be_null=False, quoted_strings_can_be_null=False)
        pending: list[pa.RecordBatch] = []
        buffered = 0
        with _CheckedStream(self.path, self.plan) as stream:
            try:
                reader = pa_csv.open_csv(stream, read_options=read, parse_options=parse, convert_options=convert)
            except pa.ArrowInvalid:
                raise _NeedsPandas from None  # a ragged or broken first block
            with reader:
                while True:
                    try:
                        batch = reader.read_next_batch()
                    except StopIteration:
                        break
                    except pa.ArrowInvalid:
                        raise _NeedsPandas from None  # a row with too few or too many cells
                    pending.append(batch)
                    buffered += batch.num_rows
                    # At least one row stays behind until the end, so the last row is checked before it goes.
                    while buffered > self.size:
                        table = pa.Table.from_batches(pending)
                        yield self._frame(table.slice(0, self.size))
                        rest = table.slice(self.size)
                        pending, buffered = rest.to_batches(), rest.num_rows
            tail = stream.tail
        if buffered:
            table = pa.Table.from_batches(pending)
            self._check_last_record(table, tail)
            yield self._frame(table)

    def _frame(self, table: pa.Table) -> pd.DataFrame:
        frame = table.to_pandas()
        start = self.records_done + 1  # the stand-in header is record 0, as in pandas' reading
        frame.index = pd.RangeIndex(start, start + len(frame))
        self.records_done += len(frame)
        return _csv_frame(frame, self.columns, self.header_row)

    def _check_last_record(self, table: pa.Table, tail: bytes) -> None:
        """Arrow takes a quote left open at the end of the file as a cell running to the end; pandas names it.

        A cell of the last row that holds a line break, or a last line without one that pandas cannot
        parse, sends the file to pandas.
        """
        last = table.slice(table.num_rows - 1)
        for column in last.columns:
            if pc.any(pc.match_substring(column, "\n")).as_py() or pc.any(pc.match_substring(column, "\r")).as_py():
                raise _NeedsPandas
        if b'"' in tail:
            try:
                pd.read_csv(io.BytesIO(tail), sep=self.plan.delimiter, header=None, dtype=str, engine="c",
                            keep_default_na=False, na_filter=False, quotechar='"', doublequote=True)
            except pd.errors.ParserError:
                raise _NeedsPandas from None


def _pandas_csv_chunks(path: Path, plan: _CsvPlan, columns: list[str], header_row: int,
                       size: int, *, skip: int = 0) -> Iterator[pd.DataFrame]:
    """pandas' reader; the first ``skip`` records after the header were read already and are left out."""
    with _CheckedStream(path, plan) as stream:
        reader = pd.read_csv(
            stream, sep=plan.delimiter, header=None, names=range(plan.width), usecols=range(plan.width),
            dtype=str, keep_default_na=False, na_filter=False, skip_blank_lines=False, index_col=False,
            engine="c", encoding="utf-8", quotechar='"', doublequote=True, chunksize=size,
        )
        with reader:
            try:
                # The stand-in header line is row 0 of the first read: ask for one more so chunks stay full.
                frame = reader.get_chunk(size + 1).iloc[1:]
                while True:
                    if skip:
                        frame = frame.loc[frame.index > skip]
                    if len(frame):
                        yield _csv_frame(frame, columns, header_row)
                    frame = reader.get_chunk(size)
            except (StopIteration, pd.errors.EmptyDataError):
                return  # chunks() tells the merchant when nothing at all was read
            except pd.errors.ParserError as exc:
                raise _broken_csv(str(exc), header_row) from None


def _csv_frame(frame: pd.DataFrame, columns: list[str], header_row: int) -> pd.DataFrame:
    frame.columns = columns
    keep = _non_blank(frame)
    if not keep.all():
        frame = frame.loc[keep]
    frame[ROW] = (frame.index.to_numpy(dtype=np.int64) + header_row)
    return frame.reset_index(drop=True)


def _non_blank(frame: pd.DataFrame) -> np.ndarray:
    """Rows with any non-blank cell; usually the first column settles almost every row."""
    keep = np.zeros(len(frame), dtype=bool)
    for column in frame.columns:
        pending = np.flatnonzero(~keep)
        if pending.size == 0:
            break
        values = frame[column] if pending.size == len(frame) else frame[column].iloc[pending]
        keep[pending] = values.str.strip().ne("").to_numpy(dtype=bool)
    return keep


def _broken_csv(message: str, header_row: int) -> UnreadableFile:
    match = re.search(r"EOF inside string starting at row (\d+)", message)
    if match:
        return UnreadableFile(
            gettext("The quoted cell that starts in row %(row)s is never closed.",
                    row=header_row + int(match.group(1))),
            code="broken_csv",
        )
    return UnreadableFile(gettext("The CSV file cannot be parsed: %(error)s", error=message), code="broken_csv")


# --- XLSX -----------------------------------------------------------------------------------------------------------

def _open_xlsx(path: Path, *, check_zip: bool = True) -> CatalogFile:
    if check_zip:
        _check_zip(path)
    name, table, header_row, columns, width = _first_table(_workbook(path))
    # Loading a sheet is most of the cost of an XLSX: the first chunks() reuses this one, later ones reload.
    loaded = [table]

    def read(size: int) -> Iterator[pd.DataFrame]:
        sheet = loaded.pop() if loaded else _sheet_table(_workbook(path), name)[0]
        return _xlsx_chunks(sheet, header_row, width, columns, size)

    # The sheet's height less the header: blank rows count too, so this is what progress is measured against.
    rows = max(1, table.num_rows - header_row)
    return CatalogFile(format="xlsx", columns=columns, header_row=header_row, sheet=name, rows=rows, _read=read)


def _first_table(book: fastexcel.ExcelReader) -> tuple[str, pa.Table, int, list[str], int]:
    """The first sheet holding a table (a notes sheet in front of the price list is common).

    Visible sheets come first, in workbook order; a hidden sheet is read only when nothing else has data.
    """
    header_only = False
    hidden: list[str] = []
    for name in [*book.sheet_names, None]:
        if name is None:
            if not hidden:
                break
            name = hidden.pop(0)
            table, visible = _sheet_table(book, name)
        else:
            table, visible = _sheet_table(book, name)
            if not visible:
                hidden.append(name)
                continue
        shape = _table_shape(table)
        if shape is not None and shape[1]:
            return name, table, *shape
        header_only = header_only or shape is not None
    if header_only:
        raise _no_rows()
    raise UnreadableFile(gettext("The workbook has no data: every sheet is empty."), code="empty_file")


def _check_zip(path: Path) -> None:
    """Refuse zip bombs by the declared sizes, then unpack once to prove those sizes (and the CRCs) true."""
    try:
        with zipfile.ZipFile(path) as archive:
            members = archive.infolist()
            if "xl/workbook.xml" not in {m.filename for m in members}:
                raise _damaged_xlsx()
            if sum(m.file_size for m in members) > MAX_UNPACKED_BYTES:
                raise _zip_bomb()
            if any(m.file_size > ZIP_RATIO_MIN_BYTES and m.file_size > MAX_ZIP_RATIO * max(m.compress_size, 1)
                   for m in members):
                raise _zip_bomb(ratio=True)
            unpacked = 0
            for member in members:
                with archive.open(member) as stream:
                    while chunk := stream.read(BLOCK_BYTES):
                        unpacked += len(chunk)
                        if unpacked > MAX_UNPACKED_BYTES:
                            raise _zip_bomb()
    except (zipfile.BadZipFile, zlib.error, EOFError, OSError, NotImplementedError, RuntimeError):
        raise _damaged_xlsx() from None


def _workbook(path: Path) -> fastexcel.ExcelReader:
    try:
        return fastexcel.read_excel(str(path))
    except (fastexcel.FastExcelError, ValueError, OSError):
        raise _damaged_xlsx() from None


def _sheet_table(book: fastexcel.ExcelReader, name: str) -> tuple[pa.Table, bool]:
    """Every cell of a sheet as text (nulls where empty), row i of the table being sheet row i+1.

    fastexcel (calamine in Rust) turns cells into Arrow strings without a Python object per cell:
    numbers as Excel's General format shows them (up to nine decimals, no exponent), so 4601234567893
    stays a barcode; dates and booleans are written the way Excel shows them (see ``_as_shown``).
    """
    try:
        # header_row=None with skip_rows=0 keeps the blank rows above the data, so row numbers stay the sheet's.
        sheet = book.load_sheet(name, header_row=None, skip_rows=0, dtypes="string")
        table = pa.Table.from_batches([sheet.to_arrow()])
    except (fastexcel.FastExcelError, ValueError, OSError):
        raise _damaged_xlsx() from None
    return pa.table([_as_shown(column) for column in table.columns], names=[str(i) for i in range(table.num_columns)]), \
        sheet.visible == "visible"


_DATE_AT_MIDNIGHT = r"^(\d{4}-\d\d-\d\d) 00:00:00$"
_TIME_OF_DAY = r"^1899-12-3[01] (\d\d:\d\d:\d\d(?:\.\d+)?)$"


def _as_shown(column: pa.ChunkedArray) -> pa.ChunkedArray:
    """A date as 2026-11-01 (with its time when it has one), a time of day alone, TRUE and FALSE in capitals."""
    column = column.cast(pa.large_string())
    if pc.any(pc.match_substring_regex(column, r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d")).as_py():
        column = pc.replace_substring_regex(column, _DATE_AT_MIDNIGHT, r"\1")
        column = pc.replace_substring_regex(column, _TIME_OF_DAY, r"\1")
    if pc.any(pc.is_in(column, pa.array(["true", "false"]))).as_py():
        column = pc.if_else(pc.equal(column, "true"), "TRUE", pc.if_else(pc.equal(column, "false"), "FALSE", column))
    return column


def _table_shape(table: pa.Table) -> tuple[int, list[str], int] | None:
    """Header row, column names and width; no names when the sheet has a header but no rows under it."""
    if table.num_columns == 0:
        return None
    rows: list[tuple[int, list[str]]] = []
    for start in range(0, table.num_rows, SAMPLE_RECORDS):
        part = table.slice(start, SAMPLE_RECORDS)
        values = [["" if cell is None else cell for cell in column.to_pylist()] for column in part.columns]
        for offset, cells in enumerate(map(list, zip(*values))):
            if _filled(cells):
                rows.append((start + offset + 1, cells))
        if len(rows) >= SAMPLE_RECORDS:
            break
    if not rows:
        return None
    rows = rows[:SAMPLE_RECORDS]
    header_at = _pick_header(rows[:HEADER_SCAN_ROWS])
    header_row, header = rows[header_at]
    data = [cells for _, cells in rows[header_at + 1:]]
    if not data:
        return header_row, [], 0
    width = _width(header, data)
    return header_row, _column_names(header[:width] + [""] * (width - len(header))), width


def _xlsx_chunks(table: pa.Table, header_row: int, width: int, columns: list[str],
                 size: int) -> Iterator[pd.DataFrame]:
    data = table.slice(header_row)
    cells = [pc.fill_null(column, "") for column in data.columns[:width]]
    cells += [pa.chunked_array([pa.nulls(data.num_rows, pa.large_string()).fill_null("")])] * (width - len(cells))
    data = pa.table(cells, names=columns)
    for start in range(0, data.num_rows, size):
        frame = data.slice(start, size).to_pandas()
        # _csv_frame numbers rows from the header: record i (from 1) after it is sheet row header_row + i.
        frame.index = pd.RangeIndex(start + 1, start + 1 + len(frame))
        yield _csv_frame(frame, columns, header_row)


def _frame(rows: list[list[str]], numbers: list[int], columns: list[str]) -> pd.DataFrame:
    frame = pd.DataFrame(rows, columns=columns, dtype="str")
    frame[ROW] = np.asarray(numbers, dtype=np.int64)
    return frame


# --- the text of a workbook, kept ---------------------------------------------------------------------------------

def save_text_copy(catalog: CatalogFile, path: Path, size: int = 50_000) -> int:
    """Write every row of ``catalog`` as text (with its row number) to an Arrow IPC file; return the rows.

    A workbook costs most when it is loaded and its cells turned into text; keeping that text lets the
    application of an upload skip both.
    """
    schema = pa.schema([(name, pa.large_string()) for name in catalog.columns] + [(ROW, pa.int64())],
                       metadata={"format": catalog.format, "sheet": catalog.sheet or "",
                                 "header_row": str(catalog.header_row)})
    rows = 0
    with pa.OSFile(str(path), "wb") as sink, pa.ipc.new_file(sink, schema) as writer:
        for frame in catalog.chunks(size):
            writer.write_table(pa.Table.from_pandas(frame[[*catalog.columns, ROW]], schema=schema, preserve_index=False))
            rows += len(frame)
    return rows


def open_text_copy(path: Path) -> CatalogFile:
    """A catalog read from the text kept by ``save_text_copy`` (memory-mapped, nothing parsed again)."""
    with pa.memory_map(str(path)) as source:
        kept = pa.ipc.open_file(source)
        schema, rows = kept.schema, sum(kept.get_batch(i).num_rows for i in range(kept.num_record_batches))
    meta = {k.decode(): v.decode() for k, v in (schema.metadata or {}).items()}
    columns = [name for name in schema.names if name != ROW]

    def read(size: int) -> Iterator[pd.DataFrame]:
        with pa.memory_map(str(path)) as source:
            table = pa.ipc.open_file(source).read_all()
            for start in range(0, table.num_rows, size):
                yield table.slice(start, size).to_pandas()

    return CatalogFile(format=meta.get("format", "xlsx"), columns=columns, header_row=int(meta.get("header_row", "1")),
                       sheet=meta.get("sheet") or None, rows=max(rows, 1), _read=read)


# --- YML ------------------------------------------------------------------------------------------------------------

@dataclass
class _Feed:
    keys: dict[tuple[str, str], None] = field(default_factory=dict)
    categories: dict[str, tuple[str | None, str]] = field(default_factory=dict)
    offers: int = 0
    root: str | None = None
    encoding: str | None = None


def _open_yml(path: Path, head: bytes) -> CatalogFile:
    if not _strip_bom(head).strip():
        raise _empty()
    _refuse_entities(head)
    feed = _Feed()
    for offer in _yml_elements(path, feed):
        feed.offers += 1
        for key, _ in _offer_items(offer):
            feed.keys.setdefault(key)
    if feed.offers == 0:
        if feed.root != "yml_catalog":
            raise UnreadableFile(gettext("This XML file is not a YML feed: its root element is <%(tag)s>.",
                                         tag=feed.root or "?"), code="not_yml")
        raise UnreadableFile(gettext("The YML feed has no offers."), code="no_rows")
    keys = list(feed.keys)
    columns = _column_names([name for _, name in keys])
    paths = _category_paths(feed.categories)
    return CatalogFile(
        format="yml", columns=columns, header_row=0, encoding=feed.encoding, categories=feed.categories,
        rows=feed.offers, _read=lambda size: _yml_chunks(path, keys, columns, paths, size),
    )


def _refuse_entities(head: bytes) -> None:
    """No entity declarations at all: billion-laughs and external-entity tricks both need them."""
    text = head
    if head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        text = head.decode("utf-16", errors="replace").encode("utf-8")
    if re.search(rb"<!ENTITY", text, re.IGNORECASE):
        raise UnreadableFile(
            gettext("The YML feed declares XML entities (<!ENTITY>), which are refused for safety: remove its "
                    "DOCTYPE block and upload it again."),
            code="unsafe_xml",
        )


def _yml_elements(path: Path, feed: _Feed) -> Iterator[etree._Element]:
    """Offers one by one, freed after use; categories are collected on the way wherever they appear."""
    with path.open("rb") as source:
        yield from _parse_feed(source, feed)


def _parse_feed(source: BinaryIO, feed: _Feed) -> Iterator[etree._Element]:
    context = etree.iterparse(
        source, events=("end",), tag=("offer", "category"), resolve_entities=False, no_network=True,
        huge_tree=False, load_dtd=False, remove_comments=True, remove_pis=True,
    )
    try:
        for _, element in context:
            if element.tag == "offer":
                yield element
            elif _is_shop_category(element):
                parent = (element.get("parentId") or "").strip() or None
                feed.categories[(element.get("id") or "").strip()] = (parent, _element_text(element))
            _release(element)
        feed.root = context.root.tag if context.root is not None else None
        info = context.root.getroottree().docinfo if context.root is not None else None
        feed.encoding = info.encoding.lower() if info is not None and info.encoding else None
    except etree.XMLSyntaxError as exc:
        message = _LXML_POSITION.sub("", exc.msg or "").strip() or str(exc)
        raise UnreadableFile(gettext("The YML feed is broken at line %(line)s: %(error)s.",
                                     line=exc.lineno, error=message.rstrip(".")), code="broken_yml") from None


def _is_shop_category(element: etree._Element) -> bool:
    parent = element.getparent()
    return parent is not None and parent.tag == "categories"


def _release(element: etree._Element) -> None:
    element.clear(keep_tail=False)
    parent = element.getparent()
    if parent is not None:
        while element.getprevious() is not None:
            del parent[0]


def _offer_items(offer: etree._Element) -> Iterator[tuple[tuple[str, str], str]]:
    for name, value in offer.attrib.items():
        yield ("field", str(name)), str(value)
    for child in offer:
        if not isinstance(child.tag, str):
            continue
        tag = child.tag.rpartition("}")[2]  # a namespaced feed still has plain field names
        if tag == "param":
            name = (child.get("name") or "").strip() or "param"
            unit = (child.get("unit") or "").strip()
            yield ("param", f"{name}, {unit}" if unit else name), _element_text(child)
            continue
        text = _element_text(child)
        # Nested structures (delivery-options, outlets) carry no cell value of their own.
        if text or len(child) == 0:
            yield ("field", tag), text
        if tag == "categoryId":
            yield ("path", "category"), text


def _element_text(element: etree._Element) -> str:
    if len(element) == 0:
        return (element.text or "").strip()
    return "".join(element.itertext()).strip()  # markup inside a description: keep its words


def _category_paths(categories: dict[str, tuple[str | None, str]]) -> dict[str, str]:
    paths: dict[str, str] = {}
    for category_id in categories:
        names: list[str] = []
        seen: set[str] = set()
        current: str | None = category_id
        while current is not None and current in categories and current not in seen:
            seen.add(current)
            parent, name = categories[current]
            names.append(name)
            current = parent
        paths[category_id] = " > ".join(reversed(names))
    return paths


def _yml_chunks(path: Path, keys: list[tuple[str, str]], columns: list[str], paths: dict[str, str],
                size: int) -> Iterator[pd.DataFrame]:
    index = {key: i for i, key in enumerate(keys)}
    rows: list[list[str]] = []
    numbers: list[int] = []
    for offer in _yml_elements(path, _Feed()):
        cells = [""] * len(keys)
        line = offer.sourceline or 0
        for key, value in _offer_items(offer):
            position = index.get(key)
            if position is None:
                continue
            if key == ("path", "category"):
                value = paths.get(value, "")
            cells[position] = f"{cells[position]}\n{value}" if cells[position] else value
        if _filled(cells):
            rows.append(cells)
            numbers.append(line)
        if len(rows) >= size:
            yield _frame(rows, numbers, columns)
            rows, numbers = [], []
    if rows:
        yield _frame(rows, numbers, columns)
