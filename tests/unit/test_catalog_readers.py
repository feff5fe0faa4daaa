"""Catalog readers: every supported file reads as text with the merchant's row numbers; bad files fail clearly."""
from __future__ import annotations

import codecs
import os
import zipfile
from datetime import date, datetime, time
from pathlib import Path

import pandas as pd
import pytest
import xlsxwriter

from portal.catalog.readers import ROW, CatalogFile, UnreadableFile, open_catalog
from tests.support.catalog_files import offer_lines, write_csv, write_xlsx, write_yml, write_zip_bomb

HEADER = ["sku", "title", "price"]
ROWS = [["007", "Футболка белая", "1 299,00"], ["A-2", "Кружка", "450"], ["A-3", "Ложка", "10"]]
RUSSIAN_HEADER = ["Артикул", "Наименование", "Цена", "Остаток", "Штрихкод"]
RUSSIAN_ROWS = [
    ["00123", "Футболка мужская «Базовая», хлопок", "1 299,00", "15", "4601234567893"],
    ["00124", "Кружка керамическая; 350 мл", "450,50", "3", "04601234567890"],
    ["00125", "Ложка чайная", "99", "много", ""],
]


def read_all(catalog: CatalogFile, size: int = 50_000) -> pd.DataFrame:
    return pd.concat(list(catalog.chunks(size)), ignore_index=True)


def records(catalog: CatalogFile) -> list[list[str]]:
    return read_all(catalog)[catalog.columns].values.tolist()


def fails(path: Path, filename: str | None = None, **kwargs) -> UnreadableFile:
    with pytest.raises(UnreadableFile) as caught:
        catalog = open_catalog(path, filename or path.name, **kwargs)
        for _ in catalog.chunks():
            pass
    return caught.value


# --- CSV ---------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("delimiter", [",", ";", "\t", "|"])
def test_csv_is_read_with_any_usual_delimiter(tmp_path, delimiter):
    path = write_csv(tmp_path / "catalog.csv", [HEADER, *ROWS], delimiter=delimiter)
    catalog = open_catalog(path, "catalog.csv")
    assert catalog.format == "csv"
    assert catalog.delimiter == delimiter
    assert catalog.columns == HEADER
    assert records(catalog) == ROWS


@pytest.mark.parametrize(("encoding", "bom", "expected"), [
    ("utf-8", False, "utf-8"),
    ("utf-8", True, "utf-8-sig"),
    ("cp1251", False, "cp1251"),
    ("utf-16", True, "utf-16"),
    ("utf-16", False, "utf-16"),
])
def test_csv_encoding_is_detected_and_russian_text_survives(tmp_path, encoding, bom, expected):
    path = write_csv(tmp_path / "catalog.csv", [RUSSIAN_HEADER, *RUSSIAN_ROWS], encoding=encoding, bom=bom)
    catalog = open_catalog(path, "catalog.csv")
    assert catalog.encoding == expected
    assert catalog.columns == RUSSIAN_HEADER
    assert records(catalog) == RUSSIAN_ROWS


def test_russian_excel_export_in_cp1251_with_semicolons_is_read(tmp_path):
    path = write_csv(tmp_path / "прайс.csv", [RUSSIAN_HEADER, *RUSSIAN_ROWS], encoding="cp1251", delimiter=";",
                     newline="\r\n")
    catalog = open_catalog(path, "прайс.csv")
    assert (catalog.encoding, catalog.delimiter) == ("cp1251", ";")
    frame = read_all(catalog)
    assert frame["Цена"].tolist() == ["1 299,00", "450,50", "99"]
    assert frame["Наименование"][1] == "Кружка керамическая; 350 мл"


def test_leading_zeros_and_number_like_text_stay_as_typed(tmp_path):
    path = write_csv(tmp_path / "c.csv", [["sku", "gtin", "price", "date"],
                                          ["007", "04601234567893", "1e5", "01.11.2026"]])
    frame = read_all(open_catalog(path, "c.csv"))
    assert frame.iloc[0][["sku", "gtin", "price", "date"]].tolist() == ["007", "04601234567893", "1e5", "01.11.2026"]


def test_chunk_cells_are_text_and_row_numbers_are_integers(tmp_path):
    path = write_csv(tmp_path / "c.csv", [HEADER, ["1", "", "3"]])
    frame = read_all(open_catalog(path, "c.csv"))
    assert list(frame.columns) == [*HEADER, ROW]
    assert all(pd.api.types.is_string_dtype(frame[c]) for c in HEADER)
    assert frame[ROW].dtype == "int64"
    assert frame.iloc[0].tolist() == ["1", "", "3", 2]


