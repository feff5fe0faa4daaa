"""Fill-in requests: opened for incomplete products, filled inline or by the round-trip workbook, closed by the data."""
from __future__ import annotations

import io
from datetime import timedelta

import xlsxwriter
from sqlalchemy import select

from portal.catalog.models import Product
from portal.category_mapping import services
from portal.category_mapping.models import FillInRequest, MerchantCategory
from portal.db import get_session, utcnow
from portal.jobs.services import get_runner
from portal.tenancy import Principal
from tests.support.catalog import csv_bytes, import_file
from tests.support.mapping import REQUIREMENTS, load_taxonomy

HEADER = ["sku", "title", "price", "category", "Цвет"]


def _shop(app, factory, slug="wear"):
    load_taxonomy(app, requirements=REQUIREMENTS)
    merchant = factory.merchant(slug=slug)
    admin = factory.user("merchant_admin", merchant)
    import_file(app, merchant.id, csv_bytes([HEADER, ["S-1", "Футболка белая", "990", "Футболки", "white"],
                                             ["S-2", "Футболка", "990", "Футболки", ""]]))
    with app.app_context():
        db = get_session()
        row = db.scalar(select(MerchantCategory).where(MerchantCategory.merchant_id == merchant.id))
        services.confirm(db, row, 212, Principal(role="merchant_admin", merchant_id=merchant.id))
    return merchant, admin


def _requests(app, merchant_id) -> list[FillInRequest]:
    with app.app_context():
        return list(get_session().scalars(select(FillInRequest).where(FillInRequest.merchant_id == merchant_id)
                                          .order_by(FillInRequest.id)))


def _product(app, sku) -> Product:
    with app.app_context():
        return get_session().scalar(select(Product).where(Product.sku == sku))


def test_confirming_a_category_opens_a_request_naming_what_its_products_lack(app, factory, auth):
    merchant, admin = _shop(app, factory)
    (row,) = _requests(app, merchant.id)
    assert (row.kind, row.category_id, row.attributes, row.status) == ("auto", 212, ["color", "size"], "open")
    assert row.due_at > utcnow() + timedelta(days=13)
    auth.login(admin.email)
    inbox = auth.client.get("/mapping/requests").get_data(as_text=True)
    assert "Shirts &amp; Tops" in inbox and "Colour, Size" in inbox
    page = auth.client.get(f"/mapping/requests/{row.id}").get_data(as_text=True)
    assert "S-1" in page and "S-2" in page


def test_inline_filling_saves_all_values_or_none_and_the_request_closes(app, factory, auth):
    merchant, admin = _shop(app, factory)
    (row,) = _requests(app, merchant.id)
    s1, s2 = _product(app, "S-1"), _product(app, "S-2")
    auth.login(admin.email)
    page = f"/mapping/requests/{row.id}"
    bad = auth.post(f"{page}/fill", {f"v:{s1.id}:size": "M", f"v:{s2.id}:color": "anthracite"}, csrf_page=page,
                    follow_redirects=True).get_data(as_text=True)
    assert "Nothing was saved: S-2: Colour: “anthracite” is not one of black, white, red, blue." in bad
    assert _product(app, "S-1").attributes == {"Цвет": "white"}
    auth.post(f"{page}/fill", {f"v:{s1.id}:size": "M", f"v:{s2.id}:color": "Black", f"v:{s2.id}:size": "XL"},
              csrf_page=page)
    assert _product(app, "S-2").attributes == {"color": "black", "size": "xl"}
    assert _product(app, "S-2").readiness == "ready" and _product(app, "S-1").readiness == "ready"
    assert _requests(app, merchant.id)[0].status == "closed"


def _filled_copy(data: bytes, changes: dict[str, dict[str, str]], *, drop_mark=False, rename=None, extra_row=None) -> bytes:
    """Re-write the downloaded workbook the way a merchant fills it in a spreadsheet."""
    import fastexcel

    reader = fastexcel.read_excel(data)
    rows = reader.load_sheet(0, header_row=None, dtypes="string").to_arrow().to_pylist()
    cells = [[value or "" for value in row.values()] for row in rows]
    header = cells[0]
    for line in cells[1:]:
        for column, value in changes.get(line[0], {}).items():
            line[header.index(column)] = value
    if rename:
        header[header.index(rename[0])] = rename[1]
    if extra_row:
        cells.append(extra_row)
    buffer = io.BytesIO()
    book = xlsxwriter.Workbook(buffer)
    sheet = book.add_worksheet("Products")
    for number, line in enumerate(cells):
        sheet.write_row(number, 0, line)
    if not drop_mark:
        mark = book.add_worksheet("_portal")
        for number, line in enumerate(reader.load_sheet("_portal", header_row=None, dtypes="string").to_arrow().to_pylist()):
            mark.write_row(number, 0, list(line.values()))
        mark.hide()
    book.close()
    return buffer.getvalue()


