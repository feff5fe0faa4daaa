"""The mapping pages and commands: suggestions shown, confirmed from the list, the picker, bulk, locks."""
from __future__ import annotations

import json
import tempfile

from sqlalchemy import select

from portal.category_mapping.models import MerchantCategory
from portal.db import get_session
from tests.support.catalog import csv_bytes, import_file
from tests.support.mapping import REQUIREMENTS, load_taxonomy

CATALOG = [["sku", "title", "price", "category"],
           ["T-1", "Футболка мужская хлопок, чёрная", "990", "Одежда > Футболки"],
           ["K-1", "Электрочайник Bosch 1,7 л", "2490", "Техника для кухни / Чайники"],
           ["P-1", "Смартфон Galaxy A15 128 ГБ", "15990", "Смартфоны"]]


def _setup(app, factory):
    load_taxonomy(app)
    merchant = factory.merchant(slug="shop")
    admin = factory.user("merchant_admin", merchant)
    import_file(app, merchant.id, csv_bytes(CATALOG))
    return merchant, admin


def _row(app, path: str) -> MerchantCategory:
    with app.app_context():
        return get_session().scalar(select(MerchantCategory).where(MerchantCategory.path == path))


def test_merchant_sees_categories_with_suggestions_and_confirms_one_from_the_list(app, factory, auth):
    merchant, admin = _setup(app, factory)
    auth.login(admin.email)
    page = auth.client.get("/mapping/categories").get_data(as_text=True)
    assert "Одежда &gt; Футболки" in page and "Shirts &amp; Tops" in page
    row = _row(app, "Смартфоны")
    response = auth.post(f"/mapping/categories/{row.id}/confirm", {"category_id": "267", "back": "list"},
                         csrf_page="/mapping/categories")
    assert response.status_code == 302 and response.location.endswith("/mapping/categories")
    assert (_row(app, "Смартфоны").status, _row(app, "Смартфоны").category_id) == ("confirmed", 267)


def test_picker_finds_categories_by_english_or_russian_words_and_by_id(app, factory, auth):
    _, admin = _setup(app, factory)
    auth.login(admin.email)
    row = _row(app, "Смартфоны")
    english = auth.client.get(f"/mapping/categories/{row.id}?q=kettle").get_data(as_text=True)
    assert "Electric Kettles" in english
    by_id = auth.client.get(f"/mapping/categories/{row.id}?q=4745").get_data(as_text=True)
    assert "Tablet Computers" in by_id
    russian = auth.client.get(f"/mapping/categories/{row.id}?q=планшеты").get_data(as_text=True)
    assert "Tablet Computers" in russian
    nothing = auth.client.get(f"/mapping/categories/{row.id}?q=zzzz").get_data(as_text=True)
    assert "Nothing found for “zzzz”." in nothing
    response = auth.post(f"/mapping/categories/{row.id}/confirm", {"category_id": "4745"}, csrf_page=f"/mapping/categories/{row.id}")
    assert response.status_code == 302
    assert _row(app, "Смартфоны").category_id == 4745


def test_confirming_a_category_that_does_not_exist_says_so_and_changes_nothing(app, factory, auth):
    _, admin = _setup(app, factory)
    auth.login(admin.email)
    row = _row(app, "Смартфоны")
    response = auth.post(f"/mapping/categories/{row.id}/confirm", {"category_id": "999999"},
                         csrf_page="/mapping/categories", follow_redirects=True)
    assert "There is no marketplace category 999999." in response.get_data(as_text=True)
    assert _row(app, "Смартфоны").status == "suggested"


def test_bulk_confirm_from_the_page(app, factory, auth):
    _, admin = _setup(app, factory)
    auth.login(admin.email)
    response = auth.post("/mapping/categories/bulk-confirm", {"min_confidence": "1"}, csrf_page="/mapping/categories",
                         follow_redirects=True)
    assert "3 suggestions at or above 1 % confirmed." in response.get_data(as_text=True)
    bad = auth.post("/mapping/categories/bulk-confirm", {"min_confidence": "150"}, csrf_page="/mapping/categories",
                    follow_redirects=True)
    assert "Give a confidence between 1 and 100 %." in bad.get_data(as_text=True)