def test_quoted_cell_with_delimiter_and_newline_is_one_row(tmp_path):
    rows = [HEADER, ["A-1", "Кружка, большая\nс ручкой\nи блюдцем", "450"], ["A-2", "Ложка", "10"]]
    path = write_csv(tmp_path / "c.csv", rows)
    frame = read_all(open_catalog(path, "c.csv"))
    assert frame["title"][0] == "Кружка, большая\nс ручкой\nи блюдцем"
    assert frame[ROW].tolist() == [2, 3]


def test_blank_rows_are_skipped_but_keep_their_numbers(tmp_path):
    path = write_csv(tmp_path / "c.csv", [HEADER, ["A-1", "x", "1"], [], ["", "", ""], ["A-4", "y", "2"]])
    frame = read_all(open_catalog(path, "c.csv"))
    assert frame["sku"].tolist() == ["A-1", "A-4"]
    assert frame[ROW].tolist() == [2, 5]


def test_title_rows_above_the_csv_header_are_skipped(tmp_path):
    rows = [["Прайс-лист ООО «Ромашка» на 01.11.2026", "", ""], ["", "", ""], HEADER, *ROWS]
    catalog = open_catalog(write_csv(tmp_path / "c.csv", rows, delimiter=";"), "c.csv")
    assert catalog.header_row == 3
    assert catalog.columns == HEADER
    assert read_all(catalog)[ROW].tolist() == [4, 5, 6]


def test_extra_cells_are_dropped_and_missing_cells_are_empty(tmp_path):
    text = "sku,title,price\nA-1,x,1,SURPLUS,MORE\nA-2,y\nA-3\n" + "A-4,z\n" * 5
    path = tmp_path / "c.csv"
    path.write_text(text, encoding="utf-8")
    frame = read_all(open_catalog(path, "c.csv"), size=2)
    assert frame[HEADER].values.tolist()[:3] == [["A-1", "x", "1"], ["A-2", "y", ""], ["A-3", "", ""]]
    assert frame[ROW].tolist() == [2, 3, 4, 5, 6, 7, 8, 9]


def test_rows_wider_than_the_header_get_numbered_columns(tmp_path):
    path = tmp_path / "c.csv"
    path.write_text("sku;title;;\nA-1;x;;\nA-2;y;;note\n", encoding="utf-8")
    catalog = open_catalog(path, "c.csv")
    assert catalog.columns == ["sku", "title", "Column 3", "Column 4"]
    assert read_all(catalog)["Column 4"].tolist() == ["", "note"]


def test_duplicate_and_empty_header_names_are_made_unique(tmp_path):
    path = write_csv(tmp_path / "c.csv", [[" Name ", "Name", "", "Name", "__row__"], ["a", "b", "c", "d", "e"]])
    catalog = open_catalog(path, "c.csv")
    assert catalog.columns == ["Name", "Name (2)", "Column 3", "Name (3)", "__row__ (2)"]
    assert read_all(catalog)[ROW].tolist() == [2]


def test_chunks_of_two_over_five_rows_are_three_chunks_with_right_rows(tmp_path):
    path = write_csv(tmp_path / "c.csv", [HEADER] + [[f"A-{n}", "x", "1"] for n in range(1, 6)])
    chunks = list(open_catalog(path, "c.csv").chunks(2))
    assert [len(c) for c in chunks] == [2, 2, 1]
    assert [c[ROW].tolist() for c in chunks] == [[2, 3], [4, 5], [6]]


def test_chunks_can_be_read_again_for_a_second_pass(tmp_path):
    catalog = open_catalog(write_csv(tmp_path / "c.csv", [HEADER, *ROWS]), "c.csv")
    first = next(iter(catalog.chunks(1)))  # a preview that stops early
    assert first["sku"].tolist() == ["007"]
    assert records(catalog) == records(catalog) == ROWS


def test_single_column_csv_is_read(tmp_path):
    catalog = open_catalog(write_csv(tmp_path / "c.csv", [["sku"], ["007"], ["A-2"]]), "c.csv")
    assert catalog.columns == ["sku"]
    assert read_all(catalog)[["sku", ROW]].values.tolist() == [["007", 2], ["A-2", 3]]


def test_cp1251_text_after_a_megabyte_of_ascii_is_still_cp1251(tmp_path):
    rows = [["sku", "title"]] + [[f"SKU-{n:06}", "Plain English title"] for n in range(40_000)]
    rows += [["RU-1", "Футболка «Базовая»"], ["RU-2", "Кружка керамическая"]]
    path = write_csv(tmp_path / "c.csv", rows, encoding="cp1251", delimiter=";")
    assert path.stat().st_size > 1024 * 1024
    catalog = open_catalog(path, "c.csv")
    assert catalog.encoding == "cp1251"
    assert read_all(catalog)["title"].tolist()[-2:] == ["Футболка «Базовая»", "Кружка керамическая"]


