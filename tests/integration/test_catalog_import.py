"""Catalog import end to end through the services: counts, upsert, history, warnings, partial files."""
from __future__ import annotations

import io
from decimal import Decimal

from sqlalchemy import select

from portal.catalog.models import ProductEvent
from portal.db import get_session
from portal.tenancy import Principal
from tests.support.catalog import csv_bytes, import_file, products

HEADER = ["sku", "title", "price", "stock", "gtin", "brand", "category", "images", "Цвет"]


def _row(sku: str, title: str = "Футболка", price: str = "999.00", stock: str = "5", gtin: str = "4601234567893",
         colour: str = "чёрный") -> list[str]:
    return [sku, title, price, stock, gtin, "Demix", "Одежда > Футболки", "https://img.example/1.jpg", colour]


def test_clean_file_creates_products_and_counts_them(app, factory):
    merchant = factory.merchant()
    result = import_file(app, merchant.id, csv_bytes([HEADER, _row("A-1"), _row("007", price="1 299,50")]))
    assert result["status"] == "applied"
    assert {k: result[k] for k in ("rows", "created", "updated", "unchanged", "rejected")} == {
        "rows": 2, "created": 2, "updated": 0, "unchanged": 0, "rejected": 0}
    items = products(app, merchant.id)
    assert set(items) == {"A-1", "007"}
    assert items["007"].price == Decimal("1299.50")
    assert items["A-1"].attributes == {"Цвет": "чёрный"}
    assert items["A-1"].images == ["https://img.example/1.jpg"]


def test_reuploading_an_unchanged_file_changes_nothing(app, factory):
    merchant = factory.merchant()
    content = csv_bytes([HEADER, _row("A-1"), _row("A-2")])
    import_file(app, merchant.id, content)
    before = {sku: p.updated_at for sku, p in products(app, merchant.id).items()}
    again = import_file(app, merchant.id, content)
    assert (again["unchanged"], again["created"], again["updated"]) == (2, 0, 0)
    assert {sku: p.updated_at for sku, p in products(app, merchant.id).items()} == before


def test_changed_row_is_updated_and_recorded_in_the_products_history(app, factory):
    merchant = factory.merchant()
    import_file(app, merchant.id, csv_bytes([HEADER, _row("A-1", price="100.00"), _row("A-2")]))
    result = import_file(app, merchant.id, csv_bytes([HEADER, _row("A-1", price="120.00", colour="белый"), _row("A-2")]))
    assert (result["updated"], result["unchanged"]) == (1, 1)
    product = products(app, merchant.id)["A-1"]
    with app.app_context():
        event = get_session().scalars(select(ProductEvent).where(ProductEvent.product_id == product.id)).one()
    assert event.changes["price"] == ["100.00", "120.00"]
    assert event.changes["attributes"][1] == {"Цвет": "белый"}
    assert event.source == "upload"


def test_bad_row_is_rejected_alone_and_never_half_applied(app, factory):
    merchant = factory.merchant()
    import_file(app, merchant.id, csv_bytes([HEADER, _row("A-1", title="Old title"), _row("A-2")]))
    result = import_file(app, merchant.id, csv_bytes([HEADER, _row("A-1", title="New title", price="-5"), _row("A-3")]))
    assert (result["rejected"], result["created"]) == (1, 1)
    assert result["errors"] == [{"row": 2, "column": "price", "code": "price_invalid",
                                 "message": "-5 is not a price: write it like 1299.00 or 1 299,00."}]
    items = products(app, merchant.id)
    assert items["A-1"].title == "Old title"
    assert items["A-1"].last_error.startswith("price: -5 is not a price")
    fixed = import_file(app, merchant.id, csv_bytes([HEADER, _row("A-1", title="New title")]))
    assert fixed["updated"] == 1
    assert products(app, merchant.id)["A-1"].last_error is None


