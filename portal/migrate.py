"""Alembic, wrapped: the ``portal db`` commands and the schema check at start-up."""
from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from flask import Flask

from portal.db import get_database

MIGRATIONS_DIR = Path(__file__).resolve().parent.parent / "migrations"


class SchemaOutOfDate(RuntimeError):
    pass


def alembic_config(app: Flask) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.attributes["engine"] = get_database(app).engine
    return config


def head_revisions() -> tuple[str, ...]:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    return tuple(ScriptDirectory.from_config(config).get_heads())


def current_revisions(app: Flask) -> tuple[str, ...]:
    with get_database(app).engine.connect() as conn:
        return tuple(MigrationContext.configure(conn).get_current_heads())


def schema_problem(app: Flask) -> str | None:
    """None when the database is at the code's head revision, else what is wrong and what to run."""
    current, heads = set(current_revisions(app)), set(head_revisions())
    if current == heads:
        return None
    if not current:
        return "The database has no schema yet. Run `portal db upgrade`."
    return (
        f"The database schema is out of date (at {', '.join(sorted(current))}, the code needs "
        f"{', '.join(sorted(heads))}). Run `portal db upgrade`."
    )


def check_schema(app: Flask) -> None:
    problem = schema_problem(app)
    if problem:
        raise SchemaOutOfDate(problem)


def upgrade(app: Flask, revision: str = "heads") -> None:
    command.upgrade(alembic_config(app), revision)


def downgrade(app: Flask, revision: str) -> None:
    command.downgrade(alembic_config(app), revision)


def revision(app: Flask, message: str, autogenerate: bool = True) -> None:
    command.revision(alembic_config(app), message=message, autogenerate=autogenerate)
