"""Migrations: one head, models and migrations agree, and an out-of-date schema stops the portal."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

import portal.models  # noqa: F401
from portal.db import Base, get_database
from portal.migrate import head_revisions

ROOT = Path(__file__).resolve().parents[2]


def test_alembic_has_exactly_one_head():
    heads = head_revisions()
    assert len(heads) == 1, f"Alembic has {len(heads)} heads {heads}: merge them with a new migration"


def test_models_and_migrations_describe_the_same_schema(app):
    """A model changed without a migration shows up here as a difference."""
    with get_database(app).engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True}), Base.metadata)
    assert diff == []


def test_portal_refuses_to_serve_an_empty_database_and_says_what_to_run(app_config, tmp_path, make_app):
    app = make_app({**app_config, "DATABASE_URL": f"sqlite:///{tmp_path / 'empty.sqlite3'}"})
    client = app.test_client()
    page = client.get("/login")
    assert page.status_code == 503
    assert "portal db upgrade" in page.get_data(as_text=True)
    api = client.get("/api/v1/me")
    assert api.status_code == 503
    assert api.json["error"]["code"] == "schema_out_of_date"


def test_portal_refuses_an_older_revision(app_config, tmp_path, make_app):
    url = f"sqlite:///{tmp_path / 'old.sqlite3'}"
    app = make_app({**app_config, "DATABASE_URL": url})
    with get_database(app).engine.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE alembic_version (version_num VARCHAR(32) NOT NULL)")
        conn.exec_driver_sql("INSERT INTO alembic_version VALUES ('0000_older')")
    response = app.test_client().get("/login")
    assert response.status_code == 503
    assert "out of date" in response.get_data(as_text=True)


def _run(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("PORTAL_")}
    full_env.update(env)
    return subprocess.run(args, cwd=ROOT, env=full_env, capture_output=True, text=True, timeout=120)


def test_wsgi_app_refuses_to_start_on_an_out_of_date_schema(tmp_path):
    result = _run([sys.executable, "-c", "import wsgi"],
                  {"PORTAL_DATABASE_URL": f"sqlite:///{tmp_path / 'x.sqlite3'}", "PORTAL_SECRET_KEY": "k"})
    assert result.returncode == 3
    assert "portal db upgrade" in result.stderr


def test_production_without_a_secret_key_refuses_to_start_with_a_clear_message(tmp_path):
    result = _run([sys.executable, "-c", "import wsgi"],
                  {"PORTAL_ENV": "production", "PORTAL_DATABASE_URL": f"sqlite:///{tmp_path / 'x.sqlite3'}"})
    assert result.returncode != 0
    assert "PORTAL_SECRET_KEY is not set" in result.stderr


def test_db_upgrade_command_migrates_a_new_database(tmp_path):
    env = {"PORTAL_DATABASE_URL": f"sqlite:///{tmp_path / 'new.sqlite3'}", "PORTAL_SECRET_KEY": "k"}
    portal = str(Path(sys.executable).parent / "portal")
    assert _run([portal, "db", "upgrade"], env).returncode == 0
    current = _run([portal, "db", "current"], env)
    assert "Up to date." in current.stdout


def test_the_kpi_revision_checks_the_tracking_numbers_of_orders_shipped_before_it(app_config, tmp_path, make_app):
    """Orders shipped before 0007 get their tracking check from the migration (the KPI counts it)."""
    from portal.migrate import upgrade

    app = make_app({**app_config, "DATABASE_URL": f"sqlite:///{tmp_path / 'kpi.sqlite3'}"})
    with app.app_context():
        upgrade(app, "0006")
    with get_database(app).engine.begin() as conn:
        conn.exec_driver_sql(
            "INSERT INTO merchants (id, slug, name, is_active, created_at) VALUES (1, 'm', 'M', 1, '2026-01-01')")
        conn.exec_driver_sql(
            "INSERT INTO carriers (code, name, tracking_patterns, tracking_url, pickup_days, cutoff_time, timezone, "
            "max_weight_grams, is_active, created_at, updated_at) VALUES ('cdek', 'СДЭК', '[\"\\\\d{10}\"]', '', "
            "'[]', '16:00', 'Europe/Moscow', 30000, 1, '2026-01-01', '2026-01-01')")
        for n, (carrier, number, shipped) in enumerate([("cdek", "1234567890", "2026-01-02"),
                                                        ("cdek", "12345", "2026-01-02"),
                                                        ("gone", "1234567890", "2026-01-02"),
                                                        ("cdek", None, None)], start=1):
            conn.exec_driver_sql(
                "INSERT INTO orders (id, merchant_id, order_number, request_hash, status, currency, total, units, "
                "created_at, acceptance_deadline, ship_by, received_at, updated_at, shipped_at, carrier, "
                "tracking_number, buyer_name, buyer_phone, country, city, postal_code, line1) VALUES "
                f"({n}, 1, 'N{n}', 'h', 'shipped', 'RUB', 1, 1, '2026-01-01', '2026-01-02', '2026-01-03', "
                "'2026-01-01', '2026-01-01', ?, ?, ?, 'B', '', 'RU', 'C', '', 'L')", (shipped, carrier, number))
    with app.app_context():
        upgrade(app)
    with get_database(app).engine.connect() as conn:
        checked = dict(conn.exec_driver_sql("SELECT id, tracking_valid FROM orders").all())
    assert checked == {1: 1, 2: 0, 3: 0, 4: None}
