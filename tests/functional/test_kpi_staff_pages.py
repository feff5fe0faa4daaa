"""Staff's KPI pages: the ranking of merchants (filters, sorting, CSV) and the operators' thresholds."""
from __future__ import annotations

import csv
import io
import re
from datetime import datetime, timezone

import pytest
from sqlalchemy import select

from portal.audit import AuditEvent
from portal.category_mapping.models import ManagedCategory
from portal.db import get_session
from portal.kpi.forms import THRESHOLD_METRICS
from portal.kpi.models import KpiThreshold
from portal.kpi.queries import thresholds
from tests.support.kpi import History, days, hours
from tests.support.mapping import load_taxonomy

ROW_RE = re.compile(r'<tr data-merchant-id="(\d+)">(.*?)</tr>', re.S)
CELL_RE = re.compile(r'<td class="text-end text-nowrap" data-metric="(\w+)">\s*(.*?)\s*</td>', re.S)
BADGE_RE = re.compile(r'data-status="(\w+)">([^<]*)</span>')


@pytest.fixture
def now():
    return datetime.now(timezone.utc)


@pytest.fixture
def shops(app, factory, now):
    """Alpha red (late shipments), Bravo green, Delta amber (slow acceptance), Чарли без данных."""
    alpha = History(app, factory.merchant(slug="alpha", name="Alpha Trade").id)
    alpha.shipped(now - days(2), late=True)
    alpha.shipped(now - days(3), tracking="NOT-A-NUMBER")
    alpha.shipped(now - days(20), late=True)  # in the 30-day window, not in the last 7 days
    bravo = History(app, factory.merchant(slug="bravo", name="Bravo Goods").id)
    for n in range(4):  # accepted within 5 hours, handed over on time 25 hours later
        at = now - days(1 + n)
        bravo.order(created=at - hours(30), accepted=at - hours(25), shipped=at, ship_by=at + hours(1), status="shipped")
    delta = History(app, factory.merchant(slug="delta", name="Delta Home").id)
    delta.order(created=now - days(2), accepted=now - days(2) + hours(14), status="accepted")
    charlie = factory.merchant(slug="charlie", name="Чарли Дом")
    return {"alpha": alpha.merchant_id, "bravo": bravo.merchant_id, "delta": delta.merchant_id,
            "charlie": charlie.id, "histories": {"alpha": alpha, "bravo": bravo, "delta": delta}}


@pytest.fixture
def operator(factory, auth):
    user = factory.user("operator_admin")
    auth.login(user.email)
    return user


def ranking_rows(html: str) -> list[tuple[int, dict[str, tuple[str, str]]]]:
    """Each listed merchant with its cells: metric → (status, text shown); "no_data" and "—" for no value."""
    rows = []
    for merchant_id, body in ROW_RE.findall(html):
        cells = {}
        for metric, content in CELL_RE.findall(body):
            badge = BADGE_RE.search(content)
            cells[metric] = (badge.group(1), badge.group(2)) if badge else ("no_data", "—")
        rows.append((int(merchant_id), cells))
    return rows


def listed(client, **args) -> list[int]:
    response = client.get("/kpi/ranking", query_string=args)
    assert response.status_code == 200
    return [merchant_id for merchant_id, _ in ranking_rows(response.get_data(as_text=True))]