def test_the_workbook_round_trip_fills_the_products_through_the_catalog_pipeline(app, factory, auth):
    merchant, admin = _shop(app, factory)
    (row,) = _requests(app, merchant.id)
    auth.login(admin.email)
    page = f"/mapping/requests/{row.id}"
    response = auth.client.get(f"{page}/workbook")
    assert response.status_code == 200 and response.mimetype.endswith("spreadsheetml.sheet")
    filled = _filled_copy(response.data, {"S-1": {"Size": "M"}, "S-2": {"Colour": "red", "Size": "S"}})
    answer = auth.post(f"{page}/workbook", {"file": (io.BytesIO(filled), "filled.xlsx")}, csrf_page=page,
                       content_type="multipart/form-data")
    assert answer.status_code == 302 and "/catalog/uploads/" in answer.location
    get_runner(app).wait(timeout=30)
    assert _product(app, "S-2").readiness == "ready" and _product(app, "S-1").readiness == "ready"
    assert _product(app, "S-1").title == "Футболка белая" and _product(app, "S-1").price == 990
    assert _requests(app, merchant.id)[0].status == "closed"


def test_a_returned_workbook_with_changed_columns_or_another_merchants_rows_is_refused(app, factory, auth):
    merchant, admin = _shop(app, factory)
    (row,) = _requests(app, merchant.id)
    auth.login(admin.email)
    page = f"/mapping/requests/{row.id}"
    data = auth.client.get(f"{page}/workbook").data

    def send(content: bytes) -> str:
        return auth.post(f"{page}/workbook", {"file": (io.BytesIO(content), "filled.xlsx")}, csrf_page=page,
                         content_type="multipart/form-data", follow_redirects=True).get_data(as_text=True)

    assert "The file&#39;s columns were changed (Farbe)" in send(_filled_copy(data, {}, rename=("Colour", "Farbe")))
    foreign = send(_filled_copy(data, {}, drop_mark=True, extra_row=["NOT-MINE", "x", "red", "M"]))
    assert "The file has products that are not yours: row 4 (NOT-MINE). Nothing was changed." in foreign
    with app.app_context():
        db = get_session()
        second = FillInRequest(merchant_id=merchant.id, category_id=212, kind="manual", attributes=["sleeve"],
                               text="", status="open")
        db.add(second)
        db.commit()
        second_id = second.id
    made_for_second = auth.client.get(f"/mapping/requests/{second_id}/workbook").data
    wrong = _filled_copy(made_for_second, {})
    assert "This file was made for another merchant or another request" in send(wrong)
    assert _product(app, "S-2").attributes == {}


def test_changed_requirements_tell_the_merchants_whose_products_became_incomplete(app, factory):
    merchant, _ = _shop(app, factory)
    auth_principal = Principal(role="merchant_admin", merchant_id=merchant.id)
    with app.app_context():
        db = get_session()
        product = db.scalar(select(Product).where(Product.sku == "S-1"))
        from portal.catalog import services as catalog_services

        catalog_services.set_attributes(db, product, {"size": "m"}, principal=auth_principal)
        db.commit()
        from portal.category_mapping import requests

        requests.refresh(db, [merchant.id])
        db.commit()
        assert db.scalar(select(Product).where(Product.sku == "S-1")).readiness == "ready"
        services.load_requirements(db, "category_id,code,name_en,name_ru,type,unit,required,allowed_values\n"
                                       "212,fit,Fit,Посадка,text,,yes,\n")
    rows = [r for r in _requests(app, merchant.id) if r.status == "open"]
    assert [(r.kind, r.attributes) for r in rows] == [("rules", ["color", "fit", "size"])]


def test_category_manager_opens_a_manual_request_with_a_due_date(app, factory, auth):
    merchant, admin = _shop(app, factory)
    manager = factory.user("category_manager")
    auth.login(manager.email)
    due = (utcnow() + timedelta(days=7)).date().isoformat()
    response = auth.post("/mapping/requests/new", {"merchant_id": str(merchant.id), "text": "Add the fabric, please",
                                                   "attributes": "sleeve", "sku": "S-1", "due_date": due},
                         csrf_page="/mapping/requests/new")
    assert response.status_code == 302
    manual = [r for r in _requests(app, merchant.id) if r.kind == "manual"][0]
    assert (manual.attributes, manual.text, manual.product_id) == (["sleeve"], "Add the fabric, please", _product(app, "S-1").id)
    bad = auth.post("/mapping/requests/new", {"merchant_id": str(merchant.id), "attributes": "fabric"},
                    csrf_page="/mapping/requests/new").get_data(as_text=True)
    assert "Unknown attribute(s): fabric." in bad
    auth.logout()
    auth.login(admin.email)
    page = f"/mapping/requests/{manual.id}"
    auth.post(f"{page}/fill", {f"v:{_product(app, 'S-1').id}:sleeve": "short"}, csrf_page=page)
    assert [r for r in _requests(app, merchant.id) if r.kind == "manual"][0].status == "closed"
