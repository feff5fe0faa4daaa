"""The shipment pages: built from the order desk, packed, split, merged, made ready and handed over in the browser."""
from __future__ import annotations

import html
import re
import shutil
import subprocess
from datetime import datetime, timedelta, timezone

import pytest

from tests.support.auth import csrf_from
from tests.support.orders import bearer, carriers, order_status, pickup_day, post_order, shop

TOMORROW = pickup_day().isoformat()  # the next weekday: the carriers pick up on weekdays
PACKED = {"weight_grams": "1250", "length_mm": "300", "width_mm": "200", "height_mm": "100"}


@pytest.fixture(autouse=True)
def _carriers(app):
    """Shipping needs the configured carriers; every test starts with empty tables."""
    carriers(app)


@pytest.fixture
def s(app, factory):
    return shop(app, factory, {"TEA-1": 10, "CUP-2": 5})


def _accepted(client, s, lines=(("TEA-1", 1),)) -> dict:
    order = post_order(client, s, list(lines)).get_json()
    assert client.post(f"/api/v1/orders/{order['id']}/accept", headers=bearer(s.merchant_secret)).status_code == 200
    return order


def _text(response) -> str:
    return html.unescape(response.get_data(as_text=True))


def _element(page: str, tag: str, element_id: str) -> str:
    match = re.search(rf'<{tag}[^>]*id="{element_id}".*?</{tag}>', page, re.S)
    assert match, f"no <{tag} id={element_id}> on the page"
    return match.group(0)


def _api(client, s, shipment_id: int, secret: str | None = None) -> dict:
    """The shipment as the API tells it: what the pages changed, or did not."""
    response = client.get(f"/api/v1/shipments/{shipment_id}", headers=bearer(secret or s.merchant_secret))
    assert response.status_code == 200
    return response.get_json()


def _create(auth, order_ids, carrier="cdek", pickup_date=TOMORROW, **extra):
    """The desk's "Create shipment" button: the ticked ids, posted with the desk's form."""
    data = {"order_id": [str(i) for i in order_ids], "carrier": carrier, "pickup_date": pickup_date, **extra}
    return auth.post("/shipments", data, csrf_page="/orders")


def _created(auth, order_ids, **changes) -> int:
    response = _create(auth, order_ids, **changes)
    assert response.status_code == 302, response.get_data(as_text=True)
    match = re.fullmatch(r"/shipments/(\d+)", response.headers["Location"])
    assert match, response.headers["Location"]
    return int(match.group(1))


def _page(auth, shipment_id: int) -> str:
    response = auth.client.get(f"/shipments/{shipment_id}")
    assert response.status_code == 200
    return _text(response)


def _submit(auth, shipment_id: int, path: str, data: dict | None = None) -> str:
    """Post a form of the shipment page (with the page's CSRF token) and read the page it leads back to."""
    payload = {"csrf_token": csrf_from(auth.client.get(f"/shipments/{shipment_id}").get_data(as_text=True)),
               **(data or {})}
    response = auth.client.post(f"/shipments/{shipment_id}{path}", data=payload, follow_redirects=True)
    assert response.status_code == 200, response.status_code
    return _text(response)


def _pack(auth, shipment: dict, first_tracking: int = 1234567890) -> None:
    for n, package in enumerate(shipment["packages"]):
        text = _submit(auth, shipment["id"], f"/packages/{package['id']}",
                       {**PACKED, "tracking_number": f"{first_tracking + n:010d}"})
        assert f"The package {package['code']} was saved." in text


def _package(page: str, package_id: int) -> str:
    """One package's card, up to the next package or the history."""
    match = re.search(rf'id="package-{package_id}".*?(?=class="card mb-3 package"|id="shipment-history")', page, re.S)
    assert match, f"no package {package_id} on the page"
    return match.group(0)


def _alerts(page: str) -> list[str]:
    return [" ".join(re.sub(r"<[^>]+>", " ", a).split()) for a in re.findall(r'<div class="alert alert-[a-z]+ alert-dismissible[^>]*>(.*?)<button', page, re.S)]


def _actions(page: str) -> set[str]:
    return set(re.findall(r'id="action-(\w+)"', _element(page, "div", "shipment-actions")))