def test_ranking_shows_every_merchants_health_metrics_worst_first(shops, operator, auth):
    response = auth.client.get("/kpi/ranking")
    page = response.get_data(as_text=True)
    rows = ranking_rows(page)
    assert [merchant_id for merchant_id, _ in rows] == [shops["alpha"], shops["delta"], shops["bravo"], shops["charlie"]]
    cells = dict(rows)
    assert cells[shops["alpha"]]["late_shipment_rate"] == ("red", "66.7 %")
    assert cells[shops["alpha"]]["acceptance_time"] == ("green", "10.0 h")
    assert cells[shops["alpha"]]["handling_time"] == ("green", "20.0 h")
    assert cells[shops["alpha"]]["valid_tracking_rate"] == ("red", "66.7 %")
    assert cells[shops["bravo"]]["late_shipment_rate"] == ("green", "0.0 %")
    assert cells[shops["bravo"]]["acceptance_time"] == ("green", "5.0 h")
    assert cells[shops["delta"]]["acceptance_time"] == ("amber", "14.0 h")
    assert cells[shops["charlie"]]["late_shipment_rate"] == ("no_data", "—")
    assert list(cells[shops["alpha"]]) == ["late_shipment_rate", "cancellation_rate", "valid_tracking_rate",
                                          "acceptance_time", "handling_time", "catalog_completeness", "share_ready",
                                          "overdue_fill_in_requests", "upload_rejection_rate"]
    # Each name opens the merchant's own KPI page; the formula is the column's tooltip.
    assert f'href="/kpi/merchants/{shops["alpha"]}"' in page
    assert 'title="orders handed to the carrier after their ship-by time / orders handed to the carrier"' in page
    assert "Content-Security-Policy" in response.headers and "<script>" not in page.split("</main>")[0]


def test_summary_counts_merchants_red_amber_and_green_per_metric(shops, operator, auth):
    page = auth.client.get("/kpi/ranking").get_data(as_text=True)
    summary = re.search(r'<tr class="table-light small" id="ranking-metric-summary">(.*?)</tr>', page, re.S).group(1)
    late = re.search(r'data-metric="late_shipment_rate"[^>]*>(.*?)</td>', summary, re.S).group(1)
    counts = dict(re.findall(r'data-count="(\w+)">(\d+)<', late))
    assert counts == {"red": "1", "amber": "0", "green": "1"}  # Alpha red, Bravo green, the others without data
    acceptance = re.search(r'data-metric="acceptance_time"[^>]*>(.*?)</td>', summary, re.S).group(1)
    assert dict(re.findall(r'data-count="(\w+)">(\d+)<', acceptance)) == {"red": "0", "amber": "1", "green": "2"}
    overall = re.search(r'<p id="ranking-summary">(.*?)</p>', page, re.S).group(1)
    assert "4 merchants listed" in overall
    # The merchant with nothing counted but zero overdue requests is not "all green": it has no data.
    assert "1 with a red metric" in overall and "1 amber at worst" in overall and "1 all green" in overall


def test_ranking_sorts_by_any_metric_both_ways_with_merchants_without_data_last(shops, operator, auth):
    alpha, bravo, delta, charlie = shops["alpha"], shops["bravo"], shops["delta"], shops["charlie"]
    # Lower is better: the highest late shipment rate first by default, merchants without shipments last.
    assert listed(auth.client, sort="late_shipment_rate") == [alpha, bravo, delta, charlie]
    assert listed(auth.client, sort="late_shipment_rate", dir="asc") == [bravo, alpha, delta, charlie]
    assert listed(auth.client, sort="acceptance_time") == [delta, alpha, bravo, charlie]
    assert listed(auth.client, sort="acceptance_time", dir="asc") == [bravo, alpha, delta, charlie]
    # Higher is better: the lowest valid tracking rate first by default.
    assert listed(auth.client, sort="valid_tracking_rate") == [alpha, bravo, delta, charlie]
    assert listed(auth.client, sort="valid_tracking_rate", dir="desc") == [bravo, alpha, delta, charlie]
    # An unknown column falls back to the worst merchants first.
    assert listed(auth.client, sort="password")[0] == alpha
    page = auth.client.get("/kpi/ranking", query_string={"sort": "late_shipment_rate"}).get_data(as_text=True)
    assert "/kpi/ranking?sort=late_shipment_rate&amp;dir=asc" in page  # the next click turns the order round


