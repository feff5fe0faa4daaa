"""Signing in and out: passwords, lockout, rate limits, CSRF and redirects."""
from __future__ import annotations

from sqlalchemy import select

from portal.accounts.models import User
from portal.audit import AuditEvent
from portal.db import get_session, utcnow
from tests.support.factories import PASSWORD


def _actions(app) -> list[str]:
    with app.app_context():
        return list(get_session().scalars(select(AuditEvent.action).order_by(AuditEvent.id)))


def test_merchant_admin_signs_in_and_sees_their_merchant_home(factory, auth):
    merchant = factory.merchant(name="Acme Tools")
    user = factory.user("merchant_admin", merchant)
    response = auth.login(user.email, follow=True)
    page = response.get_data(as_text=True)
    assert response.status_code == 200
    assert "Acme Tools" in page
    assert user.email in page


def test_wrong_password_is_refused_with_a_message(factory, auth, app):
    user = factory.user("merchant_staff")
    response = auth.login(user.email, "not-the-password")
    assert response.status_code == 401
    assert "Wrong e-mail or password." in response.get_data(as_text=True)
    assert auth.client.get("/").status_code == 302
    assert "login.failed" in _actions(app)


def test_unknown_email_gets_the_same_message_as_a_wrong_password(auth):
    response = auth.login("nobody@test.example", "whatever123")
    assert response.status_code == 401
    assert "Wrong e-mail or password." in response.get_data(as_text=True)


def test_account_locks_after_repeated_failures_even_with_the_right_password(factory, auth, app):
    user = factory.user("merchant_admin")
    for _ in range(app.config["LOGIN_MAX_FAILURES"]):
        assert auth.login(user.email, "wrong-password").status_code == 401
    response = auth.login(user.email, PASSWORD)
    assert response.status_code == 401
    assert "locked after repeated failed sign-ins" in response.get_data(as_text=True)
    assert "login.locked" in _actions(app)


def test_lock_ends_after_its_time(factory, auth, app):
    user = factory.user("merchant_admin")
    for _ in range(app.config["LOGIN_MAX_FAILURES"]):
        auth.login(user.email, "wrong-password")
    with app.app_context():
        db = get_session()
        stored = db.get(User, user.id)
        stored.locked_until = utcnow()
        db.commit()
    assert auth.login(user.email, PASSWORD).status_code == 302


def test_sign_in_attempts_are_rate_limited_per_address(factory, app, auth):
    app.config["LOGIN_RATE_LIMIT"] = "3 per minute"
    user = factory.user("merchant_staff")
    codes = [auth.login(user.email, "wrong-password").status_code for _ in range(4)]
    assert codes[:3] == [401, 401, 401]
    assert codes[3] == 429
    assert "Too many requests" in auth.login(user.email, PASSWORD).get_data(as_text=True)


def test_sign_in_without_csrf_token_is_refused(factory, client):
    user = factory.user("merchant_admin")
    response = client.post("/login", data={"email": user.email, "password": PASSWORD})
    assert response.status_code == 400
    assert "security token" in response.get_data(as_text=True)
    assert client.get("/").status_code == 302


def test_sign_in_with_forged_csrf_token_is_refused(factory, client):
    user = factory.user("merchant_admin")
    client.get("/login")
    response = client.post("/login", data={"email": user.email, "password": PASSWORD, "csrf_token": "forged.token.x"})
    assert response.status_code == 400
    assert client.get("/").status_code == 302


def test_deactivated_user_cannot_sign_in(factory, auth, app):
    user = factory.user("merchant_staff")
    with app.app_context():
        db = get_session()
        db.get(User, user.id).is_active_user = False
        db.commit()
    response = auth.login(user.email)
    assert response.status_code == 401
    assert "deactivated" in response.get_data(as_text=True)


def test_sign_out_needs_a_post_with_csrf_and_is_audited(factory, auth, app):
    user = factory.user("merchant_admin")
    auth.login(user.email)
    assert auth.client.get("/logout").status_code == 405
    assert auth.client.post("/logout").status_code == 400
    assert auth.client.get("/").status_code == 200
    auth.logout()
    assert auth.client.get("/").status_code == 302
    assert _actions(app)[-1] == "logout"


def test_next_parameter_only_redirects_within_the_portal(factory, auth):
    user = factory.user("operator_admin")
    token = auth.csrf("/login")
    response = auth.client.post("/login?next=https://evil.example/x", data={
        "email": user.email, "password": PASSWORD, "csrf_token": token})
    assert response.headers["Location"].endswith("/")
    assert "evil" not in response.headers["Location"]


def test_protected_page_sends_anonymous_visitors_to_sign_in(client):
    response = client.get("/users")
    assert response.status_code == 302
    assert "/login?next=" in response.headers["Location"]


def test_successful_sign_in_is_audited_with_the_address(factory, auth, app):
    user = factory.user("category_manager")
    auth.login(user.email)
    with app.app_context():
        event = get_session().scalars(select(AuditEvent).where(AuditEvent.action == "login.succeeded")).one()
        assert event.actor_user_id == user.id
        assert event.ip == "127.0.0.1"
