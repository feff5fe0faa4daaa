"""What people do in the portal, end to end in a real browser, on the demo marketplace."""
from __future__ import annotations

import csv
import io
import json
import re
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from portal.db import get_session
from portal.demo import DEMO_PASSWORD
from portal.kpi.services import rollup
from tests.support.factories import PASSWORD
from tests.support.kpi import History, days, hours

pytestmark = pytest.mark.e2e

MERCHANT_ADMIN = "admin@technomir.example"
MERCHANT_STAFF = "staff@technomir.example"
OPERATOR = "operator@marketplace.example"
CYRILLIC = re.compile(r"[А-Яа-яЁё]")
OPERATOR_NAV = ["Home", "Merchants", "Products", "Uploads", "Categories", "Orders", "Shipments", "Requests", "Weak spots",
                "Taxonomy", "Merchant performance", "PIM export", "Carriers", "KPI thresholds", "Users", "API tokens",
                "Audit log"]


def sign_in(page: Page, email: str, password: str = DEMO_PASSWORD) -> None:
    page.goto("/login")
    form = page.locator("#login-form")
    form.locator("input[name=email]").fill(email)
    form.locator("input[name=password]").fill(password)
    form.locator("button[type=submit]").click()


def signed_in_as(page: Page, email: str) -> None:
    expect(page.locator("#whoami")).to_contain_text(email)


def switch_language(page: Page, lang: str) -> None:
    page.locator(f"#language-switch button[name=lang][value={lang}]").click()
    expect(page.locator("html")).to_have_attribute("lang", lang)


def on_sign_in_page(page: Page) -> None:
    expect(page).to_have_url(re.compile(r"/login(\?.*)?$"))
    expect(page.locator("#login-form")).to_be_visible()


def test_merchant_admin_language_choice_is_remembered_across_reloads_and_sign_ins(page: Page, ru) -> None:
    sign_in(page, MERCHANT_ADMIN)
    signed_in_as(page, MERCHANT_ADMIN)
    expect(page.locator("h1")).to_have_text("ТехноМир Электроника")
    expect(page.locator("html")).to_have_attribute("lang", "en")
    expect(page.locator("#logout")).to_have_text("Sign out")

    switch_language(page, "ru")
    assert CYRILLIC.search(ru("Sign out"))
    expect(page.locator("#logout")).to_have_text(ru("Sign out"))
    expect(page.locator("a.nav-link", has_text=ru("Users"))).to_be_visible()
    expect(page.locator("h1")).to_have_text("ТехноМир Электроника")

    page.reload()
    expect(page.locator("html")).to_have_attribute("lang", "ru")
    expect(page.locator("#logout")).to_have_text(ru("Sign out"))

    page.locator("#logout").click()
    on_sign_in_page(page)

    # A fresh start (no cookies, the browser asks for English): only the user's own setting can bring Russian back.
    page.context.clear_cookies()
    page.goto("/login")
    expect(page.locator("html")).to_have_attribute("lang", "en")
    sign_in(page, MERCHANT_ADMIN)
    signed_in_as(page, MERCHANT_ADMIN)
    expect(page.locator("html")).to_have_attribute("lang", "ru")
    expect(page.locator("#logout")).to_have_text(ru("Sign out"))
    expect(page.locator("a.nav-link", has_text=ru("Home"))).to_be_visible()


def test_operator_navigates_merchants_switches_language_and_signs_out(page: Page, ru) -> None:
    sign_in(page, OPERATOR)
    signed_in_as(page, OPERATOR)
    nav = page.locator("a.nav-link")
    expect(nav).to_have_text(OPERATOR_NAV)

    nav.filter(has_text="Merchants").click()
    expect(page).to_have_url(re.compile(r"/admin/merchants"))
    table = page.locator("#merchants-table")
    expect(table).to_contain_text("ТехноМир Электроника")
    expect(table).to_contain_text("Уютный Дом")

    switch_language(page, "ru")
    expect(page).to_have_url(re.compile(r"/admin/merchants"))
    expect(nav).to_have_text([ru(label) for label in OPERATOR_NAV])
    expect(page.locator("h1")).to_have_text(ru("Merchants"))

    switch_language(page, "en")
    expect(nav).to_have_text(OPERATOR_NAV)
    expect(page.locator("h1")).to_have_text("Merchants")

    page.locator("#logout").click()
    on_sign_in_page(page)
    expect(page.locator(".alert")).to_contain_text("You have signed out.")
    expect(page.locator("#whoami")).to_have_count(0)