def test_classic_mac_line_ends_are_read(tmp_path):
    path = write_csv(tmp_path / "c.csv", [HEADER, *ROWS], newline="\r")
    catalog = open_catalog(path, "c.csv")
    assert records(catalog) == ROWS
    assert read_all(catalog)[ROW].tolist() == [2, 3, 4]


def test_unknown_extension_is_sniffed(tmp_path):
    csv_path = write_csv(tmp_path / "export", [HEADER, *ROWS])
    assert open_catalog(csv_path, "export").format == "csv"
    xml_path = write_yml(tmp_path / "feed.dat", [{"id": "1", "name": "x"}])
    assert open_catalog(xml_path, "feed.dat").format == "yml"
    xlsx_path = write_xlsx(tmp_path / "book.bin", [HEADER, *ROWS])
    assert open_catalog(xlsx_path, "book.bin").format == "xlsx"


def test_workbook_renamed_to_csv_is_read_as_xlsx(tmp_path):
    path = write_xlsx(tmp_path / "book.csv", [HEADER, *ROWS])
    assert open_catalog(path, "book.csv").format == "xlsx"


# --- XLSX --------------------------------------------------------------------------------------------------------

def test_xlsx_skips_title_rows_and_renders_every_cell_as_text(tmp_path):
    rows = [
        ["Артикул", "Name", "Price", "EAN", "Stock", "Since", "Updated", "Active", "Big"],
        ["007", "Футболка", 1299.5, 4601234567893, 15, date(2026, 11, 1), datetime(2026, 11, 1, 10, 0), True,
         12345678901234567890],
        ["A-2", "Кружка", 450, 46012345678901, 0, None, None, False, 0.1],
    ]
    path = write_xlsx(tmp_path / "price.xlsx", rows, title_rows=["Прайс-лист ООО «Ромашка» на 01.11.2026"])
    catalog = open_catalog(path, "price.xlsx")
    assert (catalog.format, catalog.sheet, catalog.header_row) == ("xlsx", "Лист1", 3)
    assert catalog.columns == rows[0]
    frame = read_all(catalog)
    assert frame.iloc[0].tolist()[:8] == ["007", "Футболка", "1299.5", "4601234567893", "15", "2026-11-01",
                                          "2026-11-01 10:00:00", "TRUE"]
    # Past 2**53 a number cell holds no exact digits any more (Excel keeps 15): all of them, no exponent.
    assert frame.iloc[0, 8][:15] == "123456789012345" and len(frame.iloc[0, 8]) == 20 and frame.iloc[0, 9] == 4
    assert frame.iloc[1].tolist() == ["A-2", "Кружка", "450", "46012345678901", "0", "", "", "FALSE", "0.1", 5]


def test_xlsx_two_title_rows_and_blank_rows_keep_sheet_row_numbers(tmp_path):
    rows = [HEADER, ["A-1", "x", 1], [None, None, None], ["A-3", "y", 2]]
    path = write_xlsx(tmp_path / "p.xlsx", rows, title_rows=["Прайс-лист", "Менеджер: Иванова"])
    catalog = open_catalog(path, "p.xlsx")
    assert catalog.header_row == 5
    assert read_all(catalog)[ROW].tolist() == [6, 8]


def test_xlsx_reads_the_first_sheet_with_data(tmp_path):
    path = write_xlsx(tmp_path / "p.xlsx", [HEADER, *ROWS], sheet="Товары", empty_sheets_before=2)
    catalog = open_catalog(path, "p.xlsx")
    assert catalog.sheet == "Товары"
    assert records(catalog) == ROWS


def test_xlsx_notes_sheet_in_front_of_the_price_list_is_passed_over(tmp_path):
    path = write_xlsx(tmp_path / "p.xlsx", [HEADER, *ROWS], sheet="Товары", notes_sheet="Цены см. на листе «Товары»")
    catalog = open_catalog(path, "p.xlsx")
    assert catalog.sheet == "Товары"
    assert records(catalog) == ROWS


def test_xlsx_chunks_of_two(tmp_path):
    path = write_xlsx(tmp_path / "p.xlsx", [HEADER] + [[f"A-{n}", "x", n] for n in range(1, 6)])
    chunks = list(open_catalog(path, "p.xlsx").chunks(2))
    assert [c[ROW].tolist() for c in chunks] == [[2, 3], [4, 5], [6]]
    assert chunks[2]["price"].tolist() == ["5"]


def test_xlsx_numbers_are_written_out_without_float_noise(tmp_path):
    rows = [["a", "b", "c", "d", "e"], [0.1, 1e-05, -12.25, 2**53 + 1, 46012345678901.0]]
    frame = read_all(open_catalog(write_xlsx(tmp_path / "p.xlsx", rows), "p.xlsx"))
    assert frame.iloc[0].tolist()[:5] == ["0.1", "0.00001", "-12.25", "9007199254740992", "46012345678901"]


