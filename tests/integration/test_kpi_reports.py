"""KPI reports (orders, KPI by day, catalog) as CSV and XLSX: built by pandas in a job, read back with pandas,
formulas kept as text, one merchant's data only."""
from __future__ import annotations

import io
import zipfile
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal

import fastexcel
import pandas as pd
import pytest
from sqlalchemy import func, select

from portal.category_mapping.models import FillInRequest
from portal.db import get_session
from portal.jobs.models import Job
from portal.jobs.services import get_runner
from portal.kpi.services import rollup
from portal.orders.models import Order
from tests.support.kpi import History, days, hours

XLSX_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


@dataclass
class Shop:
    merchant_id: int
    slug: str
    admin_email: str
    numbers: dict[str, str]
    now: datetime


def _number(app, order_id: int) -> str:
    with app.app_context():
        return get_session().get(Order, order_id).order_number


def shop_a(app, factory) -> Shop:
    """Orders of the last week in known states, one older; products whose titles a spreadsheet would run."""
    merchant = factory.merchant(slug="shop-a")
    admin = factory.user("merchant_admin", merchant)
    history = History(app, merchant.id)
    now = datetime.now(timezone.utc)
    history.product("A-FORMULA", title="=1+2", readiness="incomplete", marketplace_category_id=1, required_count=4,
                    filled_required=2, missing=["volume_l", "colour"])
    history.product("B-AT", title="@SUM(A1)", status="inactive", readiness="inactive")
    history.product("C-PLAIN", title="Чайник", marketplace_category_id=1, required_count=2, filled_required=2)
    late = history.order(created=now - days(5), accepted=now - days(5) + hours(3), ship_by=now - days(3) - hours(2),
                         shipped=now - days(3), status="shipped", carrier="cdek", tracking="-1",
                         lines=[("C-PLAIN", 2, "125.50")])
    on_time = history.order(created=now - days(4), accepted=now - days(4) + hours(1), ship_by=now - days(1),
                            shipped=now - days(2), delivered=now - days(1), status="delivered", carrier="cdek",
                            tracking="1234567890", lines=[("C-PLAIN", 1, "99.90")])
    waiting = history.order(created=now - days(1), status="awaiting_acceptance", lines=[("C-PLAIN", 3, "10.00")])
    old = history.order(created=now - days(40), accepted=now - days(40), shipped=now - days(39), status="delivered",
                        lines=[("C-PLAIN", 1, "100.00")])
    with app.app_context():
        db = get_session()
        db.add_all([FillInRequest(merchant_id=merchant.id, product_id=history.products["A-FORMULA"], status="open"),
                    FillInRequest(merchant_id=merchant.id, product_id=history.products["A-FORMULA"], status="open"),
                    FillInRequest(merchant_id=merchant.id, product_id=history.products["A-FORMULA"], status="closed"),
                    FillInRequest(merchant_id=merchant.id, product_id=history.products["C-PLAIN"], status="closed")])
        db.commit()
    numbers = {name: _number(app, order_id) for name, order_id in
               (("late", late), ("on_time", on_time), ("waiting", waiting), ("old", old))}
    return Shop(merchant.id, merchant.slug, admin.email, numbers, now)


def shop_b(app, factory) -> Shop:
    merchant = factory.merchant(slug="shop-b")
    admin = factory.user("merchant_admin", merchant)
    history = History(app, merchant.id)
    now = datetime.now(timezone.utc)
    history.product("B-ONLY", title="Только у B")
    order = history.shipped(now - days(2), lines=[("B-ONLY", 1, "7.00")])
    return Shop(merchant.id, merchant.slug, admin.email, {"b": _number(app, order)}, now)


@pytest.fixture
def a(app, factory) -> Shop:
    return shop_a(app, factory)