def pdf_text(pdf: bytes, tmp_path) -> str:
    if shutil.which("pdftotext") is None:
        pytest.skip("pdftotext not found (Debian's poppler-utils)")
    path = tmp_path / "doc.pdf"
    path.write_bytes(pdf)
    out = subprocess.run(["pdftotext", str(path), "-"], check=True, capture_output=True, text=True).stdout
    return " ".join(out.split())


# --- the journey ------------------------------------------------------------------------------------------------


def test_merchant_builds_packs_splits_merges_and_hands_over_a_shipment_and_the_orders_are_shipped(
        app, client, s, auth, tmp_path):
    first = _accepted(client, s, [("TEA-1", 2), ("CUP-2", 1)])
    second = _accepted(client, s, [("TEA-1", 1)])
    auth.login(s.admin.email)

    desk = _text(auth.client.get("/orders"))
    for order in (first, second):  # accepted orders can be ticked for a shipment
        assert f'name="order_id" value="{order["id"]}"' in desk
    assert 'formaction="/shipments"' in desk and "СДЭК (next pickup" in _element(desk, "select", "shipment-carrier")

    shipment_id = _created(auth, [first["id"], second["id"]], pickup_date="")
    page = _page(auth, shipment_id)
    shipment = _api(client, s, shipment_id)
    number = shipment["number"]
    assert f"Shipment {number} created with 2 orders." in _alerts(page)
    assert shipment["status"] == "draft" and shipment["carrier"] == "cdek"
    # Empty pickup date: the carrier's next pickup day (СДЭК picks up on weekdays).
    assert datetime.fromisoformat(shipment["pickup_date"]).weekday() < 5
    orders = _element(page, "table", "shipment-orders")
    assert first["order_number"] in orders and second["order_number"] in orders and "Казань" in orders
    assert f'href="/orders/{first["id"]}"' in orders
    assert "СДЭК" in _element(page, "dl", "shipment-facts") and 'id="shipment-cutoff"' in page
    problems = _element(page, "ul", "shipment-problems")
    assert "has no weight" in problems and "A tracking number of СДЭК is required." in problems
    assert _actions(page) == {"ready", "handover"}

    _pack(auth, shipment)
    page = _page(auth, shipment_id)
    assert 'id="shipment-problems"' not in page
    package = _package(page, shipment["packages"][0]["id"])
    assert "1.25 kg" in package and "300 × 200 × 100 mm" in package
    assert 'href="https://www.cdek.ru/ru/tracking?order_id=1234567890"' in package
    assert f'id="merge-{shipment["packages"][0]["id"]}"' not in package  # an order's only package

    # Split the first order's package: the cup goes in a package of its own.
    big = shipment["packages"][0]
    cup = next(line for line in big["lines"] if line["sku"] == "CUP-2")
    split_form = _element(page, "form", f"split-{big['id']}")
    contents = re.search(r'name="contents" value="([^"]+)"', split_form).group(1)
    text = _submit(auth, shipment_id, f"/packages/{big['id']}/split",
                   {"contents": contents, f"move-{cup['order_line_id']}": "1"})
    split = _api(client, s, shipment_id)
    new = split["packages"][-1]
    assert f"The package {big['code']} was split; the new package is {new['code']}." in text
    assert [(line["sku"], line["quantity"]) for line in new["lines"]] == [("CUP-2", 1)]
    assert [(line["sku"], line["quantity"]) for line in split["packages"][0]["lines"]] == [("TEA-1", 2)]
    assert f'id="merge-{new["id"]}"' in text and f'id="merge-{big["id"]}"' in text
    # The new package is not weighed yet: the shipment cannot go ready.
    assert f"The package {new['code']} has no weight." in _element(text, "ul", "shipment-problems")

    text = _submit(auth, shipment_id, f"/packages/{new['id']}/merge")
    assert f"The package {new['code']} was merged back into its order's other package." in text
    merged = _api(client, s, shipment_id)
    assert len(merged["packages"]) == 2
    assert sorted((line["sku"], line["quantity"]) for line in merged["packages"][0]["lines"]) == [
        ("CUP-2", 1), ("TEA-1", 2)]
    # Its contents changed: the package is to be weighed and measured again before the shipment goes ready.
    assert f"The package {big['code']} has no weight." in _element(text, "ul", "shipment-problems")
    text = _submit(auth, shipment_id, f"/packages/{big['id']}", {**PACKED})
    assert f"The package {big['code']} was saved." in text

    text = _submit(auth, shipment_id, "/ready")
    assert f"Shipment {number} is now ready for pickup." in text
    assert _api(client, s, shipment_id)["status"] == "ready"
    assert _actions(text) == {"reopen", "handover"} and 'id="package-form-' not in text

    labels = auth.client.get(f"/shipments/{shipment_id}/documents/labels.pdf")
    assert labels.status_code == 200 and labels.mimetype == "application/pdf"
    assert labels.headers["Content-Disposition"] == f'attachment; filename="{number}-labels.pdf"'
    assert labels.data.startswith(b"%PDF")
    for name in ("packing-slips", "handover-act"):
        assert f'href="/shipments/{shipment_id}/documents/{name}.pdf"' in text
        assert auth.client.get(f"/shipments/{shipment_id}/documents/{name}.pdf").data.startswith(b"%PDF")

    text = _submit(auth, shipment_id, "/handover")
    assert f"Shipment {number} is now handed over." in text
    assert _actions(text) == set()  # in transit and delivered are the marketplace's
    for order, tracking in ((first, "1234567890"), (second, "1234567891")):
        assert order_status(app, order["id"]) == "shipped"
        order_page = _text(auth.client.get(f"/orders/{order['id']}"))
        assert tracking in order_page and 'id="order-carrier">СДЭК<' in order_page
    history = _element(text, "ol", "shipment-history")
    for step in ("Shipment created", "Package weighed, measured or tracked", "Package split", "Packages merged",
                 "Marked ready", "Handed over to the carrier"):
        assert step in history
    assert s.admin.email in history and "ready for pickup → handed over" in history