def test_ranking_filters_by_status_name_and_period(shops, operator, auth):
    alpha, bravo, delta, charlie = shops["alpha"], shops["bravo"], shops["delta"], shops["charlie"]
    assert listed(auth.client, status="red") == [alpha]
    assert listed(auth.client, status="amber") == [alpha, delta]
    assert listed(auth.client, status="nonsense") == [alpha, delta, bravo, charlie]
    assert listed(auth.client, q="bravo") == [bravo]
    assert listed(auth.client, q="ЧАРЛИ") == [charlie]  # Cyrillic, in any case
    assert listed(auth.client, q="no such shop") == []
    assert listed(auth.client, q="a", status="red") == [alpha]
    # The last 7 days: Alpha's late order of 20 days ago is out.
    week = dict(ranking_rows(auth.client.get("/kpi/ranking", query_string={"days": 7}).get_data(as_text=True)))
    assert week[alpha]["late_shipment_rate"] == ("red", "50.0 %")
    assert dict(ranking_rows(auth.client.get("/kpi/ranking?days=90").get_data(as_text=True)))[alpha][
        "late_shipment_rate"] == ("red", "66.7 %")
    # A period the page does not offer is the standard windows; the drill-down link keeps the period.
    assert dict(ranking_rows(auth.client.get("/kpi/ranking?days=3").get_data(as_text=True)))[alpha][
        "late_shipment_rate"] == ("red", "66.7 %")
    assert f'href="/kpi/merchants/{alpha}?days=7"' in auth.client.get("/kpi/ranking?days=7").get_data(as_text=True)


def test_category_manager_narrows_the_ranking_to_merchants_selling_in_their_categories(shops, app, factory, auth):
    load_taxonomy(app)
    histories = shops["histories"]
    histories["bravo"].product("KETTLE-1", marketplace_category_id=751)  # under Kitchen & Dining
    histories["alpha"].product("SHIRT-1", marketplace_category_id=212)  # another manager's
    histories["delta"].product("KETTLE-OLD", marketplace_category_id=751, status="inactive")  # not on sale
    manager = factory.user("category_manager")
    with app.app_context():
        db = get_session()
        db.add(ManagedCategory(user_id=manager.id, category_id=638))
        db.commit()
    auth.login(manager.email)
    assert listed(auth.client) == [shops["alpha"], shops["delta"], shops["bravo"], shops["charlie"]]
    assert listed(auth.client, mine=1) == [shops["bravo"]]
    assert listed(auth.client, mine=1, status="red") == []
    page = auth.client.get("/kpi/ranking").get_data(as_text=True)
    assert "My categories only" in page
    csv_rows = list(csv.reader(io.StringIO(auth.client.get("/kpi/ranking.csv?mine=1").data.decode("utf-8-sig"))))
    assert [row[0] for row in csv_rows[1:]] == [str(shops["bravo"])]


def test_operators_rank_every_merchant_without_a_my_categories_filter(shops, operator, auth):
    page = auth.client.get("/kpi/ranking").get_data(as_text=True)
    assert "My categories only" not in page
    assert len(listed(auth.client, mine=1)) == 4


@pytest.mark.parametrize("role", ["merchant_admin", "merchant_staff"])
def test_merchant_users_are_refused_every_staff_kpi_route(role, factory, auth, app):
    user = factory.user(role)
    auth.login(user.email)
    for path in ("/kpi/ranking", "/kpi/ranking.csv", "/kpi/ranking?sort=late_shipment_rate", "/kpi/thresholds"):
        assert auth.client.get(path).status_code == 403, path
    response = auth.post("/kpi/thresholds", {"late_shipment_rate_warning": "50", "late_shipment_rate_threshold": "60"})
    assert response.status_code == 403
    with app.app_context():
        assert get_session().scalars(select(KpiThreshold)).all() == []


def test_anonymous_visitors_are_sent_to_sign_in(client):
    for path in ("/kpi/ranking", "/kpi/ranking.csv", "/kpi/thresholds"):
        response = client.get(path)
        assert response.status_code == 302 and "/login" in response.headers["Location"], path