def test_category_manager_locks_a_mapping_and_the_merchant_cannot_change_it(app, factory, auth):
    _, admin = _setup(app, factory)
    manager = factory.user("category_manager")
    row = _row(app, "Смартфоны")
    auth.login(manager.email)
    assert "Одежда &gt; Футболки" in auth.client.get("/mapping/categories").get_data(as_text=True)  # staff see all
    auth.post(f"/mapping/categories/{row.id}/confirm", {"category_id": "267"}, csrf_page="/mapping/categories")
    auth.post(f"/mapping/categories/{row.id}/lock", csrf_page="/mapping/categories")
    assert _row(app, "Смартфоны").locked
    auth.logout()
    auth.login(admin.email)
    page = auth.client.get(f"/mapping/categories/{row.id}").get_data(as_text=True)
    assert "A category manager has locked this mapping" in page
    response = auth.post(f"/mapping/categories/{row.id}/confirm", {"category_id": "4745"},
                         csrf_page="/mapping/categories", follow_redirects=True)
    assert "A category manager has locked this mapping; ask them to change it." in response.get_data(as_text=True)
    assert _row(app, "Смартфоны").category_id == 267
    assert auth.post(f"/mapping/categories/{row.id}/lock", csrf_page="/mapping/categories").status_code == 403


def test_taxonomy_and_mapping_commands(runner, app, factory):
    from tests.support.mapping import SMALL_TAXONOMY

    with tempfile.TemporaryDirectory() as folder:
        taxonomy = f"{folder}/taxonomy.txt"
        with open(taxonomy, "w", encoding="utf-8") as handle:
            handle.write(SMALL_TAXONOMY)
        result = runner.invoke(args=["taxonomy", "import", taxonomy, "--json"])
        assert result.exit_code == 0, result.output
        assert json.loads(result.stdout)["added"] == 16
        requirements = f"{folder}/requirements.csv"
        with open(requirements, "w", encoding="utf-8") as handle:
            handle.write(REQUIREMENTS)
        result = runner.invoke(args=["taxonomy", "requirements", requirements, "--json"])
        assert json.loads(result.stdout) == {"categories": 4, "added": 5, "changed": 0, "removed": 0}
        with open(requirements, "a", encoding="utf-8") as handle:
            handle.write("8888,color,Colour,,text,,yes,\n")
        result = runner.invoke(args=["taxonomy", "requirements", requirements, "--json"])
        assert result.exit_code == 1
        error = json.loads(result.stdout)["error"]
        assert error["code"] == "invalid_file" and error["details"] == ["Line 7: the category 8888 is not in the taxonomy."]
    merchant = factory.merchant(slug="shop")
    import_file(app, merchant.id, csv_bytes(CATALOG))
    result = runner.invoke(args=["mapping", "suggest", "--merchant", "shop", "--json"])
    items = json.loads(result.stdout)
    assert {item["merchant_category"] for item in items} == {"Одежда > Футболки", "Техника для кухни / Чайники", "Смартфоны"}
    assert all(len(item["suggestions"]) <= 3 for item in items)
    human = runner.invoke(args=["mapping", "suggest", "--merchant", "shop"])
    assert "Смартфоны (1 products, suggested)" in human.output


def test_the_demo_has_mapped_suggested_and_unmapped_categories_requests_and_weak_spots(runner, app, auth):
    from portal.category_mapping.models import FillInRequest

    result = runner.invoke(args=["demo", "seed", "--products", "24", "--json"])
    assert result.exit_code == 0, result.output
    with app.app_context():
        db = get_session()
        states = {row.status for row in db.scalars(select(MerchantCategory))}
        assert {"confirmed", "suggested", "unmapped"} <= states
        assert db.scalar(select(FillInRequest).where(FillInRequest.kind == "auto", FillInRequest.status == "open"))
    auth.login("cm@marketplace.example", "demo12345")
    page = auth.client.get("/mapping/weak-spots").get_data(as_text=True)
    assert "Mobile Phones" in page
    auth.logout()
    auth.login("admin@technomir.example", "demo12345")
    home = auth.client.get("/").get_data(as_text=True)
    assert 'id="figure-categories-waiting">2<' in home  # the clearance section and one suggested category
    assert "1 overdue" in home
    inbox = auth.client.get("/mapping/requests").get_data(as_text=True)
    assert "overdue" in inbox and "from a category manager" in inbox