def test_xlsx_table_away_from_the_corner_keeps_the_sheet_row_numbers(tmp_path):
    book = xlsxwriter.Workbook(str(tmp_path / "p.xlsx"))
    sheet = book.add_worksheet("Товары")
    for col, name in enumerate(HEADER):
        sheet.write_string(3, 2 + col, name)  # the table starts at C4
    sheet.write_string(4, 2, "A-1"), sheet.write_string(4, 3, "x"), sheet.write_number(4, 4, 10)
    sheet.write_string(6, 2, "A-2"), sheet.write_string(6, 3, "y"), sheet.write_number(6, 4, 20)
    book.close()
    catalog = open_catalog(tmp_path / "p.xlsx", "p.xlsx")
    assert (catalog.header_row, catalog.columns) == (4, HEADER)
    frame = read_all(catalog)
    assert frame[ROW].tolist() == [5, 7] and frame["sku"].tolist() == ["A-1", "A-2"]


def test_xlsx_hidden_sheet_is_read_only_when_no_visible_sheet_has_data(tmp_path):
    book = xlsxwriter.Workbook(str(tmp_path / "p.xlsx"))
    hidden = book.add_worksheet("Справочник")
    for row, values in enumerate([HEADER, ["H-1", "hidden", 1]]):
        for col, value in enumerate(values):
            hidden.write(row, col, value)
    hidden.hide()
    shown = book.add_worksheet("Товары")
    for row, values in enumerate([HEADER, *ROWS]):
        for col, value in enumerate(values):
            shown.write(row, col, value)
    shown.activate()
    book.close()
    catalog = open_catalog(tmp_path / "p.xlsx", "p.xlsx")
    assert catalog.sheet == "Товары" and records(catalog) == ROWS

    only_hidden = xlsxwriter.Workbook(str(tmp_path / "h.xlsx"))
    only_hidden.add_worksheet("Пусто")
    hidden = only_hidden.add_worksheet("Справочник")
    for row, values in enumerate([HEADER, ["H-1", "hidden", "1"]]):
        for col, value in enumerate(values):
            hidden.write_string(row, col, value)
    hidden.hide()
    only_hidden.close()
    catalog = open_catalog(tmp_path / "h.xlsx", "h.xlsx")
    assert catalog.sheet == "Справочник" and records(catalog) == [["H-1", "hidden", "1"]]


def test_xlsx_cells_are_written_as_excel_shows_them(tmp_path):
    rows = [["a", "b", "c", "d", "e"], [1 / 3, time(12, 30), "true", "2026-11-01 00:00:00", -0.5]]
    frame = read_all(open_catalog(write_xlsx(tmp_path / "p.xlsx", rows), "p.xlsx"))
    # General format: nine decimals at most; a time of day without the 1899 date Excel stores it with;
    # the text "true" reads as Excel shows a typed true (TRUE); a date at midnight without its time.
    assert frame.iloc[0].tolist()[:5] == ["0.333333333", "12:30:00", "TRUE", "2026-11-01", "-0.5"]


# --- YML ---------------------------------------------------------------------------------------------------------

CATEGORIES = [("1", None, "Электроника"), ("2", "1", "Смартфоны"), ("3", "2", "Android")]
OFFERS = [
    {"id": "A-1", "available": "true", "name": "Телефон X", "vendor": "Acme", "vendorCode": "X-1", "price": "19990",
     "currencyId": "RUB", "categoryId": "3", "picture": ["https://img.example/1.jpg", "https://img.example/2.jpg"],
     "barcode": ["4601234567893", "04601234567893"],
     "params": [("Цвет", None, "чёрный"), ("Вес", "г", "150")], "count": "5"},
    {"id": "A-2", "available": "false", "name": "Чехол", "price": "990", "categoryId": "1",
     "params": [("Материал", None, "силикон")], "description": "Мягкий & прочный"},
]


def test_yml_offers_become_rows_with_category_paths_params_and_pictures(tmp_path):
    path = write_yml(tmp_path / "feed.yml", OFFERS, CATEGORIES)
    catalog = open_catalog(path, "feed.yml")
    assert catalog.format == "yml"
    assert catalog.rows == 2
    assert catalog.categories == {"1": (None, "Электроника"), "2": ("1", "Смартфоны"), "3": ("2", "Android")}
    assert catalog.columns == ["id", "available", "name", "vendor", "vendorCode", "price", "currencyId",
                               "categoryId", "category", "picture", "barcode", "Цвет", "Вес, г", "count",
                               "Материал", "description"]
    first, second = read_all(catalog).to_dict("records")
    assert first["category"] == "Электроника > Смартфоны > Android"
    assert first["picture"] == "https://img.example/1.jpg\nhttps://img.example/2.jpg"
    assert first["barcode"] == "4601234567893\n04601234567893"
    assert (first["Цвет"], first["Вес, г"], first["Материал"]) == ("чёрный", "150", "")
    assert (second["category"], second["description"], second["vendorCode"]) == ("Электроника", "Мягкий & прочный", "")


