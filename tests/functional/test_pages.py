"""Pages: home by role, navigation by role, language switch, error pages, local assets, headers."""
from __future__ import annotations

import re

import pytest

from portal.accounts.models import User
from portal.db import get_session

NAV = {
    "merchant_admin": {"Home", "Products", "Uploads", "Categories", "Attributes", "Requests", "Orders", "Shipments",
                       "Performance", "Users", "API tokens", "Audit log"},
    "merchant_staff": {"Home", "Products", "Uploads", "Categories", "Attributes", "Requests", "Orders", "Shipments",
                       "Performance"},
    "category_manager": {"Home", "Weak spots", "Merchants", "Products", "Uploads", "Categories", "Requests", "Taxonomy",
                         "Merchant performance"},
    "operator_admin": {"Home", "Merchants", "Products", "Uploads", "Categories", "Orders", "Shipments", "Requests", "Weak spots",
                       "Taxonomy", "Merchant performance", "PIM export", "Carriers", "KPI thresholds", "Users",
                       "API tokens", "Audit log"},
}


def _nav_labels(html: str) -> set[str]:
    return set(re.findall(r'class="nav-link[^"]*" href="[^"]+">([^<]+)</a>', html))


@pytest.mark.parametrize("role", sorted(NAV))
def test_each_role_has_its_home_page_and_navigation(role, factory, auth):
    user = factory.user(role)
    auth.login(user.email)
    response = auth.client.get("/")
    assert response.status_code == 200
    assert _nav_labels(response.get_data(as_text=True)) == NAV[role]


def test_language_switch_shows_russian_and_is_remembered_for_the_user(factory, auth, app):
    user = factory.user("merchant_admin")
    auth.login(user.email)
    auth.post("/language", {"lang": "ru", "next": "/users"})
    page = auth.client.get("/").get_data(as_text=True)
    assert '<html lang="ru">' in page
    assert "Выйти" in page
    with app.app_context():
        assert get_session().get(User, user.id).locale == "ru"
    auth.logout()
    auth.client.delete_cookie("session", domain="portal.test")
    auth.login(user.email)
    assert '<html lang="ru">' in auth.client.get("/").get_data(as_text=True)


def test_anonymous_visitor_can_switch_language_on_the_sign_in_page(client, auth):
    response = auth.post("/language", {"lang": "ru", "next": "/login"}, csrf_page="/login")
    assert response.headers["Location"].endswith("/login")
    assert '<html lang="ru">' in client.get("/login").get_data(as_text=True)


def test_browser_language_is_used_until_someone_chooses(client):
    page = client.get("/login", headers={"Accept-Language": "ru-RU,ru;q=0.9"}).get_data(as_text=True)
    assert '<html lang="ru">' in page


def test_unknown_language_is_ignored(client, auth):
    auth.post("/language", {"lang": "xx", "next": "/login"}, csrf_page="/login")
    assert '<html lang="en">' in client.get("/login").get_data(as_text=True)


def test_language_switch_without_csrf_is_refused(client):
    assert client.post("/language", data={"lang": "ru"}).status_code == 400


def test_missing_page_is_a_friendly_404(client):
    response = client.get("/no-such-page")
    assert response.status_code == 404
    assert "We could not find what you asked for." in response.get_data(as_text=True)


def test_crash_is_a_friendly_500_without_details(app_config, make_app):
    app = make_app(app_config)

    @app.get("/boom")
    def boom():
        raise RuntimeError("secret internals")

    response = app.test_client().get("/boom")
    page = response.get_data(as_text=True)
    assert response.status_code == 500
    assert "Something went wrong on our side" in page
    assert "secret internals" not in page


def test_error_pages_are_translated(client):
    page = client.get("/no-such-page", headers={"Accept-Language": "ru"}).get_data(as_text=True)
    assert "Мы не нашли" in page or "не найден" in page.lower()


def test_pages_load_bootstrap_from_the_portal_not_a_cdn(client):
    page = client.get("/login").get_data(as_text=True)
    assets = re.findall(r'(?:href|src)="([^"]+\.(?:css|js))"', page)
    assert assets and all(a.startswith("/static/") for a in assets)
    for asset in assets:
        response = client.get(asset)
        assert response.status_code == 200
        response.close()


def test_security_headers_are_set(client):
    headers = client.get("/login").headers
    assert "default-src 'self'" in headers["Content-Security-Policy"]
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert headers["X-Frame-Options"] == "SAMEORIGIN"


def test_user_text_is_escaped_in_pages(factory, auth):
    merchant = factory.merchant(name="<script>alert(1)</script>")
    admin = factory.user("merchant_admin", merchant)
    auth.login(admin.email)
    page = auth.client.get("/").get_data(as_text=True)
    assert "<script>alert(1)</script>" not in page
    assert "&lt;script&gt;" in page


def test_language_chosen_before_signing_in_becomes_the_users(factory, auth, app):
    user = factory.user("merchant_staff")
    auth.post("/language", {"lang": "ru", "next": "/login"}, csrf_page="/login")
    auth.login(user.email)
    assert '<html lang="ru">' in auth.client.get("/").get_data(as_text=True)
    with app.app_context():
        assert get_session().get(User, user.id).locale == "ru"