def test_ranking_downloads_as_csv_with_the_same_filters(shops, operator, auth):
    response = auth.client.get("/kpi/ranking.csv", query_string={"sort": "late_shipment_rate"})
    assert response.status_code == 200
    assert response.mimetype == "text/csv"
    assert response.headers["Content-Disposition"] == "attachment; filename=merchant-performance.csv"
    assert response.data.startswith(b"\xef\xbb\xbf")
    rows = list(csv.reader(io.StringIO(response.data.decode("utf-8-sig"))))
    assert rows[0] == [
        "Merchant ID", "Slug", "Merchant", "Overall status",
        "Late shipment rate (fraction)", "Late shipment rate: status",
        "Merchant cancellation rate (fraction)", "Merchant cancellation rate: status",
        "Valid tracking rate (fraction)", "Valid tracking rate: status",
        "Acceptance time (hours)", "Acceptance time: status",
        "Handling time (hours)", "Handling time: status",
        "Catalog completeness (fraction)", "Catalog completeness: status",
        "Products ready for sale (fraction)", "Products ready for sale: status",
        "Overdue fill-in requests", "Overdue fill-in requests: status",
        "Upload rejection rate (fraction)", "Upload rejection rate: status"]
    assert [row[0] for row in rows[1:]] == [str(shops[k]) for k in ("alpha", "bravo", "delta", "charlie")]
    assert rows[1] == [str(shops["alpha"]), "alpha", "Alpha Trade", "Below target",
                       "0.666667", "Below target", "0.0", "Good", "0.666667", "Below target", "10.0", "Good", "20.0", "Good",
                       "", "No data", "1.0", "Good", "0", "Good", "", "No data"]
    assert rows[4][:6] == [str(shops["charlie"]), "charlie", "Чарли Дом", "No data", "", "No data"]
    week = auth.client.get("/kpi/ranking.csv?days=7&status=red")
    assert week.headers["Content-Disposition"] == "attachment; filename=merchant-performance-7d.csv"
    week_rows = list(csv.reader(io.StringIO(week.data.decode("utf-8-sig"))))
    assert [row[:5] for row in week_rows[1:]] == [[str(shops["alpha"]), "alpha", "Alpha Trade", "Below target", "0.5"]]
    page = auth.client.get("/kpi/ranking?days=7&status=red").get_data(as_text=True)
    assert 'href="/kpi/ranking.csv?days=7&amp;status=red"' in page


def test_csv_neutralises_a_merchant_name_a_spreadsheet_would_run(factory, operator, auth):
    factory.merchant(slug="evil", name='=HYPERLINK("http://evil.example","click")')
    factory.merchant(slug="plus", name="+7 Shop")
    factory.merchant(slug="at", name="@SUM(A1)")
    rows = list(csv.reader(io.StringIO(auth.client.get("/kpi/ranking.csv").data.decode("utf-8-sig"))))
    names = {row[1]: row[2] for row in rows[1:]}
    assert names["evil"] == '\'=HYPERLINK("http://evil.example","click")'
    assert names["plus"] == "'+7 Shop" and names["at"] == "'@SUM(A1)"


# --- thresholds -------------------------------------------------------------------------------------------------

def _as_typed(metric, value) -> str:
    if value is None:
        return ""
    return f"{value * 100:g}" if metric.unit == "rate" else f"{value:g}"


def defaults_form(**changes: str) -> dict[str, str]:
    """Every field as the page fills it with the defaults, then ``changes``."""
    data = {}
    for metric in THRESHOLD_METRICS:
        data[f"{metric.key}_warning"] = _as_typed(metric, metric.warning)
        data[f"{metric.key}_threshold"] = _as_typed(metric, metric.threshold)
    return data | changes


def stored(app) -> dict[str, tuple]:
    with app.app_context():
        return {t.metric: (t.warning, t.threshold) for t in get_session().scalars(select(KpiThreshold))}


