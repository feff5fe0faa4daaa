"""The merchant's catalog pages: upload, check the columns, preview, apply, results, products."""
from __future__ import annotations

import io
import re

from portal.jobs.services import get_runner
from tests.support.catalog import csv_bytes, import_file, products

FILE = csv_bytes([
    ["Артикул", "Наименование", "Цена", "Остаток", "Цвет"],
    ["A-1", "Футболка", "1 299,00", "5", "чёрный"],
    ["A-2", "Шорты", "abc", "1", "белый"],
])


def _upload(auth, content: bytes = FILE, filename: str = "my catalog.csv"):
    token = auth.csrf("/catalog/uploads")
    return auth.client.post("/catalog/uploads", data={"csrf_token": token, "file": (io.BytesIO(content), filename)},
                            content_type="multipart/form-data")


def _mapping_form(auth, upload_id: int, action: str, **extra: str):
    page = auth.client.get(f"/catalog/uploads/{upload_id}/mapping").get_data(as_text=True)
    fields = dict(re.findall(r'name="(map-\d+)"[^>]*>.*?<option value="([a-z]*)" selected', page, re.S))
    return auth.post(f"/catalog/uploads/{upload_id}/mapping", {**fields, "action": action, **extra},
                     csrf_page=f"/catalog/uploads/{upload_id}/mapping")


def test_merchant_uploads_previews_and_applies_a_file_in_the_cabinet(app, factory, auth):
    admin = factory.user("merchant_admin")
    auth.login(admin.email)
    response = _upload(auth)
    assert response.status_code == 302
    upload_id = int(re.search(r"/catalog/uploads/(\d+)/mapping", response.headers["Location"]).group(1))

    mapping = auth.client.get(f"/catalog/uploads/{upload_id}/mapping").get_data(as_text=True)
    assert "Артикул" in mapping and "1 299,00" in mapping

    preview = _mapping_form(auth, upload_id, "preview")
    assert preview.headers["Location"].endswith(f"/catalog/uploads/{upload_id}")
    get_runner(app).wait(30)
    page = auth.client.get(f"/catalog/uploads/{upload_id}").get_data(as_text=True)
    assert "preview: nothing has been changed yet" in page
    assert 'data-count="created">1<' in page and 'data-count="rejected">1<' in page
    assert products(app, admin.merchant_id) == {}

    auth.post(f"/catalog/uploads/{upload_id}/apply", csrf_page=f"/catalog/uploads/{upload_id}")
    get_runner(app).wait(30)
    page = auth.client.get(f"/catalog/uploads/{upload_id}").get_data(as_text=True)
    assert 'data-count="created">1<' in page
    assert "abc is not a price" in page
    assert set(products(app, admin.merchant_id)) == {"A-1"}

    report = auth.client.get(f"/catalog/uploads/{upload_id}/errors")
    assert report.status_code == 200
    text = report.get_data().decode("utf-8-sig")
    assert text.splitlines()[0] == "Артикул,Наименование,Цена,Остаток,Цвет,Error"
    assert text.splitlines()[1].startswith("A-2,Шорты,abc,1,белый,")
    original = auth.client.get(f"/catalog/uploads/{upload_id}/file")
    assert original.get_data() == FILE


def test_error_report_is_in_the_language_of_the_uploader(app, factory, auth):
    admin = factory.user("merchant_admin")
    auth.login(admin.email)
    auth.post("/language", {"lang": "ru"})
    upload_id = int(re.search(r"(\d+)/mapping", _upload(auth).headers["Location"]).group(1))
    _mapping_form(auth, upload_id, "apply")
    get_runner(app).wait(30)
    text = auth.client.get(f"/catalog/uploads/{upload_id}/errors").get_data().decode("utf-8-sig")
    assert text.splitlines()[0].endswith(",Ошибка")