def request_report(auth, app, **form) -> tuple[bytes, str, str]:
    """POST the report form as the page's buttons do; wait for the job; download from the job's page."""
    response = auth.post("/kpi/reports", form)
    assert response.status_code == 302, response.get_data(as_text=True)
    assert "/jobs/" in response.headers["Location"], response.headers["Location"]
    job_id = response.headers["Location"].rstrip("/").rsplit("/", 1)[-1]
    get_runner(app).wait(timeout=30)
    page = auth.client.get(f"/jobs/{job_id}").get_data(as_text=True)
    assert f"/jobs/{job_id}/download" in page
    download = auth.client.get(f"/jobs/{job_id}/download")
    assert download.status_code == 200, job_id
    return download.data, download.headers["Content-Disposition"], download.mimetype


def read(data: bytes, fmt: str) -> pd.DataFrame:
    """The file as text cells, as a person opening it would see them (empty cells as "")."""
    if fmt == "csv":
        assert data.startswith(b"\xef\xbb\xbf")  # UTF-8 with a BOM, as spreadsheet programs expect
        return pd.read_csv(io.BytesIO(data), encoding="utf-8-sig", dtype=str, keep_default_na=False)
    return fastexcel.read_excel(data).load_sheet(0).to_pandas()


def typed(data: bytes, fmt: str) -> pd.DataFrame:
    """The file with the types pandas infers: numbers must come back as numbers."""
    if fmt == "csv":
        return pd.read_csv(io.BytesIO(data), encoding="utf-8-sig")
    return fastexcel.read_excel(data).load_sheet(0).to_pandas()


def sheet_xml(data: bytes) -> tuple[str, str]:
    with zipfile.ZipFile(io.BytesIO(data)) as book:
        return book.read("xl/worksheets/sheet1.xml").decode(), book.read("xl/sharedStrings.xml").decode()


def as_text(value) -> str:
    """An XLSX cell as text for comparison ("" for empty)."""
    if value is None or pd.isna(value):
        return ""
    return str(value)


def day_label(value) -> str:
    """A day cell (a date in XLSX, text in CSV) as YYYY-MM-DD; other text as it is."""
    text = as_text(value)
    return text[:10] if text[:4].isdigit() else text


def _minute(value: datetime) -> str:
    return value.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M")


# -- orders --------------------------------------------------------------------------------------------------------

ORDER_COLUMNS = ["Order number", "Status", "Created", "Accepted", "Ship by", "Handed over", "Delivered",
                 "Hours to accept", "Hours to hand over", "Late at handover", "Carrier", "Tracking number",
                 "Tracking number valid", "Units", "Total"]


def test_orders_report_as_csv_holds_each_order_of_the_period_with_formulas_neutralised(app, factory, auth, a):
    shop_b(app, factory)
    auth.login(a.admin_email)
    data, disposition, mimetype = request_report(auth, app, kind="orders", format="csv", days="30")
    first, last = (a.now - days(30)).date(), a.now.date()
    assert f'filename="kpi-orders-shop-a-{first}-{last}.csv"' in disposition and mimetype == "text/csv"
    frame = read(data, "csv")
    assert list(frame.columns) == ORDER_COLUMNS
    rows = {row["Order number"]: row for row in frame.to_dict("records")}
    # The one 40 days old is outside the period; shop B's is not in A's report.
    assert list(rows) == [a.numbers["late"], a.numbers["on_time"], a.numbers["waiting"]]
    late = rows[a.numbers["late"]]
    assert late == {
        "Order number": a.numbers["late"], "Status": "shipped", "Created": _minute(a.now - days(5)),
        "Accepted": _minute(a.now - days(5) + hours(3)), "Ship by": _minute(a.now - days(3) - hours(2)),
        "Handed over": _minute(a.now - days(3)), "Delivered": "", "Hours to accept": "3.0",
        "Hours to hand over": "45.0", "Late at handover": "yes", "Carrier": "cdek",
        # "-1" would be a formula to a spreadsheet: kept as text.
        "Tracking number": "'-1", "Tracking number valid": "no", "Units": "2", "Total": "251.00"}
    on_time = rows[a.numbers["on_time"]]
    assert (on_time["Late at handover"], on_time["Tracking number valid"], on_time["Tracking number"]) == (
        "no", "yes", "1234567890")
    assert (on_time["Delivered"], on_time["Hours to hand over"], on_time["Total"]) == (
        _minute(a.now - days(1)), "47.0", "99.90")
    waiting = rows[a.numbers["waiting"]]
    assert (waiting["Status"], waiting["Accepted"], waiting["Hours to accept"], waiting["Late at handover"],
            waiting["Tracking number valid"], waiting["Units"], waiting["Total"]) == (
        "awaiting acceptance", "", "", "", "", "3", "30.00")
    numbers = typed(data, "csv")
    assert numbers["Units"].tolist() == [2, 1, 3] and numbers["Total"].tolist() == [251.0, 99.9, 30.0]
    assert "Анна" not in data.decode("utf-8-sig") and "Казань" not in data.decode("utf-8-sig")  # no buyer data