def test_the_documents_come_in_the_users_language(app, client, s, auth, tmp_path):
    order = _accepted(client, s)
    auth.login(s.admin.email)
    shipment_id = _created(auth, [order["id"]])
    unpacked = auth.client.get(f"/shipments/{shipment_id}/documents/labels.pdf", follow_redirects=True)
    assert "Finish packing first" in html.unescape(unpacked.get_data(as_text=True))  # no label says 0 kg
    assert auth.client.get(f"/shipments/{shipment_id}/documents/packing-slips.pdf").mimetype == "application/pdf"
    _pack(auth, _api(client, s, shipment_id))
    english = auth.client.get(f"/shipments/{shipment_id}/documents/labels.pdf")
    auth.post("/language", {"lang": "ru"})
    russian = auth.client.get(f"/shipments/{shipment_id}/documents/labels.pdf")
    assert russian.status_code == 200 and russian.mimetype == "application/pdf"
    assert "attachment" in russian.headers["Content-Disposition"]
    assert "Получатель" in pdf_text(russian.data, tmp_path)
    assert "Recipient" in pdf_text(english.data, tmp_path) and "Получатель" not in pdf_text(english.data, tmp_path)
    page = _page(auth, shipment_id)
    assert "Отгрузка" in page and "Этикетки" in page


def test_a_draft_is_handed_over_in_one_click(app, client, s, auth):
    order = _accepted(client, s)
    auth.login(s.admin.email)
    shipment_id = _created(auth, [order["id"]])
    _pack(auth, _api(client, s, shipment_id))
    text = _submit(auth, shipment_id, "/handover")
    assert "is now handed over." in text
    history = [e["transition"] for e in _api(client, s, shipment_id)["history"]]
    assert history[-2:] == ["ready", "handover"] and order_status(app, order["id"]) == "shipped"


def test_the_same_button_clicked_twice_does_it_once_and_says_so(app, client, s, auth):
    order = _accepted(client, s)
    auth.login(s.admin.email)
    shipment_id = _created(auth, [order["id"]])
    _pack(auth, _api(client, s, shipment_id))
    csrf = auth.csrf(f"/shipments/{shipment_id}")
    first = _text(auth.client.post(f"/shipments/{shipment_id}/ready", data={"csrf_token": csrf}, follow_redirects=True))
    second = _text(auth.client.post(f"/shipments/{shipment_id}/ready", data={"csrf_token": csrf}, follow_redirects=True))
    assert "is now ready for pickup." in first
    assert "This was already done; nothing more was changed." in second and "is now" not in second
    assert [e["transition"] for e in _api(client, s, shipment_id)["history"]] == ["create", "package", "ready"]