def test_yml_row_numbers_are_the_offer_lines(tmp_path):
    path = write_yml(tmp_path / "feed.yml", OFFERS * 3, CATEGORIES)
    chunks = list(open_catalog(path, "feed.yml").chunks(2))
    assert [len(c) for c in chunks] == [2, 2, 2]
    assert pd.concat(chunks)[ROW].tolist() == offer_lines(path)


def test_yml_preview_can_stop_early_and_read_again(tmp_path):
    catalog = open_catalog(write_yml(tmp_path / "feed.yml", OFFERS * 3, CATEGORIES), "feed.yml")
    assert next(iter(catalog.chunks(1)))["id"].tolist() == ["A-1"]
    assert len(read_all(catalog)) == 6


def test_yml_categories_after_the_offers_are_still_resolved(tmp_path):
    path = write_yml(tmp_path / "feed.yml", OFFERS, CATEGORIES, categories_last=True)
    assert read_all(open_catalog(path, "feed.yml"))["category"][0] == "Электроника > Смартфоны > Android"


def test_yml_in_windows_1251_is_read(tmp_path):
    path = write_yml(tmp_path / "feed.xml", OFFERS, CATEGORIES, encoding="windows-1251")
    catalog = open_catalog(path, "feed.xml")
    assert read_all(catalog)["name"].tolist() == ["Телефон X", "Чехол"]


# --- unreadable files --------------------------------------------------------------------------------------------

def test_unreadable_file_is_a_422_portal_error(tmp_path):
    (tmp_path / "c.csv").write_bytes(b"")
    error = fails(tmp_path / "c.csv")
    assert (error.status, error.code, error.message) == (422, "empty_file", "The file is empty.")


@pytest.mark.parametrize("name", ["c.csv", "c.xlsx", "c.yml"])
def test_empty_file_is_refused(tmp_path, name):
    (tmp_path / name).write_bytes(b"")
    assert fails(tmp_path / name).code == "empty_file"


@pytest.mark.parametrize("name", ["c.csv", "c.yml"])
def test_whitespace_only_file_is_refused_as_empty(tmp_path, name):
    (tmp_path / name).write_bytes(b"  \r\n\n\t \n")
    error = fails(tmp_path / name)
    assert error.code == "empty_file"
    assert "empty" in error.message


def test_csv_with_a_header_and_no_rows_is_refused(tmp_path):
    error = fails(write_csv(tmp_path / "c.csv", [HEADER, ["", "", ""]]))
    assert (error.code, error.message) == ("no_rows", "The file has a header but no rows.")


def test_xlsx_with_a_header_and_no_rows_is_refused(tmp_path):
    assert fails(write_xlsx(tmp_path / "c.xlsx", [HEADER], title_rows=["Прайс"])).code == "no_rows"


def test_xlsx_without_any_data_is_refused_as_empty(tmp_path):
    assert fails(write_xlsx(tmp_path / "c.xlsx", [])).code == "empty_file"


def test_yml_without_offers_is_refused(tmp_path):
    error = fails(write_yml(tmp_path / "feed.yml", [], CATEGORIES))
    assert error.code == "no_rows"
    assert "no offers" in error.message


def test_xml_that_is_not_a_yml_feed_is_refused(tmp_path):
    (tmp_path / "feed.xml").write_text('<?xml version="1.0"?>\n<rss><channel><item/></channel></rss>\n')
    error = fails(tmp_path / "feed.xml")
    assert error.code == "not_yml"
    assert "<rss>" in error.message


@pytest.mark.parametrize("content", [
    b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)) * 8,
    b"sku,title\n" + bytes(range(256)) * 40,
    os.urandom(4096) + b"\x00",
])
def test_binary_file_named_csv_is_refused(tmp_path, content):
    (tmp_path / "c.csv").write_bytes(content)
    error = fails(tmp_path / "c.csv")
    assert error.code == "binary_file"
    assert "binary data (at byte" in error.message


def test_binary_junk_after_a_large_text_start_is_found_by_line(tmp_path):
    text = "sku,title\n" + "A-1,Футболка белая хлопковая\n" * 40_000
    (tmp_path / "c.csv").write_bytes(text.encode() + b"A-2,x\x00\x00\x01y\n")
    error = fails(tmp_path / "c.csv")
    assert error.code == "binary_file"
    assert "binary data (at line 40002)" in error.message


