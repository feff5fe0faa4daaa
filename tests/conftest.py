"""Fixtures: a migrated database (SQLite, or PostgreSQL with PORTAL_TEST_DATABASE_URL), app, clients."""
from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import create_engine, text

from portal import create_app
from portal.db import Base, get_session
from portal.extensions import limiter
from tests.support.auth import AuthActions
from tests.support.factories import Factory


def _reset_postgres(url: str) -> None:
    """A clean schema for the run; an unreachable server fails the run here, it never skips."""
    engine = create_engine(url)
    try:
        with engine.begin() as conn:
            conn.execute(text("DROP SCHEMA IF EXISTS public CASCADE"))
            conn.execute(text("CREATE SCHEMA public"))
    finally:
        engine.dispose()


@pytest.fixture(scope="session", autouse=True)
def compiled_translations() -> None:
    """The Russian pages need the compiled catalog; `make` does this too, plain `pytest` may not have."""
    from babel.messages.frontend import CompileCatalog
    from setuptools import Distribution

    command = CompileCatalog(Distribution())
    command.initialize_options()
    command.directory = str(Path(__file__).resolve().parents[1] / "portal" / "translations")
    command.use_fuzzy = False
    command.finalize_options()
    command.run()


@pytest.fixture(scope="session")
def database_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    url = os.environ.get("PORTAL_TEST_DATABASE_URL")
    if url:
        _reset_postgres(url)
    else:
        url = f"sqlite:///{tmp_path_factory.mktemp('db') / 'test.sqlite3'}"
    app = create_app({"DATABASE_URL": url, "SECRET_KEY": "test", "ENV_NAME": "testing"})
    from portal.migrate import upgrade

    with app.app_context():
        upgrade(app)
    app.extensions["portal.db"].dispose()
    return url


@pytest.fixture
def storage_dir(tmp_path: Path) -> Path:
    path = tmp_path / "storage"
    path.mkdir()
    return path


@pytest.fixture
def app_config(database_url: str, storage_dir: Path) -> dict:
    """Tests change this dict before asking for ``app`` to try other settings."""
    return {
        "ENV_NAME": "testing",
        "TESTING": True,
        "SECRET_KEY": "test-secret",
        "DATABASE_URL": database_url,
        "STORAGE_URL": storage_dir.as_uri(),
        "PIM_EXPORT_URL": (storage_dir.parent / "pim-export").as_uri(),
        "BROKER_URL": None,
        "LOGIN_RATE_LIMIT": "1000 per minute",
        "RATELIMIT_STORAGE_URI": "memory://",
        "SERVER_NAME": "portal.test",
    }


@pytest.fixture
def app(app_config: dict) -> Iterator[Flask]:
    app = create_app(app_config)
    yield app
    from portal.jobs.services import get_runner

    get_runner(app).wait(timeout=30)
    with app.app_context():
        db = get_session()
        for table in reversed(Base.metadata.sorted_tables):
            db.execute(table.delete())
        db.commit()
    app.extensions["portal.db"].dispose()
    limiter.reset()


@pytest.fixture
def make_app() -> Iterator:
    """Extra apps a test builds with other settings; their connection pools are closed afterwards."""
    made: list[Flask] = []

    def make(config: dict) -> Flask:
        made.append(create_app(config))
        return made[-1]

    yield make
    for extra in made:
        extra.extensions["portal.db"].dispose()


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


@pytest.fixture
def runner(app: Flask):
    return app.test_cli_runner()


@pytest.fixture
def factory(app: Flask) -> Factory:
    return Factory(app)


@pytest.fixture
def auth(client: FlaskClient) -> AuthActions:
    return AuthActions(client)
