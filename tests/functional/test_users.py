"""Merchant admins invite and deactivate their own users; operators manage everyone."""
from __future__ import annotations

import re
from datetime import timedelta

from sqlalchemy import select

from portal.accounts.models import User
from portal.db import get_session, utcnow


def _invite(auth, email="new@test.example", role="merchant_staff"):
    return auth.post("/users/invite", {"email": email, "full_name": "Nina New", "role": role}, csrf_page="/users")


def _link_path(html: str) -> str:
    match = re.search(r'value="http://portal\.test(/invite/[^"]+)"', html)
    assert match, "the invitation link is not on the page"
    return match.group(1)


def test_merchant_admin_invites_a_colleague_who_sets_a_password_and_signs_in(factory, auth, client):
    admin = factory.user("merchant_admin")
    auth.login(admin.email)
    response = _invite(auth)
    assert response.status_code == 200
    path = _link_path(response.get_data(as_text=True))
    auth.logout()

    page = client.get(path)
    assert "new@test.example" in page.get_data(as_text=True)
    response = auth.post(path, {"password": "fresh-pass-1", "confirm": "fresh-pass-1"}, csrf_page=path)
    assert response.status_code == 302
    assert client.get("/").status_code == 200
    auth.logout()
    assert auth.login("new@test.example", "fresh-pass-1").status_code == 302
    # The link works once.
    assert client.get(path).status_code == 404


def test_invited_user_cannot_sign_in_before_choosing_a_password(factory, auth):
    admin = factory.user("merchant_admin")
    auth.login(admin.email)
    _invite(auth)
    auth.logout()
    assert auth.login("new@test.example", "").status_code == 200  # form error: password required
    assert auth.login("new@test.example", "anything-1").status_code == 401


def test_expired_invitation_link_is_refused(factory, auth, client, app):
    admin = factory.user("merchant_admin")
    auth.login(admin.email)
    path = _link_path(_invite(auth).get_data(as_text=True))
    auth.logout()
    with app.app_context():
        db = get_session()
        db.scalars(select(User).where(User.email == "new@test.example")).one().invite_expires_at = utcnow() - timedelta(seconds=1)
        db.commit()
    response = client.get(path)
    assert response.status_code == 404
    assert "expired" in response.get_data(as_text=True)


def test_invitation_with_an_existing_email_is_refused_with_a_message(factory, auth):
    admin = factory.user("merchant_admin")
    auth.login(admin.email)
    response = _invite(auth, email=admin.email)
    assert response.status_code == 302
    assert "already exists" in auth.client.get("/users").get_data(as_text=True)


def test_merchant_admin_deactivates_and_reactivates_their_staff(factory, auth, app):
    merchant = factory.merchant()
    admin = factory.user("merchant_admin", merchant)
    staff = factory.user("merchant_staff", merchant)
    auth.login(admin.email)
    auth.post(f"/users/{staff.id}/deactivate", csrf_page="/users")
    with app.app_context():
        assert get_session().get(User, staff.id).is_active_user is False
    auth.post(f"/users/{staff.id}/reactivate", csrf_page="/users")
    with app.app_context():
        assert get_session().get(User, staff.id).is_active_user is True


def test_deactivated_user_is_signed_out_of_an_open_session(factory, auth, app):
    merchant = factory.merchant()
    staff = factory.user("merchant_staff", merchant)
    auth.login(staff.email)
    assert auth.client.get("/").status_code == 200
    with app.app_context():
        db = get_session()
        db.get(User, staff.id).is_active_user = False
        db.commit()
    assert auth.client.get("/").status_code == 302


def test_admin_cannot_deactivate_themselves(factory, auth, app):
    admin = factory.user("merchant_admin")
    auth.login(admin.email)
    auth.post(f"/users/{admin.id}/deactivate", csrf_page="/users")
    assert "cannot deactivate your own account" in auth.client.get("/users").get_data(as_text=True)
    with app.app_context():
        assert get_session().get(User, admin.id).is_active_user is True


def test_merchant_admin_sees_only_their_own_users(factory, auth):
    admin = factory.user("merchant_admin")
    other = factory.user("merchant_admin")
    auth.login(admin.email)
    page = auth.client.get("/users").get_data(as_text=True)
    assert admin.email in page
    assert other.email not in page


def test_merchant_staff_may_not_manage_users_or_tokens(factory, auth):
    staff = factory.user("merchant_staff")
    auth.login(staff.email)
    for path in ("/users", "/tokens", "/audit", "/admin/merchants"):
        response = auth.client.get(path)
        assert response.status_code == 403, path
        assert "You do not have access to this page." in response.get_data(as_text=True)


def test_operator_creates_a_merchant_and_a_user_for_it(factory, auth, app):
    operator = factory.user("operator_admin")
    auth.login(operator.email)
    auth.post("/admin/merchants", {"slug": "new-shop", "name": "New Shop"}, csrf_page="/admin/merchants")
    assert "New Shop" in auth.client.get("/admin/merchants").get_data(as_text=True)
    with app.app_context():
        from portal.accounts.models import Merchant

        merchant_id = get_session().scalars(select(Merchant.id).where(Merchant.slug == "new-shop")).one()
    auth.post("/users", {"email": "boss@new-shop.example", "role": "merchant_admin", "merchant_id": merchant_id,
                         "password": "boss-pass-1", "full_name": ""}, csrf_page="/users")
    auth.logout()
    assert auth.login("boss@new-shop.example", "boss-pass-1").status_code == 302


def test_operator_cannot_create_a_merchant_user_without_a_merchant(factory, auth):
    operator = factory.user("operator_admin")
    auth.login(operator.email)
    auth.post("/users", {"email": "x@shop.example", "role": "merchant_staff", "merchant_id": 0,
                         "password": "some-pass-1"}, csrf_page="/users")
    assert "needs a merchant" in auth.client.get("/users").get_data(as_text=True)


def test_bad_merchant_slug_is_refused_with_a_message(factory, auth):
    operator = factory.user("operator_admin")
    auth.login(operator.email)
    auth.post("/admin/merchants", {"slug": "Bad Slug!", "name": "X"}, csrf_page="/admin/merchants")
    assert "is not valid" in auth.client.get("/admin/merchants").get_data(as_text=True)


def test_category_manager_sees_merchants_but_cannot_add_them(factory, auth):
    manager = factory.user("category_manager")
    auth.login(manager.email)
    assert auth.client.get("/admin/merchants").status_code == 200
    assert auth.post("/admin/merchants", {"slug": "nope", "name": "Nope"}, csrf_page="/admin/merchants").status_code == 403