def test_a_split_posted_twice_moves_the_units_once(app, client, s, auth):
    order = _accepted(client, s, [("TEA-1", 3)])
    auth.login(s.admin.email)
    shipment_id = _created(auth, [order["id"]])
    package = _api(client, s, shipment_id)["packages"][0]
    form = _element(_page(auth, shipment_id), "form", f"split-{package['id']}")
    data = {"csrf_token": csrf_from(form), "contents": re.search(r'name="contents" value="([^"]+)"', form).group(1),
            f"move-{package['lines'][0]['order_line_id']}": "1"}
    auth.client.post(f"/shipments/{shipment_id}/packages/{package['id']}/split", data=data)
    again = _text(auth.client.post(f"/shipments/{shipment_id}/packages/{package['id']}/split", data=data,
                                   follow_redirects=True))
    assert f"The package {package['code']} has changed since the page was shown; nothing was moved." in again
    assert [p["lines"][0]["quantity"] for p in _api(client, s, shipment_id)["packages"]] == [2, 1]
    # A second click of "Merge back" finds the package gone and changes nothing either.
    new = _api(client, s, shipment_id)["packages"][1]
    _submit(auth, shipment_id, f"/packages/{new['id']}/merge")
    assert "no longer in the shipment" in _submit(auth, shipment_id, f"/packages/{new['id']}/merge")
    assert [p["lines"][0]["quantity"] for p in _api(client, s, shipment_id)["packages"]] == [3]


# --- bad input ------------------------------------------------------------------------------------------------


def test_a_tracking_number_in_another_format_is_named_with_its_package_and_nothing_changes(app, client, s, auth):
    order = _accepted(client, s)
    auth.login(s.admin.email)
    shipment_id = _created(auth, [order["id"]])
    before = _api(client, s, shipment_id)
    package = before["packages"][0]
    text = _submit(auth, shipment_id, f"/packages/{package['id']}", {**PACKED, "tracking_number": "RA123456789RU"})
    assert (f"{package['code']}, Tracking number: RA123456789RU is not a tracking number of СДЭК "
            f"(expected: \\d{{10}}).") in _alerts(text)
    after = _api(client, s, shipment_id)
    # Neither the number nor the weight and sides posted with it were saved.
    assert after["packages"] == before["packages"] and after["history"] == before["history"]


def test_a_package_heavier_than_the_carrier_takes_is_refused_by_name(app, client, s, auth):
    order = _accepted(client, s)
    auth.login(s.admin.email)
    shipment_id = _created(auth, [order["id"]])
    package = _api(client, s, shipment_id)["packages"][0]
    text = _submit(auth, shipment_id, f"/packages/{package['id']}",
                   {**PACKED, "weight_grams": "30001", "tracking_number": "1234567890"})
    assert (f"{package['code']}, Weight, g: The package {package['code']} weighs 30.001 kg; СДЭК takes at most "
            f"30 kg.") in _alerts(text)
    assert _api(client, s, shipment_id)["packages"][0]["weight_grams"] == 0
    # Not a number at all: the form says which field, and nothing is saved.
    text = _submit(auth, shipment_id, f"/packages/{package['id']}", {"weight_grams": "1,5 кг"})
    assert any(alert.startswith(f"{package['code']}, Weight, g:") for alert in _alerts(text))
    text = _submit(auth, shipment_id, f"/packages/{package['id']}", {"length_mm": "0"})
    assert any(alert.startswith(f"{package['code']}, Length, mm:") for alert in _alerts(text))
    assert _api(client, s, shipment_id)["packages"][0]["tracking_number"] is None


def test_creating_from_an_order_that_is_not_accepted_names_it_and_creates_nothing(app, client, s, auth):
    accepted = _accepted(client, s)
    waiting = post_order(client, s).get_json()
    auth.login(s.admin.email)
    response = _create(auth, [accepted["id"], waiting["id"]], back="status=open")
    assert response.headers["Location"] == "/orders?status=open"
    text = _text(auth.client.get(response.headers["Location"]))
    assert (f"The order {waiting['order_number']} is awaiting acceptance; only accepted orders can be shipped."
            in _alerts(text))
    assert client.get("/api/v1/shipments", headers=bearer(s.merchant_secret)).get_json()["items"] == []


