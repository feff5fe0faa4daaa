"""Weak spots for category managers, requirements edited in the browser, and who is in charge of what."""
from __future__ import annotations

from datetime import timedelta

import fastexcel
from sqlalchemy import select

from portal.catalog.models import Product
from portal.category_mapping import services
from portal.category_mapping.models import CategoryAttribute, FillInRequest, ManagedCategory, MerchantCategory
from portal.db import get_session, utcnow
from portal.jobs.services import get_runner
from portal.tenancy import Principal
from tests.support.catalog import csv_bytes, import_file
from tests.support.mapping import REQUIREMENTS, load_taxonomy

HEADER = ["sku", "title", "price", "category", "Цвет", "Размер"]


def _merchant(app, factory, slug, rows, mapping):
    merchant = factory.merchant(slug=slug)
    import_file(app, merchant.id, csv_bytes([HEADER, *rows]))
    with app.app_context():
        db = get_session()
        for path, category_id in mapping.items():
            row = db.scalar(select(MerchantCategory).where(MerchantCategory.merchant_id == merchant.id,
                                                           MerchantCategory.path == path))
            services.confirm(db, row, category_id, Principal(role="merchant_admin", merchant_id=merchant.id))
    return merchant


def _world(app, factory):
    load_taxonomy(app, requirements=REQUIREMENTS)
    wear = _merchant(app, factory, "wear", [["S-1", "Футболка", "990", "Футболки", "white", "M"],
                                            ["S-2", "Футболка", "990", "Футболки", "", ""],
                                            ["S-3", "Футболка", "990", "Футболки", "", "L"]], {"Футболки": 212})
    shop = _merchant(app, factory, "shop", [["P-1", "Футболка поло", "990", "Поло", "red", "S"],
                                            ["K-1", "Электрочайник", "2490", "Чайники", "", ""]], {"Поло": 212})
    manager = factory.user("category_manager")
    with app.app_context():
        db = get_session()
        db.add(ManagedCategory(user_id=manager.id, category_id=1))  # Apparel & Accessories and all below
        overdue = db.scalar(select(FillInRequest).where(FillInRequest.merchant_id == wear.id))
        overdue.due_at = utcnow() - timedelta(days=1)
        db.commit()
    return wear, shop, manager


def test_category_manager_sees_the_figures_of_their_categories_only(app, factory, auth):
    wear, shop, manager = _world(app, factory)
    auth.login(manager.email)
    page = auth.client.get("/mapping/weak-spots").get_data(as_text=True)
    assert "Apparel &amp; Accessories &gt; Clothing &gt; Shirts &amp; Tops" in page
    assert "Electric Kettles" not in page  # the kettle category is not in this manager's charge
    from portal.category_mapping.weak_spots import spots

    with app.app_context():
        (row,) = [s for s in spots(get_session(), Principal(role="category_manager", merchant_id=None, user_id=manager.id))
                  if s.key == 212]
    assert (row.products, row.merchants, row.open_requests, row.overdue_requests) == (4, 2, 1, 1)
    assert row.ready_share == 0.5  # S-1 and P-1
    assert abs(row.completeness - (2 + 0 + 1 + 2) / 8) < 1e-9
    assert row.missing == [("color", 2), ("size", 1)]
    drill = auth.client.get("/mapping/weak-spots/212").get_data(as_text=True)
    assert wear.name in drill and shop.name in drill
    products = auth.client.get(f"/mapping/weak-spots/212/merchants/{wear.id}").get_data(as_text=True)
    assert "S-2" in products and "incomplete" in products
    assert auth.client.get("/mapping/weak-spots/751").status_code == 404  # not theirs


def test_operators_see_every_category_and_pending_merchant_categories(app, factory, auth):
    _world(app, factory)
    operator = factory.user("operator_admin")
    auth.login(operator.email)
    page = auth.client.get("/mapping/weak-spots?sort=pending_categories").get_data(as_text=True)
    assert "Electric Kettles" in page  # the unmapped Чайники of shop probably belongs there


