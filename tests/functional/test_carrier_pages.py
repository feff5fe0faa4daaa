"""The operators' carrier pages: the list, adding and editing with every value checked, the default set; no one else."""
from __future__ import annotations

import html
import re
from typing import Any

import pytest
from sqlalchemy import func, select

from portal.audit import AuditEvent
from portal.db import get_session
from portal.shipping.carriers import DEFAULT_CARRIERS, carrier_by_code
from portal.shipping.models import Carrier
from tests.support.orders import bearer, carriers, post_order, shop

FIELDS = ("code", "name", "tracking_patterns", "tracking_url", "pickup_days", "cutoff_time", "timezone",
          "max_weight_grams", "is_active")
DELLIN = {"code": "dellin", "name": "Деловые Линии", "tracking_patterns": "\\d{2}-\\d{8}\r\nDL\\d{9}",
          "tracking_url": "https://www.dellin.ru/tracker/?id={tracking}", "pickup_days": ["0", "2", "4"],
          "cutoff_time": "15:30", "timezone": "Asia/Yekaterinburg", "max_weight_grams": "80000", "is_active": "y"}
CDEK = {key: value for key, value in DELLIN.items() if key != "code"}


def _text(response) -> str:
    return html.unescape(response.get_data(as_text=True))


def _stored(app, code: str) -> dict[str, Any] | None:
    with app.app_context():
        carrier = carrier_by_code(get_session(), code)
        return {name: getattr(carrier, name) for name in FIELDS} if carrier else None


def _count(app, model, *where) -> int:
    with app.app_context():
        return get_session().scalar(select(func.count()).select_from(model).where(*where))


def _audit(app, action: str) -> list[AuditEvent]:
    with app.app_context():
        return list(get_session().scalars(select(AuditEvent).where(AuditEvent.action == action)
                                          .order_by(AuditEvent.id)))


def _id(app, code: str) -> int:
    with app.app_context():
        return carrier_by_code(get_session(), code).id


@pytest.fixture
def operator(factory, auth):
    user = factory.user("operator_admin")
    auth.login(user.email)
    return user


def test_the_operator_lists_the_carriers_with_their_settings(app, operator, auth):
    carriers(app)
    response = auth.client.get("/admin/carriers")
    assert response.status_code == 200
    page = _text(response)
    row = re.search(r'<tr data-carrier="cdek">(.*?)</tr>', page, re.S).group(1)
    for text in ("СДЭК", "<code>cdek</code>", '<code class="d-block">\\d{10}</code>',
                 "https://www.cdek.ru/ru/tracking?order_id={tracking}", "Mon, Tue, Wed, Thu, Fri", "16:00",
                 "Europe/Moscow", ">30<", "active"):
        assert text in row, text
    assert sorted(re.findall(r'<tr data-carrier="(\w+)"', page)) == sorted(c["code"] for c in DEFAULT_CARRIERS)
    assert 'action="/admin/carriers/load-defaults"' in page and 'name="csrf_token"' in page


def test_an_empty_list_says_how_to_fill_it(app, operator, auth):
    assert "No carriers yet: load the default carriers or add one." in _text(auth.client.get("/admin/carriers"))


def test_the_operator_adds_a_carrier_and_merchants_ship_with_it(app, client, factory, operator, auth):
    assert auth.client.get("/admin/carriers/new").status_code == 200
    response = auth.post("/admin/carriers/new", DELLIN, csrf_page="/admin/carriers/new")
    assert response.status_code == 302 and response.headers["Location"].endswith("/admin/carriers")
    assert "Carrier Деловые Линии (dellin) added." in _text(auth.client.get("/admin/carriers"))
    assert _stored(app, "dellin") == {
        "code": "dellin", "name": "Деловые Линии", "tracking_patterns": [r"\d{2}-\d{8}", r"DL\d{9}"],
        "tracking_url": "https://www.dellin.ru/tracker/?id={tracking}", "pickup_days": [0, 2, 4],
        "cutoff_time": "15:30", "timezone": "Asia/Yekaterinburg", "max_weight_grams": 80_000, "is_active": True}
    (event,) = _audit(app, "carrier.created")
    assert (event.actor_user_id, event.target_type, event.details["code"]) == (operator.id, "Carrier", "dellin")

    a = shop(app, factory)
    order_id = post_order(client, a).get_json()["id"]
    client.post(f"/api/v1/orders/{order_id}/accept", headers=bearer(a.merchant_secret))
    wrong = client.post(f"/api/v1/orders/{order_id}/ship", json={"carrier": "dellin", "tracking_number": "123"},
                        headers=bearer(a.merchant_secret))
    assert wrong.status_code == 422 and r"\d{2}-\d{8} | DL\d{9}" in wrong.get_json()["error"]["message"]
    shipped = client.post(f"/api/v1/orders/{order_id}/ship",
                          json={"carrier": "dellin", "tracking_number": "DL123456789"},
                          headers=bearer(a.merchant_secret))
    assert (shipped.status_code, shipped.get_json()["carrier"]) == (200, "dellin")


