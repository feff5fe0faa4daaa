"""Catalog API: uploads (202, then the result), the product list, quick price and stock updates."""
from __future__ import annotations

import io

from portal.jobs.services import get_runner
from tests.support.catalog import csv_bytes, import_file, products

FILE = csv_bytes([["sku", "title", "price", "stock"], ["A-1", "Футболка", "100", "5"], ["A-2", "Шорты", "x", "1"]])


def _bearer(secret):
    return {"Authorization": f"Bearer {secret}"}


def test_upload_through_the_api_is_accepted_then_reports_its_counts_and_errors(app, factory, client):
    merchant = factory.merchant()
    _, secret = factory.token(merchant)
    response = client.post("/api/v1/catalog/uploads", headers=_bearer(secret),
                           data={"file": (io.BytesIO(FILE), "c.csv")}, content_type="multipart/form-data")
    assert response.status_code == 202
    upload_id = response.json["upload_id"]
    get_runner(app).wait(30)
    result = client.get(f"/api/v1/catalog/uploads/{upload_id}", headers=_bearer(secret)).json
    assert {k: result[k] for k in ("status", "rows", "created", "rejected")} == {
        "status": "applied", "rows": 2, "created": 1, "rejected": 1}
    assert result["errors"][0] == {"row": 3, "column": "price", "code": "price_invalid",
                                   "message": "x is not a price: write it like 1299.00 or 1 299,00."}


def test_api_dry_run_changes_nothing(app, factory, client):
    merchant = factory.merchant()
    _, secret = factory.token(merchant)
    response = client.post("/api/v1/catalog/uploads", headers=_bearer(secret),
                           data={"file": (io.BytesIO(FILE), "c.csv"), "dry_run": "true"}, content_type="multipart/form-data")
    get_runner(app).wait(30)
    result = client.get(f"/api/v1/catalog/uploads/{response.json['upload_id']}", headers=_bearer(secret)).json
    assert (result["status"], result["created"]) == ("previewed", 1)
    assert products(app, merchant.id) == {}


def test_unreadable_upload_answers_422_with_one_message(factory, client):
    _, secret = factory.token(factory.merchant())
    response = client.post("/api/v1/catalog/uploads", headers=_bearer(secret),
                           data={"file": (io.BytesIO(b""), "c.csv")}, content_type="multipart/form-data")
    assert response.status_code == 422
    assert response.json["error"]["code"] == "empty_file"
    assert response.json["error"]["details"]["status"] == "failed"


def test_upload_without_a_file_answers_422(factory, client):
    _, secret = factory.token(factory.merchant())
    response = client.post("/api/v1/catalog/uploads", headers=_bearer(secret), data={}, content_type="multipart/form-data")
    assert response.status_code == 422
    assert "file" in response.json["error"]["details"]["files"]


def test_operator_token_cannot_upload_a_catalog(factory, client):
    _, secret = factory.token(None)
    response = client.post("/api/v1/catalog/uploads", headers=_bearer(secret),
                           data={"file": (io.BytesIO(FILE), "c.csv")}, content_type="multipart/form-data")
    assert response.status_code == 403


def test_product_list_pages_with_next(app, factory, client):
    merchant = factory.merchant()
    rows = [["sku", "title", "price"]] + [[f"P-{n}", f"Товар {n}", "10"] for n in range(5)]
    import_file(app, merchant.id, csv_bytes(rows))
    _, secret = factory.token(merchant)
    first = client.get("/api/v1/products?limit=3", headers=_bearer(secret)).json
    assert [p["sku"] for p in first["items"]] == ["P-0", "P-1", "P-2"]
    assert first["items"][0]["price"] == "10.00" and first["items"][0]["available"] == 0
    second = client.get(first["next"].replace("http://portal.test", ""), headers=_bearer(secret)).json
    assert [p["sku"] for p in second["items"]] == ["P-3", "P-4"]
    assert second["next"] is None


def test_patch_changes_price_and_stock_and_records_history(app, factory, client):
    merchant = factory.merchant()
    import_file(app, merchant.id, FILE)
    _, secret = factory.token(merchant)
    response = client.patch("/api/v1/products/A-1", headers=_bearer(secret), json={"price": "149.90", "stock": 7})
    assert response.status_code == 200
    assert (response.json["price"], response.json["stock"]) == ("149.90", 7)
    product = products(app, merchant.id)["A-1"]
    from portal.catalog.models import ProductEvent
    from portal.db import get_session
    from sqlalchemy import select

    with app.app_context():
        event = get_session().scalars(select(ProductEvent).where(ProductEvent.product_id == product.id)).one()
    assert event.source == "api" and event.changes == {"price": ["100.00", "149.90"], "stock": [5, 7]}
    again = import_file(app, merchant.id, csv_bytes([["sku", "title", "price", "stock"], ["A-1", "Футболка", "149.90", "7"]]))
    assert again["unchanged"] == 1


def test_patch_with_bad_values_answers_422_and_changes_nothing(app, factory, client):
    merchant = factory.merchant()
    import_file(app, merchant.id, FILE)
    _, secret = factory.token(merchant)
    for body in ({"price": "-1"}, {"price": "1.234"}, {"stock": -2}, {"stock": 1.5}, {"price": "abc"}):
        response = client.patch("/api/v1/products/A-1", headers=_bearer(secret), json=body)
        assert response.status_code == 422, body
        assert "error" in response.json
    product = products(app, merchant.id)["A-1"]
    assert (str(product.price), product.stock) == ("100.00", 5)


def test_patch_of_an_unknown_sku_is_404(factory, client):
    _, secret = factory.token(factory.merchant())
    response = client.patch("/api/v1/products/NOPE", headers=_bearer(secret), json={"stock": 1})
    assert response.status_code == 404
    assert response.json["error"]["code"] == "not_found"