def test_weak_spots_download_as_csv_and_xlsx(app, factory, auth):
    _, _, manager = _world(app, factory)
    auth.login(manager.email)
    csv_file = auth.client.get("/mapping/weak-spots?format=csv")
    assert csv_file.mimetype == "text/csv"
    text = csv_file.data.decode("utf-8-sig")
    assert text.splitlines()[0].startswith("Id,Category,Products,Merchants,Average completeness,Ready")
    assert "Shirts & Tops" in text
    xlsx = auth.client.get("/mapping/weak-spots?format=xlsx")
    table = fastexcel.read_excel(xlsx.data).load_sheet(0).to_arrow().to_pylist()
    assert table[0]["Category"].endswith("Shirts & Tops") and table[0]["Products"] == 4


def test_a_category_manager_edits_requirements_in_their_charge_and_merchants_are_told(app, factory, auth):
    wear, _, manager = _world(app, factory)
    auth.login(manager.email)
    page = "/mapping/taxonomy/212"
    assert "sleeve" in auth.client.get(page).get_data(as_text=True)
    auth.post(f"{page}/requirements", {"code": "fit", "name_en": "Fit", "name_ru": "Посадка", "type": "text",
                                       "required": "1"}, csrf_page=page)
    get_runner(app).wait(timeout=30)
    with app.app_context():
        db = get_session()
        assert db.scalar(select(Product).where(Product.sku == "S-1")).missing == ["fit"]
        kinds = {r.kind for r in db.scalars(select(FillInRequest).where(FillInRequest.merchant_id == wear.id,
                                                                         FillInRequest.status == "open"))}
        assert kinds == {"rules"}
    bad = auth.post(f"{page}/requirements", {"code": "tone", "type": "enum", "required": "1"}, csrf_page=page,
                    follow_redirects=True).get_data(as_text=True)
    assert "an enum attribute needs its allowed values" in bad
    refused = auth.post("/mapping/taxonomy/751/requirements", {"code": "power_w", "type": "number", "required": "1"},
                        csrf_page=page, follow_redirects=True).get_data(as_text=True)
    assert "Only the category managers in charge of this category" in refused
    with app.app_context():
        assert get_session().scalar(select(CategoryAttribute).where(CategoryAttribute.code == "power_w")) is None
    auth.post(f"{page}/requirements/fit/delete", csrf_page=page)
    get_runner(app).wait(timeout=30)
    with app.app_context():
        assert get_session().scalar(select(Product).where(Product.sku == "S-1")).readiness == "ready"


def test_operator_puts_a_category_manager_in_charge(app, factory, auth):
    load_taxonomy(app)
    manager = factory.user("category_manager")
    operator = factory.user("operator_admin")
    auth.login(operator.email)
    page = "/mapping/taxonomy/222"
    auth.post(f"{page}/managers", {"user_id": str(manager.id), "assigned": "1"}, csrf_page=page)
    assert manager.email in auth.client.get(page).get_data(as_text=True).split('id="managers"')[1].split("</ul>")[0]
    auth.logout()
    auth.login(manager.email)
    assert auth.post(f"{page}/managers", {"user_id": str(manager.id), "assigned": "0"}, csrf_page=page).status_code == 403
    taxonomy = auth.client.get("/mapping/taxonomy?q=phones").get_data(as_text=True)
    assert "Mobile Phones" in taxonomy and "in your charge" in taxonomy


def test_merchants_cannot_open_the_category_managers_pages(app, factory, auth):
    load_taxonomy(app)
    admin = factory.user("merchant_admin", factory.merchant(slug="nosy"))
    auth.login(admin.email)
    for path in ("/mapping/weak-spots", "/mapping/weak-spots?format=csv", "/mapping/taxonomy", "/mapping/requests/new"):
        assert auth.client.get(path).status_code == 403, path