def test_the_edit_page_shows_the_carriers_values(app, operator, auth):
    carriers(app)
    page = _text(auth.client.get(f"/admin/carriers/{_id(app, 'russian_post')}/edit"))
    assert "Почта России" in page and "<code class=\"fs-6\">russian_post</code>" in page
    textarea = re.search(r'<textarea[^>]*name="tracking_patterns"[^>]*>(.*?)</textarea>', page, re.S).group(1)
    assert textarea.strip().splitlines() == [r"\d{14}", r"[A-Z]{2}\d{9}[A-Z]{2}"]
    checked = set(re.findall(r'<input checked[^>]*name="pickup_days"[^>]*value="(\d)"', page))
    checked |= set(re.findall(r'<input[^>]*name="pickup_days"[^>]*value="(\d)"[^>]*checked', page))
    assert checked == {"0", "1", "2", "3", "4", "5"}
    assert 'name="code"' not in page  # orders refer to the code: it never changes


def test_the_operator_edits_a_carrier_and_the_change_is_audited(app, client, factory, operator, auth):
    carriers(app)
    cdek = _id(app, "cdek")
    response = auth.post(f"/admin/carriers/{cdek}/edit", CDEK, csrf_page="/admin/carriers")
    assert response.status_code == 302
    assert "Carrier Деловые Линии saved." in _text(auth.client.get("/admin/carriers"))
    stored = _stored(app, "cdek")
    assert (stored["name"], stored["tracking_patterns"], stored["pickup_days"], stored["cutoff_time"],
            stored["timezone"], stored["max_weight_grams"]) == (
        "Деловые Линии", [r"\d{2}-\d{8}", r"DL\d{9}"], [0, 2, 4], "15:30", "Asia/Yekaterinburg", 80_000)
    (event,) = _audit(app, "carrier.updated")
    assert event.actor_user_id == operator.id
    assert event.details["name"] == ["СДЭК", "Деловые Линии"] and event.details["cutoff_time"] == ["16:00", "15:30"]
    assert "timezone" in event.details and "tracking_url" in event.details and "is_active" not in event.details

    # Saved again unchanged: nothing to record.
    auth.post(f"/admin/carriers/{cdek}/edit", CDEK, csrf_page="/admin/carriers")
    assert len(_audit(app, "carrier.updated")) == 1


def test_a_deactivated_carrier_is_no_longer_offered_to_merchants(app, client, factory, operator, auth):
    carriers(app)
    dpd = _id(app, "dpd")
    values = {**{k: v for k, v in CDEK.items() if k != "is_active"}, "name": "DPD"}  # an unticked box is not sent
    assert auth.post(f"/admin/carriers/{dpd}/edit", values, csrf_page="/admin/carriers").status_code == 302
    assert _stored(app, "dpd")["is_active"] is False
    assert 'class="text-muted"' in re.search(r'<tr data-carrier="dpd"[^>]*>', _text(
        auth.client.get("/admin/carriers"))).group(0)

    a = shop(app, factory)
    order_id = post_order(client, a).get_json()["id"]
    client.post(f"/api/v1/orders/{order_id}/accept", headers=bearer(a.merchant_secret))
    refused = client.post(f"/api/v1/orders/{order_id}/ship", json={"carrier": "dpd", "tracking_number": "12-34567890"},
                          headers=bearer(a.merchant_secret))
    assert (refused.status_code, refused.get_json()["error"]["details"]["field"]) == (422, "carrier")


@pytest.mark.parametrize("changes, field, message", [
    ({"tracking_patterns": "\\d{10}\r\n\r\n[A-Z"}, "tracking_patterns",
     "Line 3 of the formats is not a valid regular expression: [A-Z (unterminated character set)."),
    ({"tracking_patterns": "(\\d+"}, "tracking_patterns", "Line 1 of the formats is not a valid regular expression"),
    ({"tracking_url": "https://track.example/search"}, "tracking_url",
     "The tracking URL must contain {tracking} where the number goes, or be empty."),
    ({"tracking_url": "javascript:alert('{tracking}')"}, "tracking_url",
     "The tracking URL must be an http(s) address of at most 300 characters."),
    ({"cutoff_time": "25:00"}, "cutoff_time", "25:00 is not a time of day: write the cut-off as HH:MM, e.g. 16:00."),
    ({"cutoff_time": "9:00"}, "cutoff_time", "9:00 is not a time of day"),
    ({"timezone": "Mars/Olympus_Mons"}, "timezone",
     "Mars/Olympus_Mons is not a time zone: use a name such as Europe/Moscow."),
    ({"timezone": "../../etc/passwd"}, "timezone", "../../etc/passwd is not a time zone"),
    ({"max_weight_grams": "0"}, "max_weight_grams", "Number must be between 1 and 100000."),
    ({"max_weight_grams": "100001"}, "max_weight_grams", "Number must be between 1 and 100000."),
    ({"max_weight_grams": "heavy"}, "max_weight_grams", "Not a valid integer value."),
    ({"pickup_days": ["7"]}, "pickup_days", "'7' is not a valid choice for this field."),
    ({"name": "  "}, "name", "This field is required."),
])
def test_a_bad_value_is_shown_beside_its_field_and_nothing_is_saved(app, operator, auth, changes, field, message):
    carriers(app)
    before = _stored(app, "cdek")
    response = auth.post(f"/admin/carriers/{_id(app, 'cdek')}/edit", {**CDEK, **changes}, csrf_page="/admin/carriers")
    assert response.status_code == 422
    page = _text(response)
    assert message in page
    assert re.search(rf'name="{field}"', page)
    assert re.search(r'class="(invalid-feedback|text-danger small)">' + re.escape(message), page), page
    assert _stored(app, "cdek") == before
    assert _audit(app, "carrier.updated") == []