def test_thresholds_page_shows_each_metric_in_its_unit_with_formula_direction_and_default(operator, auth):
    page = auth.client.get("/kpi/thresholds").get_data(as_text=True)
    assert 'name="late_shipment_rate_warning" type="text" value="3"' in page
    assert 'name="cancellation_rate_warning" type="text" value="1.5"' in page
    assert 'name="handling_time_threshold" type="text" value="48"' in page
    assert 'name="overdue_fill_in_requests_threshold" type="text" value="5"' in page
    assert "amber 3.0 %, red 4.0 %" in page and "amber 36.0 h, red 48.0 h" in page
    assert "orders handed to the carrier with a tracking number in their carrier" in page
    assert "higher (amber and red at the line or below)" in page
    for key in ("orders", "revenue", "open_fill_in_requests"):
        assert f'name="{key}_warning"' not in page
    assert 'name="save"' in page and 'name="restore"' in page


def test_saved_thresholds_change_the_statuses_in_the_ranking_and_are_audited(shops, operator, auth, app):
    response = auth.post("/kpi/thresholds", defaults_form(late_shipment_rate_warning="60",
                                                          late_shipment_rate_threshold="70,5"), csrf_page="/kpi/thresholds")
    assert response.status_code == 302
    assert stored(app) == {"late_shipment_rate": (0.6, 0.705)}
    assert "Thresholds of 1 metric saved." in auth.client.get("/kpi/thresholds").get_data(as_text=True)
    cells = dict(ranking_rows(auth.client.get("/kpi/ranking").get_data(as_text=True)))
    assert cells[shops["alpha"]]["late_shipment_rate"] == ("amber", "66.7 %")
    page = auth.client.get("/kpi/ranking").get_data(as_text=True)
    summary = re.search(r'id="ranking-metric-summary">.*?data-metric="late_shipment_rate"[^>]*>(.*?)</td>', page, re.S)
    assert dict(re.findall(r'data-count="(\w+)">(\d+)<', summary.group(1))) == {"red": "0", "amber": "1", "green": "1"}
    with app.app_context():
        event = get_session().scalar(select(AuditEvent).where(AuditEvent.action == "kpi.thresholds_changed"))
        assert event.actor_user_id == operator.id
        assert event.details == {"metric": "late_shipment_rate", "before": [0.03, 0.04], "after": [0.6, 0.705]}
    page = auth.client.get("/kpi/thresholds").get_data(as_text=True)
    assert 'name="late_shipment_rate_threshold" type="text" value="70.5"' in page
    # Emptying both lines shows the metric for information only.
    auth.post("/kpi/thresholds", defaults_form(late_shipment_rate_warning="", late_shipment_rate_threshold=""),
              csrf_page="/kpi/thresholds")
    assert stored(app)["late_shipment_rate"] == (None, None)
    cells = dict(ranking_rows(auth.client.get("/kpi/ranking").get_data(as_text=True)))
    assert cells[shops["alpha"]]["late_shipment_rate"] == ("none", "66.7 %")


@pytest.mark.parametrize("changes, message", [
    ({"late_shipment_rate_warning": "abc"}, "Late shipment rate: the amber line must be a number, not “abc”."),
    ({"late_shipment_rate_threshold": "150"}, "Late shipment rate: the red line must be between 0 and 100 %."),
    ({"handling_time_threshold": "-1"}, "Handling time: the red line must be between 0 and 100000."),
    ({"late_shipment_rate_warning": "5", "late_shipment_rate_threshold": "4"},
     "Late shipment rate: the amber line must not be above the red line."),
    ({"valid_tracking_rate_warning": "90", "valid_tracking_rate_threshold": "95"},
     "Valid tracking rate: the amber line must not be below the red line."),
    ({"overdue_fill_in_requests_warning": "3", "overdue_fill_in_requests_threshold": ""},
     "Overdue fill-in requests: an amber line needs a red line."),
])
def test_a_wrong_threshold_is_refused_naming_the_metric_and_nothing_is_saved(changes, message, operator, auth, app):
    # A good change beside the bad one is not saved either.
    response = auth.post("/kpi/thresholds", defaults_form(cancellation_rate_warning="1", **changes),
                         csrf_page="/kpi/thresholds")
    page = response.get_data(as_text=True)
    assert response.status_code == 200
    assert message in page
    assert "Nothing was saved" in page
    assert stored(app) == {}
    with app.app_context():
        assert get_session().scalars(select(AuditEvent).where(AuditEvent.action == "kpi.thresholds_changed")).all() == []
    # What was typed is given back to be corrected.
    assert 'value="1"' in page


