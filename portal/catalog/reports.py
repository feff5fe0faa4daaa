"""The error report: rejected rows as the merchant sent them, plus an error column, in their own format."""
from __future__ import annotations

import csv
import tempfile
from pathlib import Path

import pandas as pd
import xlsxwriter


class ErrorReport:
    """Written row by row while the upload is processed, so a large report never sits in memory."""

    def __init__(self, fmt: str, columns: list[str], error_header: str, *, encoding: str | None, delimiter: str | None) -> None:
        self.format = "xlsx" if fmt == "xlsx" else "csv"
        self.columns = columns
        self.rows = 0
        self._dir = tempfile.TemporaryDirectory(prefix="portal-report-")
        self.path = Path(self._dir.name) / f"errors.{self.format}"
        header = [*columns, error_header]
        if self.format == "xlsx":
            self._book = xlsxwriter.Workbook(str(self.path), {
                "constant_memory": True, "strings_to_numbers": False, "strings_to_formulas": False, "strings_to_urls": False,
            })
            self._sheet = self._book.add_worksheet("Errors")
            bold = self._book.add_format({"bold": True})
            for col, name in enumerate(header):
                self._sheet.write_string(0, col, name, bold)
        else:
            # The merchant's own encoding and delimiter, so the file opens the way theirs did.
            encoding = {"utf-8": "utf-8-sig", None: "utf-8-sig"}.get(encoding, encoding)
            self._handle = open(self.path, "w", encoding=encoding or "utf-8-sig", newline="", errors="replace")
            self._writer = csv.writer(self._handle, delimiter=delimiter or ",")
            self._writer.writerow(header)

    def add(self, raw: pd.DataFrame, messages: list[str]) -> None:
        values = raw[self.columns].astype(str).to_numpy().tolist()
        for cells, text in zip(values, messages):
            self.rows += 1
            if self.format == "xlsx":
                for col, cell in enumerate([*cells, text]):
                    self._sheet.write_string(self.rows, col, cell)
            else:
                self._writer.writerow([*cells, text])

    def close(self) -> Path:
        if self.format == "xlsx":
            self._book.close()
        else:
            self._handle.close()
        return self.path

    def cleanup(self) -> None:
        self._dir.cleanup()

    @property
    def content_type(self) -> str:
        if self.format == "xlsx":
            return "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
        return "text/csv"