def test_a_new_carrier_needs_a_free_valid_code(app, operator, auth):
    carriers(app)
    taken = auth.post("/admin/carriers/new", {**DELLIN, "code": "cdek"}, csrf_page="/admin/carriers")
    assert taken.status_code == 422
    assert "A carrier with the code cdek already exists." in _text(taken)
    for code in ("Del-Lin", "д", "x"):
        bad = auth.post("/admin/carriers/new", {**DELLIN, "code": code}, csrf_page="/admin/carriers")
        assert bad.status_code == 422
        assert f"The code {code} is not valid: use 2-32 lowercase letters, digits and underscores." in _text(bad)
    assert _count(app, Carrier) == len(DEFAULT_CARRIERS)
    assert _stored(app, "cdek")["name"] == "СДЭК"
    assert _audit(app, "carrier.created") == []


def test_a_new_carrier_with_a_bad_format_is_not_created(app, operator, auth):
    response = auth.post("/admin/carriers/new", {**DELLIN, "tracking_patterns": "DL\\d{9}\r\n*"},
                         csrf_page="/admin/carriers")
    assert response.status_code == 422
    assert "Line 2 of the formats is not a valid regular expression: *" in _text(response)
    assert _count(app, Carrier) == 0


def test_loading_the_default_carriers_twice_adds_them_once_and_keeps_edits(app, operator, auth):
    first = _text(auth.post("/admin/carriers/load-defaults", csrf_page="/admin/carriers", follow_redirects=True))
    codes = [item["code"] for item in DEFAULT_CARRIERS]
    assert f"Default carriers added: {', '.join(codes)}." in first
    assert _count(app, Carrier) == len(codes)

    with app.app_context():
        db = get_session()
        carrier_by_code(db, "cdek").name = "СДЭК (договор 42)"
        db.commit()
    second = _text(auth.post("/admin/carriers/load-defaults", csrf_page="/admin/carriers", follow_redirects=True))
    assert "Every default carrier is already there; nothing was added." in second
    assert _count(app, Carrier) == len(codes)
    assert _stored(app, "cdek")["name"] == "СДЭК (договор 42)"
    (event,) = _audit(app, "carrier.defaults_loaded")
    assert (event.actor_user_id, event.details) == (operator.id, {"added": codes})


def test_loading_the_defaults_without_the_csrf_token_adds_nothing(app, operator, auth):
    assert auth.client.post("/admin/carriers/load-defaults", data={}).status_code == 400
    assert _count(app, Carrier) == 0


@pytest.mark.parametrize("role", ["merchant_admin", "merchant_staff", "category_manager"])
def test_only_operators_reach_the_carrier_pages(app, factory, auth, role):
    carriers(app)
    cdek = _id(app, "cdek")
    auth.login(factory.user(role).email)
    for path in ("/admin/carriers", "/admin/carriers/new", f"/admin/carriers/{cdek}/edit"):
        assert auth.client.get(path).status_code == 403, path
    for path, data in (("/admin/carriers/new", DELLIN), (f"/admin/carriers/{cdek}/edit", CDEK),
                       ("/admin/carriers/load-defaults", {})):
        assert auth.post(path, data).status_code == 403, path
    assert _count(app, Carrier) == len(DEFAULT_CARRIERS) and _stored(app, "cdek")["name"] == "СДЭК"
    assert "/admin/carriers" not in _text(auth.client.get("/"))


def test_signed_out_visitors_are_sent_to_sign_in(client):
    response = client.get("/admin/carriers")
    assert response.status_code == 302 and "/login" in response.headers["Location"]


def test_an_unknown_carrier_id_answers_404(app, operator, auth):
    assert auth.client.get("/admin/carriers/999999/edit").status_code == 404


def test_the_pages_speak_russian(app, operator, auth):
    carriers(app)
    auth.post("/language", {"lang": "ru", "next": "/admin/carriers"})
    page = _text(auth.client.get("/admin/carriers"))
    assert '<html lang="ru">' in page
    assert "пн, вт, ср, чт, пт" in page and "Перевозчики" in page