def test_every_validation_rule_has_its_code_row_and_column(app, factory):
    merchant = factory.merchant()
    rows = [
        HEADER,
        _row(""),                                     # 2 sku_required
        _row("D-1"), _row("D-1"),                     # 4 sku_duplicate
        _row("T-1", title=""),                        # 5 title_required
        _row("P-1", price="abc"),                     # 6 price_invalid
        _row("P-2", price="0"),                       # 7 price_not_positive
        _row("S-1", stock="много"),                   # 8 stock_invalid
        _row("S-2", stock="-3"),                      # 9 stock_invalid
        _row("G-1", gtin="4601234567890"),            # 10 gtin_check_digit
        _row("G-2", gtin="4.60123456789E+12"),        # 11 gtin_mangled
        _row("G-3", gtin="12345"),                    # 12 gtin_invalid
        [*_row("I-1")[:7], "ftp://img.example/x.jpg", "red"],  # 13 image_url_invalid
        _row("OK-1", gtin="4601234567893.0"),         # 14 fine: recovered GTIN
    ]
    result = import_file(app, merchant.id, csv_bytes(rows))
    found = {(e["row"], e["column"], e["code"]) for e in result["errors"]}
    assert found == {
        (2, "sku", "sku_required"), (4, "sku", "sku_duplicate"), (5, "title", "title_required"),
        (6, "price", "price_invalid"), (7, "price", "price_not_positive"), (8, "stock", "stock_invalid"),
        (9, "stock", "stock_invalid"), (10, "gtin", "gtin_check_digit"), (11, "gtin", "gtin_mangled"),
        (12, "gtin", "gtin_invalid"), (13, "images", "image_url_invalid"),
    }
    assert result["rejected"] == 11
    assert products(app, merchant.id)["OK-1"].gtin == "4601234567893"


def test_currency_must_be_an_iso_code(app, factory):
    merchant = factory.merchant()
    result = import_file(app, merchant.id, csv_bytes([["sku", "title", "price", "currency"],
                                                      ["C-1", "X", "10", "руб"], ["C-2", "Y", "10", "RUBLES"]]))
    assert [(e["row"], e["code"]) for e in result["errors"]] == [(3, "currency_invalid")]
    assert products(app, merchant.id)["C-1"].currency == "RUB"


def test_price_moving_by_more_than_half_is_a_warning_not_an_error(app, factory):
    merchant = factory.merchant()
    import_file(app, merchant.id, csv_bytes([HEADER, _row("A-1", price="1000")]))
    result = import_file(app, merchant.id, csv_bytes([HEADER, _row("A-1", price="100")]), dry_run=True)
    assert (result["warnings"], result["updated"], result["rejected"]) == (1, 1, 0)
    with app.app_context():
        from portal.catalog.models import UploadIssue

        issue = get_session().scalars(select(UploadIssue).where(UploadIssue.upload_id == result["upload_id"])).one()
    assert issue.code == "price_jump" and issue.params == {"old": "1000.00", "new": "100.00"}


def test_zeroing_the_stock_of_many_products_is_warned(app, factory):
    merchant = factory.merchant()
    import_file(app, merchant.id, csv_bytes([HEADER] + [_row(f"Z-{n}", stock="5") for n in range(12)]))
    result = import_file(app, merchant.id, csv_bytes([HEADER] + [_row(f"Z-{n}", stock="0") for n in range(12)]),
                         dry_run=True)
    assert result["warnings"] == 1


def test_dry_run_reports_and_changes_nothing(app, factory):
    merchant = factory.merchant()
    result = import_file(app, merchant.id, csv_bytes([HEADER, _row("A-1")]), dry_run=True)
    assert (result["status"], result["created"]) == ("previewed", 1)
    assert products(app, merchant.id) == {}


def test_file_with_only_some_columns_updates_only_those(app, factory):
    merchant = factory.merchant()
    import_file(app, merchant.id, csv_bytes([HEADER, _row("A-1", title="Keep me", stock="5")]))
    result = import_file(app, merchant.id, csv_bytes([["Артикул", "Остаток"], ["A-1", "42"]]))
    assert result["updated"] == 1
    product = products(app, merchant.id)["A-1"]
    assert (product.title, product.stock, product.attributes) == ("Keep me", 42, {"Цвет": "чёрный"})


