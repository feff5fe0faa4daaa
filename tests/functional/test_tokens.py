"""API tokens: created and shown once, stored hashed, revocable, expiring."""
from __future__ import annotations

import re
from datetime import timedelta

from sqlalchemy import select

from portal.accounts.models import ApiToken
from portal.audit import AuditEvent
from portal.db import get_session, utcnow


def _created_secret(html: str) -> str:
    match = re.search(r'id="new-token" value="(mp_[^"]+)"', html)
    assert match, "the new token is not on the page"
    return match.group(1)


def test_merchant_admin_creates_a_token_shown_once_and_stored_hashed(factory, auth, app):
    admin = factory.user("merchant_admin")
    auth.login(admin.email)
    response = auth.post("/tokens", {"name": "ERP"}, csrf_page="/tokens")
    secret = _created_secret(response.get_data(as_text=True))
    listing = auth.client.get("/tokens").get_data(as_text=True)
    assert secret not in listing
    assert secret[:10] in listing
    with app.app_context():
        stored = get_session().scalars(select(ApiToken)).one()
        assert stored.token_hash != secret and secret not in stored.token_hash
        assert stored.merchant_id == admin.merchant_id
    me = auth.client.get("/api/v1/me", headers={"Authorization": f"Bearer {secret}"})
    assert me.status_code == 200


def test_revoked_token_no_longer_opens_the_api_and_both_steps_are_audited(factory, auth, app):
    admin = factory.user("merchant_admin")
    auth.login(admin.email)
    secret = _created_secret(auth.post("/tokens", {"name": "ERP"}, csrf_page="/tokens").get_data(as_text=True))
    with app.app_context():
        token_id = get_session().scalars(select(ApiToken.id)).one()
    auth.post(f"/tokens/{token_id}/revoke", csrf_page="/tokens")
    response = auth.client.get("/api/v1/me", headers={"Authorization": f"Bearer {secret}"})
    assert response.status_code == 401
    assert response.json["error"]["message"] == "The API token has been revoked."
    with app.app_context():
        actions = set(get_session().scalars(select(AuditEvent.action)))
    assert {"token.created", "token.revoked"} <= actions


def test_token_with_an_expiry_stops_working_after_it(factory, auth, app, client):
    admin = factory.user("merchant_admin")
    auth.login(admin.email)
    secret = _created_secret(auth.post("/tokens", {"name": "Short", "expires_in_days": "1"}, csrf_page="/tokens").get_data(as_text=True))
    assert client.get("/api/v1/me", headers={"Authorization": f"Bearer {secret}"}).status_code == 200
    with app.app_context():
        db = get_session()
        db.scalars(select(ApiToken)).one().expires_at = utcnow() - timedelta(minutes=1)
        db.commit()
    response = client.get("/api/v1/me", headers={"Authorization": f"Bearer {secret}"})
    assert response.status_code == 401
    assert response.json["error"]["code"] == "invalid_token"
    assert "expired" in response.json["error"]["message"]


def test_operator_creates_an_operator_token(factory, auth, client):
    operator = factory.user("operator_admin")
    auth.login(operator.email)
    secret = _created_secret(auth.post("/tokens", {"name": "Order system", "merchant_id": "0"}, csrf_page="/tokens").get_data(as_text=True))
    me = client.get("/api/v1/me", headers={"Authorization": f"Bearer {secret}"}).json
    assert me["kind"] == "operator" and me["merchant"] is None


def test_merchant_admin_cannot_create_a_token_for_another_merchant(factory, auth, client):
    admin = factory.user("merchant_admin")
    other = factory.merchant()
    auth.login(admin.email)
    secret = _created_secret(auth.post("/tokens", {"name": "Sneaky", "merchant_id": str(other.id)}, csrf_page="/tokens").get_data(as_text=True))
    me = client.get("/api/v1/me", headers={"Authorization": f"Bearer {secret}"}).json
    assert me["kind"] == "merchant"
    assert me["token_id"] is not None
    with auth.client.application.app_context():
        token = get_session().get(ApiToken, me["token_id"])
        assert token.merchant_id == admin.merchant_id


def test_token_form_without_a_name_is_refused_with_a_message(factory, auth):
    admin = factory.user("merchant_admin")
    auth.login(admin.email)
    response = auth.post("/tokens", {"name": ""}, csrf_page="/tokens", follow_redirects=True)
    assert "Check the token form" in response.get_data(as_text=True)