def test_orders_report_as_xlsx_keeps_numbers_as_numbers_and_text_as_text(app, auth, a):
    auth.login(a.admin_email)
    data, disposition, mimetype = request_report(auth, app, kind="orders", format="xlsx", days="7")
    assert disposition.endswith('.xlsx"') and mimetype == XLSX_TYPE
    frame = read(data, "xlsx")
    assert list(frame.columns) == ORDER_COLUMNS
    rows = {row["Order number"]: row for row in frame.to_dict("records")}
    assert list(rows) == [a.numbers["late"], a.numbers["on_time"], a.numbers["waiting"]]
    late = rows[a.numbers["late"]]
    assert late["Tracking number"] == "'-1" and late["Late at handover"] == "yes"
    assert late["Units"] == 2 and late["Total"] == pytest.approx(251.0) and late["Hours to accept"] == pytest.approx(3)
    # Times are spreadsheet date-times, in UTC.
    assert late["Handed over"].to_pydatetime().replace(second=0, microsecond=0) == (
        a.now - days(3)).replace(tzinfo=None, second=0, microsecond=0)
    assert as_text(rows[a.numbers["waiting"]]["Accepted"]) == ""
    sheet, strings = sheet_xml(data)
    assert "<f>" not in sheet  # not a formula anywhere
    assert "<t>'-1</t>" in strings


# -- KPI by day ----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["csv", "xlsx"])
def test_kpi_report_holds_each_day_of_the_period_and_the_whole_periods_figures(app, auth, a, fmt):
    with app.app_context():
        rollup(get_session(), days=10)
    auth.login(a.admin_email)
    data, disposition, _ = request_report(auth, app, kind="kpi", format=fmt, days="7")
    assert f"kpi-kpi-shop-a-{(a.now - days(7)).date()}-{a.now.date()}.{fmt}" in disposition
    frame = read(data, fmt)
    assert list(frame.columns) == ["Day", "Late shipment rate", "Merchant cancellation rate", "Valid tracking rate",
                                   "Acceptance time", "Handling time", "Catalog completeness",
                                   "Products ready for sale", "Open fill-in requests", "Overdue fill-in requests",
                                   "Upload rejection rate", "Orders", "Units", "Revenue"]
    # Every day the last 7 days touch (today and the one 7 days back are partial), then the whole period.
    today = a.now.date()
    day_labels = [(today - timedelta(days=n)).isoformat() for n in range(7, -1, -1)]
    assert [day_label(v) for v in frame["Day"]] == [*day_labels, "Whole period"]
    values = typed(data, fmt)
    by_day = {day_label(day): row for day, row in zip(frame["Day"], values.to_dict("records"))}
    created_late = by_day[(a.now - days(5)).date().isoformat()]
    assert (created_late["Orders"], created_late["Units"]) == (1, 2)
    assert created_late["Revenue"] == pytest.approx(251.0)
    last_day = by_day[today.isoformat()]
    # Trailing 30 days up to today: one of the two handed over was late, one tracking number is in format.
    assert last_day["Late shipment rate"] == pytest.approx(0.5)
    assert last_day["Valid tracking rate"] == pytest.approx(0.5)
    # The catalog snapshot the rollup took today: 4 of 6 required attributes, 1 ready of 2 active products.
    assert last_day["Catalog completeness"] == pytest.approx(4 / 6)
    assert last_day["Products ready for sale"] == pytest.approx(0.5)
    assert last_day["Open fill-in requests"] == 2
    assert pd.isna(by_day[(today - timedelta(days=7)).isoformat()]["Late shipment rate"])
    whole = values.to_dict("records")[-1]
    assert whole["Late shipment rate"] == pytest.approx(0.5)
    assert whole["Merchant cancellation rate"] == pytest.approx(0.0)
    assert whole["Acceptance time"] == pytest.approx(2.8)  # p90 of 1 h and 3 h
    assert (whole["Orders"], whole["Units"]) == (3, 6)
    assert whole["Revenue"] == pytest.approx(380.9)
    assert pd.isna(whole["Upload rejection rate"])
    if fmt == "csv":
        assert frame.iloc[-1]["Revenue"] == "380.90" and frame.iloc[-1]["Late shipment rate"] == "0.5"
    else:
        sheet, _ = sheet_xml(data)
        assert "<f>" not in sheet