def test_new_product_in_a_partial_file_needs_a_title_and_price(app, factory):
    merchant = factory.merchant()
    result = import_file(app, merchant.id, csv_bytes([["Артикул", "Остаток"], ["NEW-1", "3"]]))
    assert {e["code"] for e in result["errors"]} == {"title_required", "price_required"}


def test_upload_keeps_reservations_when_it_changes_stock_on_hand(app, factory):
    merchant = factory.merchant()
    import_file(app, merchant.id, csv_bytes([HEADER, _row("A-1", stock="5")]))
    with app.app_context():
        db = get_session()
        from portal.catalog.models import Product

        db.scalars(select(Product)).one().reserved = 2
        db.commit()
    import_file(app, merchant.id, csv_bytes([HEADER, _row("A-1", stock="10")]))
    product = products(app, merchant.id)["A-1"]
    assert (product.stock, product.reserved, product.available) == (10, 2, 8)


def test_full_upload_can_deactivate_products_missing_from_it_and_a_later_one_reactivates(app, factory):
    merchant = factory.merchant()
    import_file(app, merchant.id, csv_bytes([HEADER, _row("A-1"), _row("A-2"), _row("A-3", price="bad")]))
    import_file(app, merchant.id, csv_bytes([HEADER, _row("A-1", price="5")]))  # A-2 exists, A-3 never did
    result = import_file(app, merchant.id, csv_bytes([HEADER, _row("A-1")]), deactivate_missing=True)
    assert result["deactivated"] == 1
    assert products(app, merchant.id)["A-2"].status == "inactive"
    back = import_file(app, merchant.id, csv_bytes([HEADER, _row("A-2")]))
    assert back["updated"] == 1
    assert products(app, merchant.id)["A-2"].status == "active"


def test_merchants_catalogs_are_separate_even_with_the_same_skus(app, factory):
    first, second = factory.merchant(), factory.merchant()
    import_file(app, first.id, csv_bytes([HEADER, _row("A-1", title="First's")]))
    result = import_file(app, second.id, csv_bytes([HEADER, _row("A-1", title="Second's")]))
    assert result["created"] == 1
    assert products(app, first.id)["A-1"].title == "First's"
    assert products(app, second.id)["A-1"].title == "Second's"


def test_saved_column_template_is_used_for_the_next_upload(app, factory):
    from portal.catalog import services
    from portal.tenancy import Principal
    import io

    merchant = factory.merchant()
    content = csv_bytes([["Код", "Имя", "Стоимость"], ["K-1", "Товар", "10"]])
    with app.app_context():
        db = get_session()
        principal = Principal(role="merchant_admin", merchant_id=merchant.id)
        upload = services.receive_upload(db, principal, stream=io.BytesIO(content), filename="a.csv")
        assert upload.mapping == {"Код": "", "Имя": "", "Стоимость": "price"}  # "стоимость" is a price synonym
        services.update_mapping(db, upload, {"Код": "sku", "Имя": "title", "Стоимость": "price"}, principal=principal,
                                save_template=True)
        second = services.receive_upload(db, principal, stream=io.BytesIO(content), filename="b.csv")
        assert second.mapping == {"Код": "sku", "Имя": "title", "Стоимость": "price"}


def test_an_upload_is_queued_once_even_when_started_twice_at_once(app, factory):
    import io

    import pytest

    from portal.catalog import services
    from portal.catalog.exceptions import UploadBusy
    from portal.catalog.models import Upload
    from portal.tenancy import Principal

    merchant = factory.merchant()
    principal = Principal(role="merchant_admin", merchant_id=merchant.id)
    with app.app_context():
        db = get_session()
        upload = services.receive_upload(db, principal, stream=io.BytesIO(csv_bytes([HEADER, _row("A-1")])), filename="a.csv")
        upload_id = upload.id
    with app.app_context():
        stale = get_session().get(Upload, upload_id)  # the second click's view of the upload: still "uploaded"
        with app.app_context():
            other = get_session()
            other.get(Upload, upload_id).status = "queued"  # the first click got there first
            other.commit()
        with pytest.raises(UploadBusy):
            services.start_processing(get_session(), stale, dry_run=False, principal=principal)