def test_wrong_password_shows_the_error_and_stays_on_the_sign_in_page(page: Page) -> None:
    sign_in(page, MERCHANT_ADMIN, password="not-the-password")
    expect(page.locator(".alert-danger")).to_contain_text("Wrong e-mail or password.")
    on_sign_in_page(page)
    expect(page.locator("#whoami")).to_have_count(0)
    expect(page.locator("#logout")).to_have_count(0)


def test_operator_exports_the_audit_log_as_csv_with_live_progress(page: Page) -> None:
    sign_in(page, OPERATOR)
    signed_in_as(page, OPERATOR)
    page.locator("a.nav-link", has_text="Audit log").click()
    expect(page).to_have_url(re.compile(r"/audit"))

    page.get_by_role("button", name="Export to CSV").click()
    expect(page).to_have_url(re.compile(r"/jobs/[^/]+$"))
    # A marker on this very document: it survives only if the page is never reloaded.
    page.evaluate("window.__e2eSamePage = true")

    page.wait_for_selector(".job-progress[data-status=succeeded]", timeout=30000)
    download_link = page.locator("#job-download")
    expect(download_link).to_be_visible()
    assert page.evaluate("window.__e2eSamePage === true"), "the job page reloaded instead of updating itself"

    with page.expect_download() as download_info:
        download_link.click()
    download = download_info.value
    assert download.suggested_filename.endswith(".csv")
    content = Path(download.path()).read_text(encoding="utf-8")
    first_line = content.removeprefix("\ufeff").splitlines()[0]
    assert first_line.startswith("id,at,action")


def test_operator_exports_to_the_pim_and_downloads_the_manifest(page: Page) -> None:
    sign_in(page, OPERATOR)
    signed_in_as(page, OPERATOR)
    page.locator("a.nav-link", has_text="PIM export").click()
    expect(page).to_have_url(re.compile(r"/pim/runs$"))
    ready = int(page.locator("#ready-count").inner_text())
    assert ready > 0, "the demo marketplace has ready products"

    page.locator("#start-full").click()
    expect(page.locator(".alert-success")).to_contain_text("export has started")
    for _ in range(60):  # the run is a background job: look again until it is listed as done
        if page.locator("#runs .badge", has_text="succeeded").count():
            break
        page.wait_for_timeout(500)
        page.reload()
    row = page.locator("#runs tbody tr").first
    expect(row).to_contain_text("succeeded")
    expect(row).to_contain_text(str(ready))

    row.locator("a").first.click()
    expect(page.locator("#run-files")).to_contain_text("part-00000.jsonl.gz")
    with page.expect_download() as download_info:
        page.locator("#download-manifest").click()
    manifest = json.loads(Path(download_info.value.path()).read_text(encoding="utf-8"))
    assert manifest["kind"] == "full" and manifest["records"] == ready


def test_merchant_staff_sees_no_admin_links_and_gets_the_friendly_403_page(page: Page) -> None:
    sign_in(page, MERCHANT_STAFF)
    signed_in_as(page, MERCHANT_STAFF)
    nav = page.locator("a.nav-link")
    expect(nav).to_have_text(["Home", "Products", "Uploads", "Categories", "Attributes", "Requests", "Orders", "Shipments",
                              "Performance"])
    expect(nav.filter(has_text="Users")).to_have_count(0)
    expect(nav.filter(has_text="API tokens")).to_have_count(0)

    response = page.goto("/users")
    assert response is not None and response.status == 403
    expect(page.locator(".error-page")).to_contain_text("403")
    expect(page.locator(".error-page h1")).to_have_text("You do not have access to this page.")
    expect(page.get_by_role("link", name="Go to the home page")).to_be_visible()
    signed_in_as(page, MERCHANT_STAFF)


SAMPLES = Path(__file__).resolve().parents[2] / "docs" / "samples"