@pytest.mark.parametrize("content", [b"PK\x03\x04" + os.urandom(2000), os.urandom(3000)])
def test_random_bytes_named_xlsx_are_a_damaged_workbook(tmp_path, content):
    (tmp_path / "c.xlsx").write_bytes(content)
    error = fails(tmp_path / "c.xlsx")
    assert (error.code, error.message) == ("damaged_xlsx", "The XLSX file is damaged and cannot be opened.")


def test_truncated_xlsx_is_a_damaged_workbook(tmp_path):
    path = write_xlsx(tmp_path / "c.xlsx", [HEADER] + [[f"A-{n}", "x" * 50, n] for n in range(2000)])
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    assert fails(path).code == "damaged_xlsx"


def test_zip_with_a_corrupted_member_is_a_damaged_workbook(tmp_path):
    path = write_xlsx(tmp_path / "c.xlsx", [HEADER] + [[f"A-{n}", "x" * 50, n] for n in range(2000)])
    data = bytearray(path.read_bytes())
    with zipfile.ZipFile(path) as archive:
        member = archive.getinfo("xl/worksheets/sheet1.xml")
    start = member.header_offset + 30 + len(member.filename) + len(member.extra) + 100
    data[start:start + 50] = b"\xff" * 50
    path.write_bytes(bytes(data))
    assert fails(path).code == "damaged_xlsx"


def test_zip_bomb_named_xlsx_is_refused_by_its_declared_size_without_unpacking(tmp_path, monkeypatch):
    path = write_zip_bomb(tmp_path / "bomb.xlsx")
    assert path.stat().st_size < 5 * 1024 * 1024

    def unpacking(*args, **kwargs):
        raise AssertionError("the bomb was unpacked")

    monkeypatch.setattr(zipfile.ZipFile, "open", unpacking)
    error = fails(path)
    assert error.code == "zip_bomb"
    assert "500 MB" in error.message and "zip bomb" in error.message


def test_highly_compressed_member_is_refused_as_a_zip_bomb(tmp_path):
    path = write_zip_bomb(tmp_path / "bomb.xlsx", unpacked=50 * 1024 * 1024)
    error = fails(path)
    assert error.code == "zip_bomb"
    assert "compressed more than 200 to 1" in error.message


def test_a_line_over_one_megabyte_is_refused_with_its_number(tmp_path):
    path = write_csv(tmp_path / "c.csv", [HEADER, ["A-1", "x", "1"], ["A-2", "y" * (2 * 1024 * 1024), "2"]])
    error = fails(path)
    assert (error.code, error.message) == ("line_too_long", "Line 3 is longer than 1 MB.")


def test_a_file_over_the_size_limit_is_refused(tmp_path):
    path = write_csv(tmp_path / "c.csv", [HEADER, *ROWS])
    error = fails(path, max_bytes=50)
    assert (error.code, error.message) == ("too_large", "The file is larger than the 50 B limit.")


def test_default_size_limit_is_200_mb(tmp_path):
    path = tmp_path / "c.csv"
    with path.open("wb") as handle:
        handle.truncate(200 * 1024 * 1024 + 1)  # sparse: no disk is spent
    assert fails(path).message == "The file is larger than the 200 MB limit."


def test_utf8_file_with_a_cp1251_line_in_the_sample_is_mixed(tmp_path):
    lines = ["sku,title"] + [f"A-{n},Футболка {n}" for n in range(3000)]
    data = "\n".join(lines).encode() + "\nB-1,Кружка\n".encode("cp1251")
    (tmp_path / "c.csv").write_bytes(data)
    error = fails(tmp_path / "c.csv")
    assert error.code == "mixed_encoding"
    assert error.message == "The file mixes text encodings: it reads as UTF-8 but line 3002 is not valid UTF-8."


def test_utf8_file_with_a_cp1251_line_after_the_sample_is_mixed(tmp_path):
    lines = ["sku,title,description"] + [f"A-{n},Футболка {n},{'хлопок ' * 40}" for n in range(5000)]
    data = "\n".join(lines[:4000]).encode() + ("\n" + lines[4000] + "\n").encode("cp1251")
    data += "\n".join(lines[4001:]).encode()
    assert len(data) > 1024 * 1024
    (tmp_path / "c.csv").write_bytes(data)
    error = fails(tmp_path / "c.csv")
    assert error.code == "mixed_encoding"
    assert "line 4001 is not valid UTF-8" in error.message


def test_cp1251_file_with_a_utf8_line_later_is_mixed(tmp_path):
    lines = ["Артикул;Наименование"] + [f"{n:05};Футболка «Базовая» №{n}" for n in range(3000)]
    data = "\n".join(lines).encode("cp1251") + "\n99999;Кружка керамическая\n".encode()
    (tmp_path / "c.csv").write_bytes(data)
    error = fails(tmp_path / "c.csv")
    assert error.code == "mixed_encoding"
    assert error.message == ("The file mixes text encodings: it reads as Windows-1251 but line 3002 is not valid "
                             "Windows-1251.")