def test_an_error_in_the_middle_of_applying_changes_nothing_and_marks_the_upload_failed(app, factory, monkeypatch):
    import pytest

    from portal.catalog import services

    merchant = factory.merchant()
    import_file(app, merchant.id, csv_bytes([HEADER, _row("A-1", title="Before")]))

    def broken(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(services, "insert_events", broken)
    with pytest.raises(RuntimeError):
        import_file(app, merchant.id, csv_bytes([HEADER, _row("A-1", title="After"), _row("A-2")]))
    items = products(app, merchant.id)
    assert set(items) == {"A-1"} and items["A-1"].title == "Before"
    with app.app_context():
        from portal.catalog.models import Upload

        last = get_session().scalars(select(Upload).order_by(Upload.id.desc())).first()
    assert (last.status, last.error_code) == ("failed", "internal_error")


def test_reupload_after_an_api_price_change_puts_the_files_price_back(app, factory, client):
    merchant = factory.merchant()
    content = csv_bytes([HEADER, _row("A-1", price="100")])
    import_file(app, merchant.id, content)
    _, secret = factory.token(merchant)
    assert client.patch("/api/v1/products/A-1", headers={"Authorization": f"Bearer {secret}"},
                        json={"price": "150"}).status_code == 200
    result = import_file(app, merchant.id, content)
    assert result["updated"] == 1
    assert products(app, merchant.id)["A-1"].price == Decimal("100.00")


def test_a_row_repeating_an_already_applied_sku_is_still_a_duplicate(app, factory):
    merchant = factory.merchant()
    import_file(app, merchant.id, csv_bytes([HEADER, _row("A-1")]))
    result = import_file(app, merchant.id, csv_bytes([HEADER, _row("A-1"), _row("A-1", title="Again")]))
    assert (result["unchanged"], result["rejected"]) == (1, 1)
    assert result["errors"][0]["code"] == "sku_duplicate"
    assert products(app, merchant.id)["A-1"].title == "Футболка"


def test_an_identical_repeat_in_a_later_chunk_is_a_duplicate_and_marks_the_product(app, factory, monkeypatch):
    from portal.catalog import services

    monkeypatch.setattr(services, "CHUNK_ROWS", 2)
    merchant = factory.merchant()
    import_file(app, merchant.id, csv_bytes([HEADER, _row("A-1"), _row("A-2")]))
    result = import_file(app, merchant.id, csv_bytes([HEADER, _row("A-1"), _row("A-2"), _row("A-1")]))
    assert (result["unchanged"], result["rejected"]) == (2, 1)
    assert (result["errors"][0]["row"], result["errors"][0]["code"]) == (4, "sku_duplicate")
    assert "appears again" in products(app, merchant.id)["A-1"].last_error


def test_a_file_read_in_many_chunks_counts_and_numbers_rows_as_one(app, factory, monkeypatch):
    from portal.catalog import services

    monkeypatch.setattr(services, "CHUNK_ROWS", 10)
    monkeypatch.setattr(services, "FIRST_CHUNK_ROWS", 3)
    merchant = factory.merchant()
    rows = [_row(f"A-{n}") for n in range(25)]
    rows[7] = _row("A-7", price="abc")
    rows[18] = _row("A-2")  # a repeat of row 4's SKU, in another chunk
    result = import_file(app, merchant.id, csv_bytes([HEADER, *rows]))
    assert (result["rows"], result["created"], result["rejected"]) == (25, 23, 2)
    assert [(e["row"], e["code"]) for e in result["errors"]] == [(9, "price_invalid"), (20, "sku_duplicate")]
    assert len(products(app, merchant.id)) == 23


def test_the_same_file_read_with_another_mapping_is_checked_again(app, factory):
    merchant = factory.merchant()
    content = csv_bytes([["sku", "title", "price", "Производитель"], ["A-1", "X", "10", "Demix"]])
    import_file(app, merchant.id, content, mapping={"Производитель": ""})
    assert products(app, merchant.id)["A-1"].attributes == {"Производитель": "Demix"}
    result = import_file(app, merchant.id, content, mapping={"Производитель": "brand"})
    assert result["updated"] == 1
    product = products(app, merchant.id)["A-1"]
    assert product.brand == "Demix"


def _xlsx_bytes(tmp_path, rows) -> bytes:
    from tests.support.catalog_files import write_xlsx

    return write_xlsx(tmp_path / "price.xlsx", rows, title_rows=["Прайс-лист"]).read_bytes()


def test_a_workbook_is_turned_into_text_once_when_received_and_applied_from_that_text(app, factory, tmp_path,
                                                                                       monkeypatch):
    from portal.catalog import services
    from portal.storage_access import get_storage

    merchant = factory.merchant()
    content = _xlsx_bytes(tmp_path, [["Артикул", "Наименование", "Цена", "Штрихкод"],
                                     ["007", "Кружка", 450, 4601234567893], ["A-2", "Ложка", "abc", None]])

    def no_workbook(*args, **kwargs):
        raise AssertionError("the workbook was opened again to apply it")

    with app.app_context():
        principal = Principal(role="merchant_admin", merchant_id=merchant.id)
        received = services.receive_upload(get_session(), principal, stream=io.BytesIO(content), filename="price.xlsx")
        assert get_storage().exists(received.storage_key.rsplit("/", 1)[0] + "/+derived/rows.arrow")
        monkeypatch.setattr(services, "open_catalog", no_workbook)
        result = services.upload_result(get_session(), services.process_upload(get_session(), received.id, dry_run=False))
    assert (result["created"], result["rejected"]) == (1, 1)
    assert (result["errors"][0]["row"], result["errors"][0]["code"]) == (5, "price_invalid")  # the sheet's own row
    assert products(app, merchant.id)["007"].gtin == "4601234567893"


def test_a_workbook_received_without_its_text_is_read_from_the_workbook(app, factory, tmp_path):
    from portal.catalog import services
    from portal.storage_access import get_storage

    merchant = factory.merchant()
    content = _xlsx_bytes(tmp_path, [["sku", "title", "price"], ["A-1", "Кружка", 450]])
    with app.app_context():
        principal = Principal(role="merchant_admin", merchant_id=merchant.id)
        received = services.receive_upload(get_session(), principal, stream=io.BytesIO(content), filename="price.xlsx")
        get_storage().delete(received.storage_key.rsplit("/", 1)[0] + "/+derived/rows.arrow")  # as uploads of old
        upload = services.process_upload(get_session(), received.id, dry_run=False)
        assert (upload.status, upload.created) == ("applied", 1)


def test_swapping_two_column_headers_reads_the_rows_afresh(app, factory):
    merchant = factory.merchant()
    import_file(app, merchant.id, csv_bytes([["sku", "title", "price", "stock"], ["A-1", "Кружка", "100", "5"]]))
    result = import_file(app, merchant.id, csv_bytes([["sku", "title", "stock", "price"], ["A-1", "Кружка", "100", "5"]]))
    assert result["updated"] == 1
    product = products(app, merchant.id)["A-1"]
    assert (product.price, product.stock) == (Decimal("5.00"), 100)


def test_a_file_whose_name_is_that_of_the_folder_for_made_files_is_kept_apart(app, factory):
    from portal.catalog.models import Upload

    merchant = factory.merchant()
    for name in ("derived", "+derived", "errors.csv"):
        result = import_file(app, merchant.id, csv_bytes([HEADER, _row("A-1"), _row("A-2", price="abc")]), name)
        assert (result["status"], result["rejected"]) == ("applied", 1)
        with app.app_context():
            upload = get_session().get(Upload, result["upload_id"])
            assert upload.error_report_key != upload.storage_key