def test_an_order_already_in_a_shipment_is_named_with_its_shipment(app, client, s, auth):
    order, other = _accepted(client, s), _accepted(client, s)
    auth.login(s.admin.email)
    shipment_id = _created(auth, [order["id"]])
    number = _api(client, s, shipment_id)["number"]
    response = _create(auth, [other["id"], order["id"]])
    text = _text(auth.client.get(response.headers["Location"]))
    assert f"The order {order['order_number']} is already in the shipment {number}." in _alerts(text)
    assert len(client.get("/api/v1/shipments", headers=bearer(s.merchant_secret)).get_json()["items"]) == 1


def test_creating_without_ticks_a_carrier_or_a_real_date_says_what_is_missing(app, client, s, auth):
    order = _accepted(client, s)
    auth.login(s.admin.email)
    for data, message in (({"order_ids": []}, "Tick the accepted orders that go in the shipment first."),
                          ({"carrier": ""}, "Choose the carrier of the shipment."),
                          ({"carrier": "pigeon"}, "There is no active carrier pigeon."),
                          ({"pickup_date": "tomorrow"}, "The pickup date is not a date."),
                          ({"pickup_date": "2020-01-01"}, "The pickup date is in the past.")):
        ids = data.pop("order_ids", [order["id"]])
        response = _create(auth, ids, **data)
        assert response.headers["Location"] == "/orders"
        assert message in _alerts(_text(auth.client.get("/orders"))), message
    assert client.get("/api/v1/shipments", headers=bearer(s.merchant_secret)).get_json()["items"] == []


def test_a_shipment_with_no_orders_cannot_be_handed_over(app, client, s, auth):
    order = _accepted(client, s)
    auth.login(s.admin.email)
    shipment_id = _created(auth, [order["id"]])
    text = _submit(auth, shipment_id, f"/orders/{order['id']}/remove")
    assert f"The order {order['order_number']} was taken out of the shipment." in text
    assert "The shipment has no orders." in _element(text, "ul", "shipment-problems")
    text = _submit(auth, shipment_id, "/handover")
    assert "The shipment has no orders." in _alerts(text)
    assert _api(client, s, shipment_id)["status"] == "draft" and order_status(app, order["id"]) == "accepted"


def test_mark_ready_lists_every_problem_and_changes_nothing(app, client, s, auth):
    order = _accepted(client, s)
    auth.login(s.admin.email)
    shipment_id = _created(auth, [order["id"]])
    text = _submit(auth, shipment_id, "/ready")
    problems = re.search(r'<ul class="mb-0 mt-1 shipment-problems">(.*?)</ul>', text, re.S)
    assert problems, "the problems come as a list"
    items = re.findall(r"<li>(.*?)</li>", problems.group(1))
    assert len(items) == 3 and any("has no weight" in item for item in items)
    assert _api(client, s, shipment_id)["status"] == "draft"


def test_a_draft_takes_in_more_accepted_orders_and_can_be_deleted(app, client, s, auth):
    order, more = _accepted(client, s), _accepted(client, s)
    waiting = post_order(client, s).get_json()
    auth.login(s.admin.email)
    shipment_id = _created(auth, [order["id"]])
    form = _element(_page(auth, shipment_id), "form", "add-orders")
    assert f'value="{more["id"]}"' in form and f'value="{order["id"]}"' not in form
    assert f'value="{waiting["id"]}"' not in form
    text = _submit(auth, shipment_id, "/orders", {"order_id": [str(more["id"])]})
    assert "1 order added to the shipment." in text
    assert [o["id"] for o in _api(client, s, shipment_id)["orders"]] == [order["id"], more["id"]]
    assert 'id="no-free-orders"' in text

    response = auth.post(f"/shipments/{shipment_id}/delete", csrf_page=f"/shipments/{shipment_id}")
    assert response.headers["Location"] == "/shipments"
    assert "was deleted; its orders can go in another shipment." in _text(auth.client.get("/shipments"))
    assert auth.client.get(f"/shipments/{shipment_id}").status_code == 404
    assert order_status(app, order["id"]) == "accepted"
    _created(auth, [order["id"], more["id"]])  # free again