def test_merchant_uploads_a_messy_file_previews_applies_and_downloads_the_rejected_rows(page: Page) -> None:
    sign_in(page, MERCHANT_ADMIN)
    signed_in_as(page, MERCHANT_ADMIN)
    page.locator("a.nav-link", has_text="Uploads").click()
    page.locator("#upload-form input[type=file]").set_input_files(str(SAMPLES / "catalog-messy-cp1251.csv"))
    page.locator("#upload-form button[type=submit]").click()

    expect(page).to_have_url(re.compile(r"/catalog/uploads/\d+/mapping$"))
    expect(page.locator("#mapping-form")).to_contain_text("Артикул")
    expect(page.locator("select[aria-label='Артикул']")).to_have_value("sku")
    page.get_by_role("button", name="Preview the changes").click()

    expect(page).to_have_url(re.compile(r"/catalog/uploads/\d+$"))
    expect(page.locator("#upload-counts [data-count=rejected]")).to_have_text("8", timeout=30000)
    expect(page.get_by_text("preview: nothing has been changed yet")).to_be_visible()
    page.get_by_role("button", name="Apply these changes").click()

    expect(page.locator(".upload-status")).to_have_text("applied", timeout=30000)
    expect(page.locator("#issues-table")).to_contain_text("sku_duplicate")
    with page.expect_download() as download_info:
        page.locator("#error-report").click()
    report = Path(download_info.value.path()).read_bytes().decode("cp1251")
    header, *rows = list(csv.reader(io.StringIO(report), delimiter=";"))
    assert header[:3] == ["Артикул", "Наименование", "Цена"] and header[-1] == "Error"
    assert len(rows) == 8

    page.locator("a.nav-link", has_text="Products").click()
    expect(page.locator("#products-table tbody tr").first).to_be_visible()
    page.locator("#product-filters input[name=q]").fill("00121")
    page.locator("#product-filters button[type=submit]").click()
    expect(page.locator("#products-table")).to_contain_text("00121")


CATEGORY_MANAGER = "cm@marketplace.example"


def test_merchant_confirms_categories_fills_a_request_and_the_category_manager_sees_the_weak_spot(page: Page) -> None:
    sign_in(page, MERCHANT_ADMIN)
    page.locator("a.nav-link", has_text="Categories").click()
    table = page.locator("#mapping-table")
    expect(table).to_contain_text("Электроника > Умные часы")
    expect(table).to_contain_text("Распродажа")
    page.locator("#bulk-confirm input[name=min_confidence]").fill("1")
    page.locator("#bulk-confirm button[type=submit]").click()
    expect(page.locator(".alert-success")).to_contain_text("confirmed")
    expect(page.locator("#mapping-counts")).to_contain_text("unmapped: 1")

    # The clearance section has no suggestion: the merchant finds its category in the picker.
    table.get_by_role("link", name="Распродажа").click()
    page.locator("#picker input[name=q]").fill("наушники")
    page.locator("#picker button[type=submit]").click()
    page.locator("#picker-results tr", has_text="Headphones").first.get_by_role("button", name="Choose").click()
    expect(page.locator("#mapped-to")).to_contain_text("Headphones")

    page.locator("a.nav-link", has_text="Requests").click()
    page.locator("#requests-table tr", has_text="Mobile Phones").locator("a").first.click()
    form = page.locator("#fill-form")
    first = form.locator("tbody tr").first
    sku = first.locator("td").first.inner_text()
    for select in first.locator("select").all():
        select.select_option(index=1)
    for field in first.locator("input.form-control").all():
        field.fill("6")
    form.get_by_role("button", name="Save").click()
    expect(page.locator(".alert-success")).to_contain_text("1 products updated.")

    page.locator("a.nav-link", has_text="Products").click()
    page.locator("#product-filters input[name=q]").fill(sku)
    page.locator("#product-filters button[type=submit]").click()
    page.locator("#products-table a", has_text=sku).click()
    expect(page.locator("#product-readiness")).not_to_contain_text("Missing")

    page.locator("#logout").click()
    sign_in(page, CATEGORY_MANAGER)
    page.locator("a.nav-link", has_text="Weak spots").click()
    spots = page.locator("#weak-spots")
    expect(spots).to_contain_text("Electronics")
    spots.locator("a", has_text="Mobile Phones").first.click()
    expect(page.locator("#weak-spots")).to_contain_text("ТехноМир")


def _post_orders(app, slug: str, count: int) -> list[str]:
    """Orders as the marketplace posts them, for products of the merchant with stock to spare."""
    from decimal import Decimal

    from sqlalchemy import select

    from portal.catalog.models import Product
    from portal.db import get_session
    from portal.orders.services import create_order
    from portal.tenancy import Principal

    numbers = []
    with app.app_context():
        db = get_session()
        from portal.accounts.models import Merchant

        merchant = db.scalar(select(Merchant).where(Merchant.slug == slug))
        product = db.scalar(select(Product).where(Product.merchant_id == merchant.id, Product.status == "active",
                                                  Product.stock - Product.reserved >= count).order_by(Product.id))
        for n in range(count):
            number = f"E2E-{n + 1}"
            create_order(db, {"order_number": number, "merchant": slug, "shipping_address": {
                "name": "Ирина Волкова", "phone": "+7 900 000-00-01", "country": "RU", "city": "Самара",
                "postal_code": "443001", "line1": "ул. Ленинградская, 5"},
                "lines": [{"sku": product.sku, "quantity": 1, "unit_price": Decimal("990.00")}],
                "created_at": None, "acceptance_deadline": None, "ship_by": None},
                principal=Principal(role="operator_admin", merchant_id=None))
            numbers.append(number)
    return numbers