def test_kpi_report_without_a_period_is_the_pages_standard_view(app, auth, a):
    """The last 90 days by day, and each metric over its own window (cancellations: 7 days)."""
    auth.login(a.admin_email)
    data, disposition, _ = request_report(auth, app, kind="kpi", format="csv")
    today = datetime.now(timezone.utc).date()
    assert f"kpi-kpi-shop-a-{today - timedelta(days=89)}-{today}.csv" in disposition
    frame = read(data, "csv")
    assert len(frame) == 91 and frame["Day"].iloc[-1] == "Each metric's own window"
    assert frame["Day"].iloc[0] == (today - timedelta(days=89)).isoformat()
    whole = typed(data, "csv").iloc[-1]
    assert whole["Orders"] == 3 and whole["Late shipment rate"] == pytest.approx(0.5)


# -- catalog -------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["csv", "xlsx"])
def test_catalog_report_holds_each_product_with_its_readiness_and_titles_kept_as_text(app, factory, auth, a, fmt):
    shop_b(app, factory)
    auth.login(a.admin_email)
    data, disposition, _ = request_report(auth, app, kind="catalog", format=fmt)
    assert f"kpi-catalog-shop-a-{datetime.now(timezone.utc).date()}.{fmt}" in disposition
    frame = read(data, fmt)
    assert list(frame.columns) == ["SKU", "Title", "Status", "Readiness", "Completeness",
                                   "Missing required attributes", "Open fill-in requests"]
    rows = [[as_text(v) for v in row] for row in frame.itertuples(index=False)]
    # The text columns (the numbers are checked as numbers below).
    assert [row[:4] + row[5:6] for row in rows] == [
        ["A-FORMULA", "'=1+2", "active", "incomplete", "volume_l, colour"],
        ["B-AT", "'@SUM(A1)", "inactive", "inactive", ""],
        ["C-PLAIN", "Чайник", "active", "ready", ""],
    ]
    values = typed(data, fmt)
    assert values["Completeness"].iloc[0] == pytest.approx(0.5)
    assert pd.isna(values["Completeness"].iloc[1]) and values["Completeness"].iloc[2] == pytest.approx(1.0)
    assert values["Open fill-in requests"].tolist() == [2, 0, 0]
    if fmt == "xlsx":
        sheet, strings = sheet_xml(data)
        assert "<f>" not in sheet
        assert "<t>'=1+2</t>" in strings and "<t>'@SUM(A1)</t>" in strings


