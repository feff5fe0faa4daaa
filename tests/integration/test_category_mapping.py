"""Taxonomy re-imports, requirements, and a merchant's categories from upload to confirmed mapping."""
from __future__ import annotations

import pytest
from sqlalchemy import select

from portal.catalog.models import Product
from portal.category_mapping import services
from portal.category_mapping.exceptions import FileProblems, MappingError, MappingLocked
from portal.category_mapping.models import CategoryAttribute, MerchantCategory, TaxonomyCategory
from portal.db import get_session
from portal.tenancy import Principal
from tests.support.catalog import csv_bytes, import_file
from tests.support.mapping import REQUIREMENTS, SMALL_TAXONOMY, load_taxonomy

CATALOG = [["sku", "title", "price", "category"],
           ["T-1", "Футболка мужская хлопок, чёрная", "990", "Одежда > Футболки"],
           ["T-2", "Футболка оверсайз", "1290", "Одежда > Футболки"],
           ["K-1", "Электрочайник Bosch 1,7 л", "2490", "Техника для кухни / Чайники"],
           ["P-1", "Смартфон Galaxy A15 128 ГБ", "15990", "Смартфоны"]]


def test_reimport_keeps_ids_and_reports_added_renamed_and_removed(app):
    load_taxonomy(app)
    with app.app_context():
        db = get_session()
        changed = SMALL_TAXONOMY.replace("736 - Home & Garden > Kitchen & Dining > Kitchen Appliances > Coffee Makers & Espresso Machines\n", "") \
            .replace("Pants", "Trousers") + "5000 - Home & Garden > Kitchen & Dining > Kitchen Appliances > Toasters\n"
        report = services.import_taxonomy(db, changed)
        assert report.added == [5000] and report.removed == [736]
        assert report.renamed == [(204, "Apparel & Accessories > Clothing > Pants", "Apparel & Accessories > Clothing > Trousers")]
        assert db.get(TaxonomyCategory, 736).is_active is False  # kept for the mappings onto it
        again = services.import_taxonomy(db, changed)
        assert (again.added, again.renamed, again.removed, again.unchanged) == ([], [], [], 16)
        back = services.import_taxonomy(db, SMALL_TAXONOMY)
        assert 736 in back.added and db.get(TaxonomyCategory, 736).is_active


def test_a_broken_taxonomy_file_changes_nothing(app):
    load_taxonomy(app)
    with app.app_context():
        db = get_session()
        with pytest.raises(FileProblems):
            services.import_taxonomy(db, SMALL_TAXONOMY + "oops\n")
        assert db.get(TaxonomyCategory, 212).path == "Apparel & Accessories > Clothing > Shirts & Tops"


def test_requirements_replace_only_the_categories_the_file_names(app):
    load_taxonomy(app, requirements=REQUIREMENTS)
    with app.app_context():
        db = get_session()
        report = services.load_requirements(db, "category_id,code,name_en,type,required\n1604,color,Colour,text,yes\n")
        assert report.as_dict() == {"categories": 1, "added": 0, "changed": 1, "removed": 1}
        codes = {(r.category_id, r.code) for r in db.scalars(select(CategoryAttribute))}
        assert codes == {(1604, "color"), (212, "sleeve"), (267, "memory_gb"), (751, "volume_l")}
        with pytest.raises(FileProblems):
            services.load_requirements(db, "category_id,code,type\n1604,color,text\n4242,size,text\n")
        assert db.scalar(select(CategoryAttribute).where(CategoryAttribute.code == "color")).type == "text"


@pytest.fixture
def shop(app, factory):
    load_taxonomy(app)
    merchant = factory.merchant(slug="shop")
    import_file(app, merchant.id, csv_bytes(CATALOG))
    return merchant


def _rows(app, merchant_id) -> dict[str, MerchantCategory]:
    with app.app_context():
        rows = get_session().scalars(select(MerchantCategory).where(MerchantCategory.merchant_id == merchant_id))
        return {row.path: row for row in rows}


def test_an_applied_upload_lists_the_merchants_categories_with_suggestions(app, shop):
    rows = _rows(app, shop.id)
    assert {path: row.products for path, row in rows.items()} == {
        "Одежда > Футболки": 2, "Техника для кухни / Чайники": 1, "Смартфоны": 1}
    shirts = rows["Одежда > Футболки"]
    assert shirts.status == "suggested" and shirts.sample_titles[0].startswith("Футболка")
    assert [s["category_id"] for s in shirts.suggestions][:1] == [212]
    assert rows["Техника для кухни / Чайники"].suggestions[0]["category_id"] == 751
    assert rows["Смартфоны"].suggestions[0]["category_id"] == 267
    assert all(0 < s["confidence"] <= 0.99 for row in rows.values() for s in row.suggestions)


def test_confirm_reject_and_bulk_confirm(app, shop):
    principal = Principal(role="merchant_admin", merchant_id=shop.id)
    with app.app_context():
        db = get_session()
        rows = {row.path: row for row in db.scalars(select(MerchantCategory))}
        kettles = rows["Техника для кухни / Чайники"]
        services.reject(db, kettles, principal)
        assert kettles.status == "rejected" and 751 in kettles.rejected_ids
        assert 751 not in [s["category_id"] for s in kettles.suggestions]
        services.confirm(db, kettles, 736, principal)
        assert (kettles.status, kettles.category_id) == ("confirmed", 736)
        with pytest.raises(MappingError) as caught:
            services.confirm(db, kettles, 424242, principal)
        assert caught.value.code == "unknown_category"
        done = services.bulk_confirm(db, principal, shop.id, 0.01)
        assert done == 2
        assert {row.status for row in db.scalars(select(MerchantCategory))} == {"confirmed"}