def test_merchant_accepts_refuses_cancels_and_ships_orders_in_the_browser(page: Page, app) -> None:
    numbers = _post_orders(app, "technomir", 4)
    sign_in(page, MERCHANT_ADMIN)
    signed_in_as(page, MERCHANT_ADMIN)
    page.locator("a.nav-link", has_text="Orders").click()
    expect(page).to_have_url(re.compile(r"/orders$"))

    page.locator("#order-filters input[name=q]").fill("E2E-")
    page.locator("#order-filters button[type=submit]").click()
    expect(page.locator("#orders-table tbody tr")).to_have_count(4)
    for number in numbers[:3]:
        page.locator(f"tr[data-order='{number}'] input.order-tick").check()
    page.locator("#bulk-form button[value=accept]").click()
    expect(page.locator(".alert-success")).to_contain_text("3 orders accepted")
    expect(page.locator(f"tr[data-order='{numbers[0]}']")).to_contain_text("accepted")

    page.locator(f"tr[data-order='{numbers[3]}'] a").click()
    expect(page.locator("#order-status")).to_have_text("awaiting acceptance")
    expect(page.locator("#order-address")).to_contain_text("Ирина Волкова")
    page.locator("#action-refuse textarea[name=reason]").fill("Товар повреждён")
    page.locator("#action-refuse button").click()
    expect(page.locator("#order-status")).to_have_text("refused")
    expect(page.locator("#order-history")).to_contain_text("Товар повреждён")

    page.goto("/orders?q=" + numbers[0])
    page.locator(f"tr[data-order='{numbers[0]}'] a").click()
    page.locator("#action-cancel textarea[name=reason]").fill("Нет на складе")
    page.locator("#action-cancel button").click()
    expect(page.locator("#order-status")).to_have_text("cancelled")

    page.goto("/orders?q=" + numbers[1])
    page.locator(f"tr[data-order='{numbers[1]}'] a").click()
    page.locator("#action-ship select[name=carrier]").select_option("cdek")
    expect(page.locator("#tracking-formats")).to_contain_text("СДЭК")
    page.locator("#action-ship input[name=tracking_number]").fill("1234567890")
    page.locator("#action-ship button").click()
    expect(page.locator("#order-status")).to_have_text("shipped")
    expect(page.locator("#order-carrier")).to_have_text("СДЭК")
    expect(page.locator("#tracking-link")).to_have_attribute("href",
                                                             "https://www.cdek.ru/ru/tracking?order_id=1234567890")
    history = page.locator("#order-history li")
    expect(history).to_have_count(3)
    expect(history.nth(2)).to_contain_text("1234567890")
    expect(history.nth(1)).to_contain_text(MERCHANT_ADMIN)