def test_every_mistake_is_shown_at_once(operator, auth, app):
    page = auth.post("/kpi/thresholds", defaults_form(late_shipment_rate_warning="x", share_ready_warning="50",
                                                      share_ready_threshold="60"),
                     csrf_page="/kpi/thresholds").get_data(as_text=True)
    assert "Late shipment rate: the amber line must be a number" in page
    assert "Products ready for sale: the amber line must not be below the red line." in page
    assert stored(app) == {}


def test_restore_defaults_puts_every_line_back(shops, operator, auth, app):
    auth.post("/kpi/thresholds", defaults_form(late_shipment_rate_warning="60", late_shipment_rate_threshold="70",
                                               handling_time_warning="5", handling_time_threshold="10"), csrf_page="/kpi/thresholds")
    assert dict(ranking_rows(auth.client.get("/kpi/ranking").get_data(as_text=True)))[shops["bravo"]][
        "handling_time"][0] == "red"
    response = auth.post("/kpi/thresholds", {"restore": "Restore defaults"}, csrf_page="/kpi/thresholds")
    assert response.status_code == 302
    with app.app_context():
        assert thresholds(get_session()) == {m.key: (m.warning, m.threshold) for m in THRESHOLD_METRICS} | {
            "open_fill_in_requests": (None, None), "orders": (None, None), "units": (None, None),
            "revenue": (None, None)}
    assert stored(app) == {}  # the operators' rows are gone: later defaults apply too
    assert "The default thresholds are back." in auth.client.get("/kpi/thresholds").get_data(as_text=True)
    cells = dict(ranking_rows(auth.client.get("/kpi/ranking").get_data(as_text=True)))
    assert cells[shops["alpha"]]["late_shipment_rate"] == ("red", "66.7 %")
    assert cells[shops["bravo"]]["handling_time"][0] == "green"


def test_a_metric_whose_fields_were_not_sent_keeps_its_lines(operator, auth, app):
    response = auth.post("/kpi/thresholds", {"handling_time_warning": "30", "handling_time_threshold": "40"},
                         csrf_page="/kpi/thresholds")
    assert response.status_code == 302
    assert stored(app) == {"handling_time": (30.0, 40.0)}


def test_staff_pages_render_in_russian(shops, operator, auth):
    auth.post("/language", {"lang": "ru", "next": "/"})
    for path in ("/kpi/ranking", "/kpi/thresholds", "/kpi/ranking?days=30&sort=share_ready"):
        response = auth.client.get(path)
        assert response.status_code == 200 and '<html lang="ru">' in response.get_data(as_text=True), path
    assert auth.client.get("/kpi/ranking.csv").status_code == 200


def test_category_managers_read_the_thresholds_but_cannot_change_them(factory, auth, app):
    manager = factory.user("category_manager")
    auth.login(manager.email)
    page = auth.client.get("/kpi/thresholds").get_data(as_text=True)
    assert "Only operators change the thresholds." in page
    inputs = re.findall(r'<input [^>]*name="\w+_(?:warning|threshold)"[^>]*>', page)
    assert len(inputs) == 2 * len(THRESHOLD_METRICS) and all(" disabled " in tag for tag in inputs)
    assert 'name="save"' not in page and 'name="restore"' not in page
    for data in (defaults_form(late_shipment_rate_warning="10", late_shipment_rate_threshold="20"),
                 {"restore": "Restore defaults"}):
        assert auth.post("/kpi/thresholds", data, csrf_page="/kpi/thresholds").status_code == 403
    assert stored(app) == {}


def test_thresholds_form_without_csrf_is_refused(operator, auth, app):
    response = auth.client.post("/kpi/thresholds", data=defaults_form(late_shipment_rate_threshold="50"))
    assert response.status_code == 400
    assert stored(app) == {}