def test_bulk_accept_with_accepted_orders_ticked_names_them(app, client, s, auth):
    accepted = _accepted(client, s)
    waiting = post_order(client, s).get_json()
    auth.login(s.admin.email)
    text = _text(auth.post("/orders/bulk", {"action": "accept", "order_id": [str(accepted["id"]), str(waiting["id"])]},
                           csrf_page="/orders", follow_redirects=True))
    assert "1 order accepted." in text
    assert f"{accepted['order_number']}: The order is accepted; it cannot be accepted." in text


# --- the list ---------------------------------------------------------------------------------------------------


def test_the_list_has_tabs_by_status_and_pages(app, client, s, auth, monkeypatch):
    orders = [_accepted(client, s) for _ in range(3)]
    auth.login(s.admin.email)
    draft, gone = _created(auth, [orders[0]["id"]]), _created(auth, [orders[1]["id"]])
    _pack(auth, _api(client, s, gone))
    _submit(auth, gone, "/handover")

    def listed(**args) -> list[str]:
        return re.findall(r'<tr data-shipment="([^"]+)">', auth.client.get("/shipments", query_string=args)
                          .get_data(as_text=True))

    number = {sid: _api(client, s, sid)["number"] for sid in (draft, gone)}
    assert listed() == [number[draft]] == listed(status="open")
    assert listed(status="handed_over") == [number[gone]]
    assert listed(status="in_transit") == [] == listed(status="delivered")
    assert listed(status="all") == [number[gone], number[draft]]
    row = re.search(r'<tr data-shipment="%s">(.*?)</tr>' % number[draft], auth.client.get("/shipments")
                    .get_data(as_text=True), re.S).group(1)
    assert "СДЭК" in row and "draft" in row and "<th>Merchant</th>" not in auth.client.get("/shipments").get_data(
        as_text=True)

    # One shipment a page: the pager keeps the tab.
    from portal.pagination import paginate
    from portal.shipping import views

    monkeypatch.setattr(views, "paginate", lambda db, stmt, page, per_page=50: paginate(db, stmt, page, per_page=1))
    first = auth.client.get("/shipments", query_string={"status": "all"}).get_data(as_text=True)
    assert re.findall(r'<tr data-shipment="([^"]+)">', first) == [number[gone]]
    assert "/shipments?page=2&amp;status=all" in first
    second = auth.client.get("/shipments", query_string={"status": "all", "page": 2}).get_data(as_text=True)
    assert re.findall(r'<tr data-shipment="([^"]+)">', second) == [number[draft]]


# --- who may do what --------------------------------------------------------------------------------------------


def test_merchant_staff_builds_and_hands_over_a_shipment_too(app, client, s, factory, auth):
    staff = factory.user("merchant_staff", s.merchant)
    order = _accepted(client, s)
    auth.login(staff.email)
    assert "Shipments" in _text(auth.client.get("/"))
    shipment_id = _created(auth, [order["id"]])
    _pack(auth, _api(client, s, shipment_id))
    assert "is now handed over." in _submit(auth, shipment_id, "/handover")
    assert staff.email in _element(_page(auth, shipment_id), "ol", "shipment-history")


