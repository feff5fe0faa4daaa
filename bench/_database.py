"""The benchmarks' PostgreSQL database: made when missing, its public schema recreated for every run."""
from __future__ import annotations

from sqlalchemy import create_engine, make_url, text


def create_database_if_missing(url: str) -> None:
    """A fresh machine has no bench database: make it, through the server's maintenance database."""
    target = make_url(url)
    admin = create_engine(target.set(database="postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        if conn.scalar(text("SELECT 1 FROM pg_database WHERE datname = :name"), {"name": target.database}) is None:
            conn.execute(text(f'CREATE DATABASE "{target.database}"'))
    admin.dispose()


def fresh_postgres(url: str) -> None:
    """Make the database if needed and empty it: its public schema is dropped and created again."""
    create_database_if_missing(url)
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(text("DROP SCHEMA IF EXISTS public CASCADE"))
        conn.execute(text("CREATE SCHEMA public"))
    engine.dispose()