def test_bulk_confirm_leaves_suggestions_below_the_confidence(app, shop):
    principal = Principal(role="merchant_admin", merchant_id=shop.id)
    with app.app_context():
        db = get_session()
        assert services.bulk_confirm(db, principal, shop.id, 0.999) == 0
        with pytest.raises(MappingError):
            services.bulk_confirm(db, principal, shop.id, 0)


def test_a_locked_mapping_is_the_category_managers_to_change(app, shop, factory):
    manager = factory.user("category_manager")
    staff = Principal(role="category_manager", merchant_id=None, user_id=manager.id)
    merchant = Principal(role="merchant_admin", merchant_id=shop.id)
    with app.app_context():
        db = get_session()
        row = db.scalar(select(MerchantCategory).where(MerchantCategory.path == "Смартфоны"))
        services.confirm(db, row, 267, staff)
        services.set_lock(db, row, True, staff)
        with pytest.raises(MappingLocked):
            services.confirm(db, row, 4745, merchant)
        with pytest.raises(MappingLocked):
            services.set_lock(db, row, False, merchant)
        assert (row.category_id, row.locked) == (267, True)
        services.confirm(db, row, 4745, staff)  # the manager may still change it
        assert row.category_id == 4745


def test_other_merchants_confirmed_mappings_become_suggestions(app, shop, factory):
    principal = Principal(role="merchant_admin", merchant_id=shop.id)
    with app.app_context():
        db = get_session()
        row = db.scalar(select(MerchantCategory).where(MerchantCategory.path == "Техника для кухни / Чайники"))
        services.confirm(db, row, 736, principal)  # an unusual choice only this merchant made
    other = factory.merchant(slug="other")
    import_file(app, other.id, csv_bytes([["sku", "title", "price", "category"],
                                          ["X-1", "Прибор", "100", "Техника для кухни/Чайники"]]))
    suggestion = _rows(app, other.id)["Техника для кухни/Чайники"].suggestions
    assert 736 in [s["category_id"] for s in suggestion]
    assert next(s for s in suggestion if s["category_id"] == 736)["source"] in ("confirmed", "both")


def test_suggest_merchant_lists_every_category_for_the_command_line(app, shop):
    with app.app_context():
        result = services.suggest_merchant(get_session(), shop.id)
    assert [item["merchant_category"] for item in result][0] == "Одежда > Футболки"
    assert set(result[0]) == {"merchant_category", "status", "products", "category_id", "suggestions"}
    assert set(result[0]["suggestions"][0]) == {"category_id", "path", "confidence"}


def test_readiness_follows_mapping_requirements_and_uploads(app, factory):
    load_taxonomy(app, requirements=REQUIREMENTS)
    merchant = factory.merchant(slug="wear")
    principal = Principal(role="merchant_admin", merchant_id=merchant.id)
    header = ["sku", "title", "price", "category", "Цвет", "Размер"]
    import_file(app, merchant.id, csv_bytes([header, ["S-1", "Футболка", "990", "Футболки", "Black", "M"],
                                             ["S-2", "Футболка", "990", "Футболки", "", "L"]]))
    with app.app_context():
        db = get_session()

        def states():
            db.expire_all()
            return {p.sku: (p.readiness, p.missing, p.filled_required, p.required_count)
                    for p in db.scalars(select(Product).where(Product.merchant_id == merchant.id))}

        assert states() == {"S-1": ("unmapped", [], 0, 0), "S-2": ("unmapped", [], 0, 0)}
        row = db.scalar(select(MerchantCategory).where(MerchantCategory.merchant_id == merchant.id))
        services.confirm(db, row, 212, principal)  # Shirts & Tops inherits colour and size from Clothing
        assert states() == {"S-1": ("ready", [], 2, 2), "S-2": ("incomplete", ["color"], 1, 2)}
        services.load_requirements(db, "category_id,code,name_en,name_ru,type,unit,required,allowed_values\n"
                                       "212,fit,Fit,Посадка,text,,yes,\n")
        assert states()["S-1"] == ("incomplete", ["fit"], 2, 3)
    import_file(app, merchant.id, csv_bytes([header + ["Посадка"], ["S-1", "Футболка", "990", "Футболки", "black", "M", "oversize"]]))
    with app.app_context():
        db = get_session()
        assert db.scalar(select(Product).where(Product.sku == "S-1")).readiness == "ready"


def test_an_upload_stays_applied_when_the_mapping_refresh_after_it_fails(app, factory, monkeypatch):
    from portal.category_mapping import services as mapping_services

    def broken(db, merchant_id):
        raise RuntimeError("suggestion index unavailable")

    monkeypatch.setattr(mapping_services, "catalog_changed", broken)
    merchant = factory.merchant(slug="steady")
    result = import_file(app, merchant.id, csv_bytes(CATALOG))
    assert (result["status"], result["created"]) == ("applied", 4)
