"""Alembic's entry point: runs the migrations on the connection that ``schema.migrate`` hands
over in ``config.attributes["connection"]``, inside the transaction it already holds."""

from __future__ import annotations

from alembic import context
from sqlalchemy.engine import Connection

from service.store import tables
from service.store.engine import make_engines


def run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=tables.meta,
        # SQLite alters most of a table only by copying it into a new one.
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    # A no-op when the caller began the transaction: it then commits everything at once.
    with context.begin_transaction():
        context.run_migrations()


connection = context.config.attributes.get("connection")
if connection is not None:
    run(connection)
else:
    # Without a caller (a developer's `alembic` command line): the URL from its config.
    url = context.config.get_main_option("sqlalchemy.url")
    if not url:
        raise RuntimeError("no connection in config.attributes and no sqlalchemy.url set")
    _, engine = make_engines(url)
    try:
        with engine.connect() as conn:
            run(conn)
    finally:
        engine.dispose()