def test_mapping_without_a_sku_column_is_refused_with_a_message(app, factory, auth):
    admin = factory.user("merchant_admin")
    auth.login(admin.email)
    upload_id = int(re.search(r"(\d+)/mapping", _upload(auth).headers["Location"]).group(1))
    response = auth.post(f"/catalog/uploads/{upload_id}/mapping", {"map-0": "", "map-1": "title", "action": "apply"},
                         csrf_page=f"/catalog/uploads/{upload_id}/mapping", follow_redirects=True)
    assert "No column is mapped to the SKU" in response.get_data(as_text=True)
    assert products(app, admin.merchant_id) == {}


def test_unreadable_file_shows_its_message_and_nothing_changes(app, factory, auth):
    admin = factory.user("merchant_admin")
    auth.login(admin.email)
    response = _upload(auth, b"", "empty.csv")
    page = auth.client.get(response.headers["Location"]).get_data(as_text=True)
    assert "Nothing was changed." in page
    assert "empty" in page.lower()


def test_upload_history_lists_every_upload_with_its_counts(app, factory, auth):
    admin = factory.user("merchant_admin")
    import_file(app, admin.merchant_id, FILE, "first.csv")
    auth.login(admin.email)
    page = auth.client.get("/catalog/uploads").get_data(as_text=True)
    assert "first.csv" in page and "applied" in page


def test_merchant_staff_can_upload_but_staff_of_the_marketplace_cannot(app, factory, auth):
    staff = factory.user("merchant_staff")
    auth.login(staff.email)
    assert _upload(auth).status_code == 302
    auth.logout()
    manager = factory.user("category_manager")
    auth.login(manager.email)
    assert auth.client.get("/catalog/uploads").status_code == 200
    assert _upload(auth).status_code == 403


def test_product_list_searches_and_filters_and_the_product_page_shows_history(app, factory, auth):
    admin = factory.user("merchant_admin")
    header = ["sku", "title", "price", "category"]
    import_file(app, admin.merchant_id, csv_bytes([header, ["A-1", "Красная футболка", "10", "Одежда"],
                                                   ["B-2", "Синие шорты", "20", "Шорты"]]))
    import_file(app, admin.merchant_id, csv_bytes([header, ["A-1", "Красная футболка", "15", "Одежда"]]))
    auth.login(admin.email)
    listing = auth.client.get("/catalog/products?q=футболка").get_data(as_text=True)
    assert "A-1" in listing and "B-2" not in listing
    assert "B-2" in auth.client.get("/catalog/products?category=Шорты").get_data(as_text=True)
    assert "A-1" not in auth.client.get("/catalog/products?status=inactive").get_data(as_text=True)
    product_id = products(app, admin.merchant_id)["A-1"].id
    page = auth.client.get(f"/catalog/products/{product_id}").get_data(as_text=True)
    assert "10.00" in page and "15.00" in page and "catalog upload" in page


def test_products_with_a_rejected_last_row_can_be_filtered(app, factory, auth):
    admin = factory.user("merchant_admin")
    header = ["sku", "title", "price"]
    import_file(app, admin.merchant_id, csv_bytes([header, ["A-1", "X", "10"], ["B-2", "Y", "20"]]))
    import_file(app, admin.merchant_id, csv_bytes([header, ["A-1", "X", "zero"]]))
    auth.login(admin.email)
    page = auth.client.get("/catalog/products?has_errors=1").get_data(as_text=True)
    assert "A-1" in page and "B-2" not in page


def test_operator_sees_every_merchants_uploads_and_products_with_the_merchant_named(app, factory, auth):
    first, second = factory.merchant(name="First Shop"), factory.merchant(name="Second Shop")
    import_file(app, first.id, FILE, "first.csv")
    import_file(app, second.id, FILE, "second.csv")
    operator = factory.user("operator_admin")
    auth.login(operator.email)
    uploads_page = auth.client.get("/catalog/uploads").get_data(as_text=True)
    assert "first.csv" in uploads_page and "second.csv" in uploads_page and "Second Shop" in uploads_page
    products_page = auth.client.get("/catalog/products").get_data(as_text=True)
    assert "First Shop" in products_page and "Second Shop" in products_page
    assert 'id="upload-form"' not in uploads_page