def test_cp1251_punctuation_is_not_mistaken_for_utf8(tmp_path):
    rows = [["Артикул", "Наименование"], ["1", "РС-«Ёлка»—№5 Ђ РЃ"], ["2", "Р°Р±"]]
    catalog = open_catalog(write_csv(tmp_path / "c.csv", rows, encoding="cp1251"), "c.csv")
    assert records(catalog) == rows[1:]


def test_koi8_file_is_refused_as_an_unsupported_encoding(tmp_path):
    rows = [RUSSIAN_HEADER] + RUSSIAN_ROWS * 20
    path = write_csv(tmp_path / "c.csv", [[c.replace("«", "").replace("»", "") for c in r] for r in rows],
                     encoding="koi8_r")
    error = fails(path)
    assert error.code == "unsupported_encoding"
    assert "(KOI8-R) is not supported: save it as UTF-8" in error.message


def test_western_legacy_encoding_is_refused_rather_than_misread_as_cp1251(tmp_path):
    path = tmp_path / "c.csv"
    path.write_bytes("sku;Größe;Beschreibung\n1;groß;Schöne Jacke für den Winter\n".encode("latin-1"))
    assert fails(path).code == "unsupported_encoding"


def test_all_capitals_cp1251_is_still_cp1251(tmp_path):
    rows = [["АРТИКУЛ", "НАИМЕНОВАНИЕ"], ["1", "ФУТБОЛКА МУЖСКАЯ ХЛОПКОВАЯ"], ["2", "КРУЖКА КЕРАМИЧЕСКАЯ БЕЛАЯ"]]
    catalog = open_catalog(write_csv(tmp_path / "c.csv", rows, encoding="cp1251", delimiter=";"), "c.csv")
    assert catalog.encoding == "cp1251"
    assert records(catalog) == rows[1:]


@pytest.mark.parametrize("text", ['sku,title\nA-1,x\nA-2,"never closed\nA-3,y\n',
                                  'sku,title\nA-1,x\nA-2,"never closed'])  # the second with no last line break
def test_unclosed_quote_is_reported_with_its_row(tmp_path, text):
    path = tmp_path / "c.csv"
    path.write_text(text, encoding="utf-8")
    error = fails(path)
    assert error.code == "broken_csv"
    assert "row 3" in error.message


@pytest.mark.parametrize("shift", [0, 1, 2, 3])
def test_russian_letters_cut_by_a_block_boundary_are_read_whole(tmp_path, shift):
    from portal.catalog.readers import BLOCK_BYTES

    header = "sku;title\n"
    filler = "A-0;" + "x" * (BLOCK_BYTES - len(header) - 6 - shift) + "\n"  # the next row starts near the boundary
    path = tmp_path / "c.csv"
    path.write_text(header + filler + "Б-1;ЁжикЪ\n" * 3, encoding="utf-8")
    frame = read_all(open_catalog(path, "c.csv"))
    assert frame["title"].tolist()[1:] == ["ЁжикЪ"] * 3
    assert frame["sku"].tolist()[1:] == ["Б-1"] * 3


def test_a_broken_utf8_character_in_the_last_block_is_mixed_encoding(tmp_path):
    path = tmp_path / "c.csv"
    path.write_bytes("sku;title\nA-1;Кружка\nA-2;".encode() + b"\xd0")
    error = fails(path)
    assert error.code == "mixed_encoding"
    assert "line 3" in error.message


TRICKY_CSV = [
    # a row with a cell too many and one with a cell too few, after the sample and several blocks of good rows
    "sku;title;price\n" + "".join(f"A-{n};Товар {n};{n}0\n" for n in range(250)) + "B-1;x;1;extra\nB-2;y\nB-3;z;3\n",
    # quotes inside cells, doubled quotes, a cell with line breaks and a blank line in the middle
    'sku;title;price\nA-1;Экран 15,6";10\n"A-2";"Кружка ""Лето""";5\n\nA-4;"две\nстроки";7\n' * 6 + "A-9;t;1\n",
    # the last row's cell holds a line break
    "sku;title;price\n" + "".join(f"A-{n};t;1\n" for n in range(30)) + 'Z-1;"последняя\nстрока";9\n',
    # blank lines at the end, a last line without a line break
    "sku;title;price\n" + "".join(f"A-{n};t;1\n" for n in range(30)) + "\n\nZ-2;t;2",
]