def test_merchant_builds_a_shipment_from_accepted_orders_prints_labels_and_the_act_hands_it_over_and_sees_the_orders_shipped(
        page: Page, app) -> None:
    numbers = _post_orders(app, "technomir", 2)
    sign_in(page, MERCHANT_ADMIN)
    signed_in_as(page, MERCHANT_ADMIN)
    page.locator("a.nav-link", has_text="Orders").click()
    page.locator("#order-filters input[name=q]").fill("E2E-")
    page.locator("#order-filters button[type=submit]").click()
    for number in numbers:
        page.locator(f"tr[data-order='{number}'] input.order-tick").check()
    page.locator("#bulk-form button[value=accept]").click()
    expect(page.locator(".alert-success")).to_contain_text("2 orders accepted")

    # The same ticks, now of accepted orders, go in a shipment for СДЭК on its next pickup day.
    for number in numbers:
        page.locator(f"tr[data-order='{number}'] input.order-tick").check()
    page.locator("#shipment-carrier").select_option("cdek")
    page.locator("#create-shipment-button").click()
    expect(page).to_have_url(re.compile(r"/shipments/\d+$"))
    expect(page.locator(".alert-success")).to_contain_text("created with 2 orders")
    expect(page.locator("#shipment-status")).to_have_text("draft")
    expect(page.locator("#shipment-orders tbody tr")).to_have_count(2)
    expect(page.locator("#shipment-problems")).to_contain_text("has no weight")

    packages = page.locator("#packages .package")
    expect(packages).to_have_count(2)
    tracking_of = {}
    for n, tracking in enumerate(("1234567890", "1234567891")):
        tracking_of[packages.nth(n).locator(".package-order").inner_text()] = tracking
        form = packages.nth(n).locator("form.package-form")
        form.locator("input[name=weight_grams]").fill("1250")
        form.locator("input[name=length_mm]").fill("300")
        form.locator("input[name=width_mm]").fill("200")
        form.locator("input[name=height_mm]").fill("100")
        form.locator("input[name=tracking_number]").fill(tracking)
        form.get_by_role("button", name="Save").click()
        expect(page.locator(".alert-success")).to_contain_text("was saved")
        expect(packages.nth(n).locator(".tracking-link")).to_have_text(tracking)
    expect(page.locator("#shipment-problems")).to_have_count(0)
    expect(packages.first).to_contain_text("1.25 kg")

    for name in ("labels", "handover-act"):
        with page.expect_download() as download_info:
            page.locator(f"#document-{name}").click()
        download = download_info.value
        assert download.suggested_filename.endswith(f"-{name}.pdf")
        assert Path(download.path()).read_bytes().startswith(b"%PDF")

    page.locator("#action-ready button").click()
    expect(page.locator("#shipment-status")).to_have_text("ready for pickup")
    expect(page.locator("#packages form.package-form")).to_have_count(0)
    page.once("dialog", lambda dialog: dialog.accept())  # "Hand the shipment over to the carrier?"
    page.locator("#action-handover button").click()
    expect(page.locator("#shipment-status")).to_have_text("handed over")
    expect(page.locator("#shipment-history")).to_contain_text("Handed over to the carrier")
    expect(page.locator("#shipment-history")).to_contain_text(MERCHANT_ADMIN)

    page.locator("#shipment-orders a", has_text=numbers[0]).click()
    expect(page.locator("#order-status")).to_have_text("shipped")
    expect(page.locator("#order-carrier")).to_have_text("СДЭК")
    expect(page.locator("#tracking-link")).to_have_text(tracking_of[numbers[0]])


def test_merchant_opens_kpi_performance_sees_the_trend_charts_and_the_early_warning(page: Page, app, factory) -> None:
    now = datetime.now(timezone.utc)
    merchant = factory.merchant(name="Чайная лавка")
    user = factory.user("merchant_admin", merchant)
    history = History(app, merchant.id)
    # One late of 40 handed over (2.5 %, green); three at risk now would make it 4 of 43.
    for i in range(40):
        history.shipped(now - days(1 + i % 20), late=(i == 0))
    for h in (-1, 3, 5):
        history.order(created=now - days(2), accepted=now - days(2), ship_by=now + hours(h), status="accepted")
    with app.app_context():
        rollup(get_session(), days=40, now=now)

    sign_in(page, user.email, PASSWORD)
    signed_in_as(page, user.email)
    expect(page.locator("#account-health")).to_contain_text("Shipping these 3 at-risk orders late")
    page.locator("a.nav-link", has_text="Performance").click()
    expect(page).to_have_url(re.compile(r"/kpi/$"))
    expect(page.locator("#kpi-warnings")).to_contain_text(
        "Shipping these 3 at-risk orders late would take your late shipment rate to 9.3 %.")
    expect(page.locator("#kpi-late_shipment_rate .kpi-value")).to_have_text("2.5 %")
    canvases = page.locator("canvas[data-kpi-chart]")
    expect(canvases).to_have_count(10)  # nine health metrics and the sales
    expect(page.locator('canvas[data-rendered="1"]')).to_have_count(10)

    page.locator('#kpi-period-choices a[data-period="7"]').click()
    expect(page).to_have_url(re.compile(r"/kpi/\?days=7$"))
    expect(page.locator('#kpi-period-choices a[data-period="7"]')).to_have_class(re.compile(r"\bactive\b"))
    expect(page.locator('canvas[data-rendered="1"]')).to_have_count(10)

    # A period the wrong way round is refused with the reason, and the standard windows shown.
    today = now.date()
    page.locator("#kpi-date-from").fill((today - timedelta(days=1)).isoformat())
    page.locator("#kpi-date-to").fill((today - timedelta(days=5)).isoformat())
    page.locator("#kpi-custom-period button[type=submit]").click()
    expect(page.locator("#kpi-period-errors")).to_contain_text("is after the last day")
    expect(page.locator('#kpi-period-choices a[data-period="standard"]')).to_have_class(re.compile(r"\bactive\b"))

    page.locator("#kpi-warnings a").first.click()
    expect(page.locator("#order-status")).to_have_text("accepted")