def test_headers_and_labels_follow_the_requesters_language(app, auth, a):
    with app.app_context():
        from portal.accounts.models import User

        db = get_session()
        db.scalar(select(User).where(User.email == a.admin_email)).locale = "ru"
        db.commit()
    auth.login(a.admin_email)
    frame = read(request_report(auth, app, kind="orders", format="csv", days="30")[0], "csv")
    assert {"Номер заказа", "Статус", "Трек-номер"} <= set(frame.columns)
    assert frame.iloc[0]["Номер заказа"] == a.numbers["late"]
    assert frame.iloc[0]["Статус"] != "shipped"  # the state's Russian label


# -- who gets what -------------------------------------------------------------------------------------------------


def test_a_merchant_naming_another_merchant_gets_its_own_data(app, factory, auth, a):
    b = shop_b(app, factory)
    auth.login(b.admin_email)
    orders = read(request_report(auth, app, kind="orders", format="csv", days="30", merchant=str(a.merchant_id))[0],
                  "csv")
    assert orders["Order number"].tolist() == [b.numbers["b"]]
    catalog = read(request_report(auth, app, kind="catalog", format="xlsx", merchant=str(a.merchant_id))[0], "xlsx")
    assert catalog["SKU"].tolist() == ["B-ONLY"]
    with app.app_context():
        jobs = get_session().scalars(select(Job).where(Job.kind == "kpi.report")).all()
        assert {job.merchant_id for job in jobs} == {b.merchant_id}
    # The report B asked for is B's to download: A's admin gets 404 on its job.
    auth.logout()
    auth.login(a.admin_email)
    assert all(auth.client.get(f"/jobs/{job.id}/download").status_code == 404 for job in jobs)


def test_staff_name_the_merchant_of_the_report(app, factory, auth, a):
    shop_b(app, factory)
    auth.login(factory.user("category_manager").email)
    data, disposition, _ = request_report(auth, app, kind="catalog", format="csv", merchant=str(a.merchant_id))
    assert "kpi-catalog-shop-a-" in disposition
    assert read(data, "csv")["SKU"].tolist() == ["A-FORMULA", "B-AT", "C-PLAIN"]


def test_category_managers_who_see_no_orders_get_no_orders_report(app, factory, auth, a):
    auth.login(factory.user("category_manager").email)
    response = auth.post("/kpi/reports", {"kind": "orders", "format": "csv", "merchant": str(a.merchant_id)})
    assert response.status_code == 403
    assert _jobs(app) == 0
    page = auth.client.get(f"/kpi/merchants/{a.merchant_id}").get_data(as_text=True)
    assert 'id="kpi-report-kpi"' in page and 'id="kpi-report-orders"' not in page


@pytest.mark.parametrize("first, last, field", [
    ("0001-01-01", "0001-01-02", "First day"), ("9999-12-30", "9999-12-31", "First day"),
    ("2026-01-01", "9999-12-31", "Last day")])
def test_days_before_2000_or_after_today_are_refused(app, auth, a, first, last, field):
    auth.login(a.admin_email)
    auth.post("/kpi/reports", {"kind": "kpi", "format": "csv", "date_from": first, "date_to": last})
    page = auth.client.get("/").get_data(as_text=True)
    assert f"{field} (" in page and "must lie between 2000-01-01 and today" in page
    assert _jobs(app) == 0


def _jobs(app) -> int:
    with app.app_context():
        return get_session().scalar(select(func.count(Job.id)).where(Job.kind == "kpi.report"))


