"""Alembic environment: runs on the portal app's engine (``portal db upgrade``)."""
from __future__ import annotations

from alembic import context

import portal.models  # noqa: F401  (fills Base.metadata with every block's tables)
from portal.db import Base, UTCDateTime

def render_item(type_: str, obj: object, autogen_context: object) -> str | bool:
    """Migrations spell portal.db.UTCDateTime as a plain DateTime, so they never import app code."""
    if type_ == "type" and isinstance(obj, UTCDateTime):
        return "sa.DateTime(timezone=True)"
    return False


config = context.config
engine = config.attributes["engine"]

with engine.connect() as connection:
    context.configure(
        connection=connection,
        target_metadata=Base.metadata,
        render_as_batch=connection.dialect.name == "sqlite",  # SQLite alters tables by copying them
        compare_type=True,
        render_item=render_item,
    )
    with context.begin_transaction():
        context.run_migrations()
