"""The API base: bearer tokens, the JSON error format, the OpenAPI document, /healthz."""
from __future__ import annotations

from flask import Flask

from portal.api import api_blueprint, operator_only
from portal.extensions import api as portal_api


def _bearer(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}


def test_merchant_token_identifies_its_merchant(factory, client):
    merchant = factory.merchant(slug="acme")
    _, secret = factory.token(merchant)
    response = client.get("/api/v1/me", headers=_bearer(secret))
    assert response.status_code == 200
    assert response.json["kind"] == "merchant"
    assert response.json["merchant"] == "acme"


def test_operator_token_has_no_merchant(factory, client):
    _, secret = factory.token(None)
    assert client.get("/api/v1/me", headers=_bearer(secret)).json == {
        "kind": "operator", "merchant": None, "token_id": client.get("/api/v1/me", headers=_bearer(secret)).json["token_id"]}


def test_missing_token_answers_401_in_the_json_error_format(client):
    response = client.get("/api/v1/me")
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"].startswith("Bearer")
    error = response.json["error"]
    assert set(error) == {"code", "message", "details"}
    assert error["code"] == "missing_token"


def test_unknown_token_answers_401(client):
    response = client.get("/api/v1/me", headers=_bearer("mp_not-a-token"))
    assert response.status_code == 401
    assert response.json["error"]["code"] == "invalid_token"


def test_session_cookie_does_not_open_the_api(factory, auth):
    admin = factory.user("merchant_admin")
    auth.login(admin.email)
    assert auth.client.get("/api/v1/me").status_code == 401


def test_unknown_api_route_answers_json_404(factory, client):
    _, secret = factory.token(None)
    response = client.get("/api/v1/nothing-here", headers=_bearer(secret))
    assert response.status_code == 404
    assert response.json["error"]["code"] == "not_found"


def test_wrong_method_answers_json_405(factory, client):
    _, secret = factory.token(None)
    response = client.post("/api/v1/me", headers=_bearer(secret))
    assert response.status_code == 405
    assert response.json["error"]["code"] == "method_not_allowed"


def test_openapi_document_is_generated_from_the_routes(client):
    spec = client.get("/api/v1/openapi.json").json
    assert spec["openapi"].startswith("3.")
    assert "/api/v1/me" in spec["paths"]
    assert "/api/v1/jobs/{job_id}" in spec["paths"]
    assert spec["components"]["securitySchemes"]["bearerAuth"] == {"type": "http", "scheme": "bearer"}
    assert "error" in spec["components"]["schemas"]["Error"]["properties"]


def test_healthz_answers_when_the_database_does(client):
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json["database"] == "ok"


def test_healthz_answers_503_when_the_database_does_not(app_config, tmp_path, make_app):
    app = make_app({**app_config, "DATABASE_URL": f"sqlite:///{tmp_path}/missing/dir/db.sqlite3", "CHECK_SCHEMA": False})
    response = app.test_client().get("/healthz")
    assert response.status_code == 503
    assert response.json["status"] == "error"


def test_operator_only_routes_refuse_merchant_tokens(app_config, factory, make_app):
    app: Flask = make_app(app_config)
    blp = api_blueprint("probe", __name__, url_prefix="/probe")

    @blp.route("/")
    @operator_only
    def probe():
        return {"ok": True}

    portal_api.register_blueprint(blp)
    merchant = factory.merchant()
    _, merchant_secret = factory.token(merchant)
    _, operator_secret = factory.token(None)
    client = app.test_client()
    refused = client.get("/api/v1/probe/", headers=_bearer(merchant_secret))
    assert refused.status_code == 403
    assert refused.json["error"]["code"] == "operator_token_required"
    assert client.get("/api/v1/probe/", headers=_bearer(operator_secret)).json == {"ok": True}