def test_operators_see_every_merchants_shipments_report_carrier_events_and_edit_nothing(app, client, s, factory,
                                                                                      auth):
    other = shop(app, factory)
    order, theirs = _accepted(client, s), _accepted(client, other)
    auth.login(s.admin.email)
    shipment_id = _created(auth, [order["id"]])
    _pack(auth, _api(client, s, shipment_id))
    auth.logout()
    auth.login(other.admin.email)
    other_id = _created(auth, [theirs["id"]])
    auth.logout()

    operator = factory.user("operator_admin")
    auth.login(operator.email)
    listing = auth.client.get("/shipments").get_data(as_text=True)
    assert "<th>Merchant</th>" in listing and s.merchant.name in listing and other.merchant.name in listing
    page = _page(auth, shipment_id)
    assert s.merchant.name in _element(page, "p", "shipment-merchant")
    assert _actions(page) == set() and 'id="package-form-' not in page and 'id="delete-shipment"' not in page
    assert 'id="add-orders"' not in page and "Remove</button>" not in page
    assert auth.client.get(f"/shipments/{other_id}").status_code == 200
    assert auth.client.get(f"/shipments/{shipment_id}/documents/handover-act.pdf").status_code == 200

    package = _api(client, s, shipment_id)["packages"][0]
    csrf = auth.csrf(f"/shipments/{shipment_id}")
    for path, data in ((f"/packages/{package['id']}", {"weight_grams": "1"}), (f"/packages/{package['id']}/merge", {}),
                       (f"/packages/{package['id']}/split", {}), (f"/orders/{order['id']}/remove", {}),
                       ("/orders", {"order_id": str(order["id"])}), ("/delete", {})):
        assert auth.client.post(f"/shipments/{shipment_id}{path}", data={"csrf_token": csrf, **data}).status_code == 403
    assert auth.post("/shipments", {"order_id": str(order["id"]), "carrier": "cdek"}, csrf_page="/orders"
                     ).status_code == 403
    text = _submit(auth, shipment_id, "/ready")
    assert "Your role may not do “Mark ready” on shipments." in text
    assert _submit(auth, shipment_id, "/in_transit").count("is now") == 0  # not handed over yet
    assert _api(client, s, shipment_id)["status"] == "draft"

    auth.logout()
    auth.login(s.admin.email)
    _submit(auth, shipment_id, "/handover")
    auth.logout()
    auth.login(operator.email)
    assert _actions(_page(auth, shipment_id)) == {"in_transit", "delivered"}
    assert "is now in transit." in _submit(auth, shipment_id, "/in_transit")
    text = _submit(auth, shipment_id, "/delivered")
    assert "is now delivered." in text and _actions(text) == set()
    assert order_status(app, order["id"]) == "delivered"
    assert operator.email in _element(text, "ol", "shipment-history")


def test_a_merchant_cannot_report_carrier_events(app, client, s, auth):
    order = _accepted(client, s)
    auth.login(s.admin.email)
    shipment_id = _created(auth, [order["id"]])
    _pack(auth, _api(client, s, shipment_id))
    _submit(auth, shipment_id, "/handover")
    assert "Your role may not do “Delivered” on shipments." in _submit(auth, shipment_id, "/delivered")
    assert _api(client, s, shipment_id)["status"] == "handed_over"


def test_a_category_manager_has_no_shipment_pages(app, client, s, factory, auth):
    order = _accepted(client, s)
    auth.login(s.admin.email)
    shipment_id = _created(auth, [order["id"]])
    package_id = _api(client, s, shipment_id)["packages"][0]["id"]
    auth.logout()
    auth.login(factory.user("category_manager").email)
    assert "Shipments" not in _text(auth.client.get("/"))
    for path in ("/shipments", f"/shipments/{shipment_id}", f"/shipments/{shipment_id}/documents/labels.pdf"):
        assert auth.client.get(path).status_code == 403, path
    for path in ("/shipments", f"/shipments/{shipment_id}/ready", f"/shipments/{shipment_id}/packages/{package_id}",
                 f"/shipments/{shipment_id}/delete"):
        assert auth.post(path, {}).status_code == 403, path


def test_the_shipment_pages_ask_a_signed_out_visitor_to_sign_in(app, client, s, auth):
    order = _accepted(client, s)
    auth.login(s.admin.email)
    shipment_id = _created(auth, [order["id"]])
    auth.logout()
    for path in ("/shipments", f"/shipments/{shipment_id}"):
        response = client.get(path)
        assert response.status_code == 302 and "/login" in response.headers["Location"]


def test_the_home_pages_at_risk_order_links_to_its_shipment(app, client, s, auth):
    soon = (datetime.now(timezone.utc) + timedelta(hours=2)).isoformat()
    order = post_order(client, s, ship_by=soon,
                       acceptance_deadline=(datetime.now(timezone.utc) + timedelta(hours=1)).isoformat()).get_json()
    client.post(f"/api/v1/orders/{order['id']}/accept", headers=bearer(s.merchant_secret))
    auth.login(s.admin.email)
    shipment_id = _created(auth, [order["id"]])
    home = _element(_text(auth.client.get("/")), "ul", "at-risk-list")
    assert f'<a href="/shipments/{shipment_id}" class="at-risk-shipment">in shipment SHP-{shipment_id:06d}</a>' in home