@pytest.mark.parametrize(("text", "arrow_rows_first"), list(zip(TRICKY_CSV, [True, False, True, False])))
def test_arrow_reader_reads_exactly_as_pandas_does(tmp_path, monkeypatch, text, arrow_rows_first):
    from portal.catalog import readers

    path = tmp_path / "c.csv"
    path.write_text(text, encoding="utf-8")
    catalog = open_catalog(path, "c.csv")
    pandas_reader = readers._pandas_csv_chunks
    skips: list[int] = []

    def only_pandas(self):
        raise readers._NeedsPandas
        yield  # a generator, like the method it stands in for

    def recording(*args, skip=0, **kwargs):
        skips.append(skip)
        return pandas_reader(*args, skip=skip, **kwargs)

    with monkeypatch.context() as patch:
        patch.setattr(readers._ArrowCsv, "chunks", only_pandas)
        expected = read_all(catalog, size=30)
    # Small Arrow blocks: several chunks are handed out before a ragged row sends the rest to pandas.
    monkeypatch.setattr(readers._ArrowCsv, "BLOCK", 64)
    monkeypatch.setattr(readers, "_pandas_csv_chunks", recording)
    got = read_all(catalog, size=30)
    assert got.values.tolist() == expected.values.tolist()
    assert got[ROW].tolist() == expected[ROW].tolist()
    if arrow_rows_first:
        assert skips and skips[0] > 0  # Arrow read the start, pandas the rest
    else:
        assert skips == []  # Arrow read it all


def test_yml_broken_halfway_is_refused_before_any_row_is_read(tmp_path):
    path = write_yml(tmp_path / "feed.yml", OFFERS * 10, CATEGORIES)
    text = path.read_text(encoding="utf-8")
    cut = text.index("<name>Чехол</name>", len(text) // 2) + 8
    path.write_text(text[:cut], encoding="utf-8")
    with pytest.raises(UnreadableFile) as caught:
        open_catalog(path, "feed.yml")
    assert caught.value.code == "broken_yml"
    assert caught.value.message.startswith(f"The YML feed is broken at line {text[:cut].count(chr(10)) + 1}: ")


def test_yml_billion_laughs_is_refused_quickly(tmp_path):
    entities = ['<!ENTITY lol "lol">'] + [
        f'<!ENTITY lol{n} "{("&lol" + (str(n - 1) if n > 1 else "") + ";") * 10}">' for n in range(1, 10)
    ]
    path = tmp_path / "feed.yml"
    path.write_text('<?xml version="1.0"?>\n<!DOCTYPE yml_catalog [\n' + "\n".join(entities) + "\n]>\n"
                    "<yml_catalog><shop><offers><offer id=\"1\"><name>&lol9;</name></offer></offers></shop>"
                    "</yml_catalog>\n")
    error = fails(path)  # refused from the DOCTYPE: no entity is ever expanded (the billion laughs never start)
    assert error.code == "unsafe_xml"


def test_yml_external_entity_is_refused(tmp_path):
    path = tmp_path / "feed.yml"
    path.write_text('<?xml version="1.0"?>\n<!DOCTYPE y [<!ENTITY x SYSTEM "file:///etc/passwd">]>\n'
                    '<yml_catalog><shop><offers><offer id="1"><name>&x;</name></offer></offers></shop></yml_catalog>')
    assert fails(path).code == "unsafe_xml"


def test_yml_doctype_without_entities_is_fine(tmp_path):
    path = write_yml(tmp_path / "feed.yml", OFFERS, CATEGORIES)
    text = path.read_text(encoding="utf-8").replace("?>\n", '?>\n<!DOCTYPE yml_catalog SYSTEM "shops.dtd">\n', 1)
    path.write_text(text, encoding="utf-8")
    assert open_catalog(path, "feed.yml").rows == 2


def test_old_excel_file_is_refused_with_a_hint_to_save_as_xlsx(tmp_path):
    path = tmp_path / "price.xls"
    path.write_bytes(b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 1000)
    error = fails(path)
    assert error.code == "old_excel"
    assert "XLSX" in error.message


def test_pdf_is_refused_as_an_unsupported_type(tmp_path):
    path = tmp_path / "catalog.pdf"
    path.write_bytes(b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<< /Type /Catalog >>\nendobj\n")
    error = fails(path)
    assert (error.code, error.message) == ("unsupported_type",
                                           "Unsupported file type .pdf: upload CSV, XLSX or YML (XML).")


def test_utf16_bom_is_not_taken_for_binary(tmp_path):
    path = write_csv(tmp_path / "c.txt", [HEADER, *ROWS], encoding="utf-16", bom=True, delimiter="\t")
    catalog = open_catalog(path, "c.txt")
    assert (catalog.encoding, catalog.delimiter) == ("utf-16", "\t")
    assert codecs.BOM_UTF16_LE == path.read_bytes()[:2]
    assert records(catalog) == ROWS
