"""The `portal` commands with --json: merchants, users, tokens and the demo seed."""
from __future__ import annotations

import json

from sqlalchemy import func, select

from portal.accounts.models import Merchant
from portal.db import get_session
from portal.demo import DEMO_PASSWORD
from portal.orders.machine import STATES
from portal.orders.models import Order


def _json(result) -> dict:
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_merchants_users_and_tokens_are_created_from_the_command_line(runner, client):
    merchant = _json(runner.invoke(args=["merchants", "create", "--slug", "acme", "--name", "Acme", "--json"]))
    assert merchant["slug"] == "acme"
    user = _json(runner.invoke(args=["users", "create", "--email", "Boss@Acme.example", "--password", "boss-pass-1",
                                     "--role", "merchant_admin", "--merchant", "acme", "--json"]))
    assert user == {"id": user["id"], "email": "boss@acme.example", "role": "merchant_admin", "merchant": "acme"}
    token = _json(runner.invoke(args=["tokens", "create", "--merchant", "acme", "--name", "ERP", "--json"]))
    assert token["token"].startswith("mp_")
    me = client.get("/api/v1/me", headers={"Authorization": f"Bearer {token['token']}"}).json
    assert me["merchant"] == "acme"


def test_operator_token_from_the_command_line(runner, client):
    token = _json(runner.invoke(args=["tokens", "create", "--operator", "--json"]))
    assert client.get("/api/v1/me", headers={"Authorization": f"Bearer {token['token']}"}).json["kind"] == "operator"


def test_token_needs_exactly_one_of_merchant_or_operator(runner):
    result = runner.invoke(args=["tokens", "create"])
    assert result.exit_code != 0
    assert "exactly one of --merchant SLUG or --operator" in result.output


def test_bad_input_gives_a_json_error_and_exit_code_1(runner):
    result = runner.invoke(args=["users", "create", "--email", "x@y.example", "--password", "long-enough-1",
                                 "--role", "merchant_staff", "--merchant", "ghost", "--json"])
    assert result.exit_code == 1
    assert json.loads(result.stdout)["error"]["message"] == "There is no merchant with the slug ghost."


def test_short_password_is_refused_with_a_message(runner):
    result = runner.invoke(args=["users", "create", "--email", "op@x.example", "--password", "short", "--role", "operator_admin"])
    assert result.exit_code == 1
    assert "at least 8 characters" in result.output


def test_duplicate_merchant_slug_is_refused(runner):
    runner.invoke(args=["merchants", "create", "--slug", "acme", "--name", "Acme"])
    result = runner.invoke(args=["merchants", "create", "--slug", "acme", "--name", "Acme 2"])
    assert result.exit_code == 1
    assert "already exists" in result.output


def test_demo_seed_creates_a_marketplace_whose_logins_work(runner, auth):
    seeded = _json(runner.invoke(args=["demo", "seed", "--merchants", "2", "--json"]))
    assert seeded["created"] is True
    roles = [u["role"] for u in seeded["users"]]
    assert roles.count("operator_admin") == 1 and roles.count("category_manager") == 1
    assert roles.count("merchant_admin") == 2 and roles.count("merchant_staff") == 2
    for login in seeded["users"]:
        assert auth.login(login["email"], DEMO_PASSWORD).status_code == 302, login
        auth.logout()


def test_demo_seed_twice_creates_nothing_the_second_time(runner, app):
    _json(runner.invoke(args=["demo", "seed", "--json"]))
    orders = _order_count(app)
    again = _json(runner.invoke(args=["demo", "seed", "--json"]))
    assert again["created"] is False
    assert len(again["users"]) == 2 + 2 * 3
    assert orders == 3 * 120 and _order_count(app) == orders


def test_demo_seed_gives_each_merchant_orders_in_every_state(runner, app):
    _json(runner.invoke(args=["demo", "seed", "--merchants", "2", "--products", "30", "--orders", "25", "--json"]))
    with app.app_context():
        rows = get_session().execute(select(Merchant.slug, Order.status).join(Order, Order.merchant_id == Merchant.id)
                                     .distinct()).tuples().all()
    states: dict[str, set[str]] = {}
    for slug, status in rows:
        states.setdefault(slug, set()).add(status)
    assert states == {"technomir": set(STATES), "uyut-home": set(STATES)}
    assert _order_count(app) == 2 * 25


def test_demo_seed_with_no_orders_makes_none(runner, app):
    seeded = _json(runner.invoke(args=["demo", "seed", "--merchants", "1", "--orders", "0", "--json"]))
    assert seeded["created"] is True
    assert _order_count(app) == 0


def _order_count(app) -> int:
    with app.app_context():
        return get_session().scalar(select(func.count()).select_from(Order))


def test_demo_seed_if_empty_leaves_a_used_database_alone(runner):
    runner.invoke(args=["merchants", "create", "--slug", "real-shop", "--name", "Real"])
    result = _json(runner.invoke(args=["demo", "seed", "--if-empty", "--json"]))
    assert result == {"created": False, "users": []}


def test_catalog_import_prints_the_upload_counts_and_first_errors_as_json(runner, tmp_path):
    runner.invoke(args=["merchants", "create", "--slug", "acme", "--name", "Acme"])
    path = tmp_path / "catalog.csv"
    path.write_text("Артикул;Наименование;Цена\nA-1;Футболка;1 299,00\nA-2;Шорты;дорого\n", encoding="cp1251")
    result = _json(runner.invoke(args=["catalog", "import", "--merchant", "acme", "--json", str(path)]))
    assert {k: result[k] for k in ("status", "rows", "created", "updated", "unchanged", "rejected", "warnings")} == {
        "status": "applied", "rows": 2, "created": 1, "updated": 0, "unchanged": 0, "rejected": 1, "warnings": 0}
    assert result["errors"] == [{"row": 3, "column": "Цена", "code": "price_invalid",
                                 "message": "дорого is not a price: write it like 1299.00 or 1 299,00."}]
    again = _json(runner.invoke(args=["catalog", "import", "--merchant", "acme", "--dry-run", "--json", str(path)]))
    assert (again["status"], again["unchanged"]) == ("previewed", 1)


def test_catalog_import_of_an_unreadable_file_fails_with_one_error_and_exit_code_1(runner, tmp_path):
    runner.invoke(args=["merchants", "create", "--slug", "acme", "--name", "Acme"])
    path = tmp_path / "empty.csv"
    path.write_bytes(b"")
    result = runner.invoke(args=["catalog", "import", "--merchant", "acme", "--json", str(path)])
    assert result.exit_code == 1
    body = json.loads(result.stdout)
    assert body["status"] == "failed" and len(body["errors"]) == 1 and body["errors"][0]["code"] == "empty_file"