@pytest.mark.parametrize("form, message", [
    ({"kind": "invoices", "format": "csv"}, "Report: choose the orders, KPI or catalog report."),
    ({"kind": "orders", "format": "pdf"}, "Format: choose CSV or XLSX."),
    ({"kind": "orders"}, "Format: choose CSV or XLSX."),
    ({"kind": "orders", "format": "csv", "days": "5"}, "Period: choose 7, 30 or 90 days."),
    ({"kind": "orders", "format": "csv", "days": "x"}, "Period: Not a valid integer value."),
    ({"kind": "orders", "format": "csv", "date_from": "2026-02-30", "date_to": "2026-03-01"},
     "First day: Not a valid date value."),
    ({"kind": "orders", "format": "csv", "date_from": "2026-03-02", "date_to": "2026-03-01"},
     "First day (2026-03-02) is after Last day (2026-03-01)."),
    ({"kind": "orders", "format": "csv", "date_from": "2026-03-02"}, "Last day is missing"),
    ({"kind": "orders", "format": "csv", "date_from": "2024-01-01", "date_to": "2025-01-01"}, "at most 366"),
    ({"kind": "orders", "format": "csv", "days": "7", "date_from": "2026-03-01", "date_to": "2026-03-02"},
     "Give either Period or First day and Last day, not both."),
])
def test_bad_input_is_flashed_naming_the_field_and_starts_no_job(app, auth, a, form, message):
    auth.login(a.admin_email)
    response = auth.post("/kpi/reports", form, headers={"Referer": "http://portal.test/kpi/?days=30"})
    assert response.status_code == 302 and response.headers["Location"] == "/kpi/?days=30"
    page = auth.client.get("/").get_data(as_text=True)
    assert message in page.replace("&#34;", '"').replace("&#39;", "'")
    assert _jobs(app) == 0


def test_staff_without_a_merchant_or_with_an_unknown_one_are_told_and_get_no_job(app, factory, auth, a):
    auth.login(factory.user("operator_admin").email)
    auth.post("/kpi/reports", {"kind": "orders", "format": "csv"})
    assert "Merchant: choose the merchant the report is about." in auth.client.get("/").get_data(as_text=True)
    auth.post("/kpi/reports", {"kind": "orders", "format": "csv", "merchant": "999999"})
    assert "Merchant: there is no merchant 999999." in auth.client.get("/").get_data(as_text=True)
    auth.post("/kpi/reports", {"kind": "orders", "format": "csv", "merchant": "99999999999999999999"})
    assert "Merchant: there is no merchant 99999999999999999999." in auth.client.get("/").get_data(as_text=True)
    assert _jobs(app) == 0


def test_the_report_form_needs_its_csrf_token_and_a_signed_in_user(app, client, auth, a):
    assert client.post("/kpi/reports", data={"kind": "orders", "format": "csv"}).status_code == 400
    auth.login(a.admin_email)
    assert auth.client.post("/kpi/reports", data={"kind": "orders", "format": "csv"}).status_code == 400
    assert _jobs(app) == 0


def test_the_reports_card_posts_each_kind_in_both_formats_for_the_pages_period(app, auth, a):
    from flask import render_template_string

    with app.test_request_context("/kpi/"):
        html = render_template_string('{% include "kpi/_reports.html" %}',
                                      period_args={"date_from": "2026-03-01", "date_to": "2026-03-31", "merchant": 7})
    for kind in ("orders", "kpi", "catalog"):
        form = html.split(f'id="kpi-report-{kind}"', 1)[1].split("</form>", 1)[0]
        assert f'name="kind" value="{kind}"' in form and 'name="csrf_token"' in form
        assert 'name="format" value="csv"' in form and 'name="format" value="xlsx"' in form
        for name, value in (("date_from", "2026-03-01"), ("date_to", "2026-03-31"), ("merchant", "7")):
            assert f'name="{name}" value="{value}"' in form
    assert html.count('action="/kpi/reports"') == 3


def test_money_keeps_its_cents_in_csv(app, auth, a):
    auth.login(a.admin_email)
    frame = read(request_report(auth, app, kind="orders", format="csv", date_from=(a.now - days(6)).date().isoformat(),
                                date_to=a.now.date().isoformat())[0], "csv")
    assert [Decimal(v) for v in frame["Total"]] == [Decimal("251.00"), Decimal("99.90"), Decimal("30.00")]
    assert date.fromisoformat(frame["Created"].iloc[0][:10]) == (a.now - days(5)).date()
