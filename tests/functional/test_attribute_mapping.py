"""Attribute names mapped onto marketplace codes, enum values normalised, and readiness following both."""
from __future__ import annotations

from sqlalchemy import select

from portal.catalog.models import Product
from portal.category_mapping import services
from portal.category_mapping.models import MerchantCategory
from portal.db import get_session
from portal.tenancy import Principal
from tests.support.catalog import csv_bytes, import_file
from tests.support.mapping import REQUIREMENTS, load_taxonomy


def _shop(app, factory):
    load_taxonomy(app, requirements=REQUIREMENTS)
    merchant = factory.merchant(slug="wear")
    admin = factory.user("merchant_admin", merchant)
    import_file(app, merchant.id, csv_bytes([
        ["sku", "title", "price", "category", "Оттенок", "Размер", "Материал"],
        ["S-1", "Футболка", "990", "Футболки", "Чёрный", "M", "хлопок"],
        ["S-2", "Футболка", "990", "Футболки", "черный", "L", "хлопок"],
    ]))
    with app.app_context():
        db = get_session()
        row = db.scalar(select(MerchantCategory).where(MerchantCategory.merchant_id == merchant.id))
        services.confirm(db, row, 212, Principal(role="merchant_admin", merchant_id=merchant.id))
    return merchant, admin


def _readiness(app, merchant_id):
    with app.app_context():
        return {p.sku: (p.readiness, p.missing) for p in
                get_session().scalars(select(Product).where(Product.merchant_id == merchant_id))}


def test_merchant_maps_an_attribute_name_then_its_values_and_products_become_ready(app, factory, auth):
    merchant, admin = _shop(app, factory)
    assert _readiness(app, merchant.id)["S-1"] == ("incomplete", ["color"])
    auth.login(admin.email)
    page = auth.client.get("/mapping/attributes").get_data(as_text=True)
    assert "Оттенок" in page and "recognised by its name" in page  # Размер is the size attribute's Russian name
    auth.post("/mapping/attributes", {"name": "Оттенок", "code": "color"}, csrf_page="/mapping/attributes")
    assert _readiness(app, merchant.id)["S-1"] == ("incomplete", ["color"])  # the value is still not an allowed one
    values = auth.client.get("/mapping/values/color").get_data(as_text=True)
    assert "черный" in values and "<option value=\"black\" selected>" in values  # suggested through the glossary
    auth.post("/mapping/values/color", {"source": "черный", "value": "black"}, csrf_page="/mapping/values/color")
    assert _readiness(app, merchant.id) == {"S-1": ("ready", []), "S-2": ("ready", [])}
    after = auth.client.get("/mapping/values/color").get_data(as_text=True)
    assert "<option value=\"black\" selected>" in after and ">mapped<" in after  # kept on the page, to change


def test_a_value_outside_the_allowed_list_and_an_unknown_attribute_are_refused(app, factory, auth):
    merchant, admin = _shop(app, factory)
    auth.login(admin.email)
    response = auth.post("/mapping/values/color", {"source": "черный", "value": "anthracite"},
                         csrf_page="/mapping/values/color", follow_redirects=True)
    assert "“anthracite” is not an allowed value of Colour; allowed: black, white, red, blue." in response.get_data(as_text=True)
    response = auth.post("/mapping/attributes", {"name": "Оттенок", "code": "shade"}, csrf_page="/mapping/attributes",
                         follow_redirects=True)
    assert "There is no marketplace attribute “shade”." in response.get_data(as_text=True)
    assert _readiness(app, merchant.id)["S-1"] == ("incomplete", ["color"])
    assert auth.client.get("/mapping/values/memory_gb").status_code == 404  # a number has no list of values
    assert auth.client.get("/mapping/values/nope").status_code == 404


def test_product_list_filters_by_readiness_and_the_product_page_says_what_is_missing(app, factory, auth):
    merchant, admin = _shop(app, factory)
    auth.login(admin.email)
    listing = auth.client.get("/catalog/products?readiness=incomplete").get_data(as_text=True)
    assert "S-1" in listing and "S-2" in listing
    assert "S-1" not in auth.client.get("/catalog/products?readiness=ready").get_data(as_text=True)
    with app.app_context():
        product_id = get_session().scalar(select(Product.id).where(Product.sku == "S-1"))
    page = auth.client.get(f"/catalog/products/{product_id}").get_data(as_text=True)
    assert "Apparel &amp; Accessories &gt; Clothing &gt; Shirts &amp; Tops" in page
    assert "complete: 50 %" in page and "Missing: Colour" in page
