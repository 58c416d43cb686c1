"""Store engines: pooled psycopg 3 for PostgreSQL, WAL-mode SQLite for the embedded default,
and the dialect's idempotent inserts every owner's tables share."""

from __future__ import annotations

from typing import Any

import orjson
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

# JSON columns carry whole prediction vectors: orjson encodes them several times faster than
# the json module, on the writer thread that shares the ingress's interpreter lock.
_JSON_OPTIONS = orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS


def dumps_json(value: Any) -> str:
    """JSON text for a JSON column (non-finite floats become null, as PostgreSQL requires)."""
    return orjson.dumps(value, option=_JSON_OPTIONS).decode()


def create_engine(url: str, *, pool_size: int = 5) -> sa.Engine:
    """An engine for `url` that checks pooled connections before use; `pool_size=0` keeps no
    idle connection (each use connects and closes)."""
    url = normalise_url(url)
    if url.startswith("sqlite"):
        engine = sa.create_engine(url, connect_args={"timeout": 30}, json_serializer=dumps_json)
        sa.event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    if pool_size == 0:
        return sa.create_engine(
            url,
            poolclass=sa.NullPool,
            connect_args={"connect_timeout": 5},
            json_serializer=dumps_json,
        )
    return sa.create_engine(
        url,
        pool_size=pool_size,
        max_overflow=pool_size,
        pool_pre_ping=True,
        pool_recycle=1800,
        connect_args={"connect_timeout": 5},
        json_serializer=dumps_json,
    )


def normalise_url(url: str) -> str:
    """Route plain ``postgresql://`` URLs to psycopg 3, the only driver we ship."""
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    # Serving, the monitor and the controller write from separate processes: WAL lets readers
    # proceed during writes, and the busy timeout turns lock contention into a short wait.
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


def insert_ignoring_duplicates(
    conn: sa.Connection, table: sa.Table, rows: list[dict[str, Any]], keys: tuple[str, ...]
) -> set[tuple[Any, ...]]:
    """Insert `rows`, skipping those whose `keys` are stored; the keys of the rows written."""
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    statement = (
        dialect.insert(table)
        .on_conflict_do_nothing(index_elements=list(keys))
        .returning(*(table.c[k] for k in keys))
    )
    return {tuple(row) for row in conn.execute(statement, rows).all()}


def upsert(table: sa.Table, row: dict[str, Any], key: str, dialect_name: str) -> sa.Insert:
    """An insert of `row` that updates every other column when `key` is already stored."""
    dialect = postgresql if dialect_name == "postgresql" else sqlite
    statement = dialect.insert(table).values(row)
    upserting: sa.Insert = statement.on_conflict_do_update(
        index_elements=[key], set_={k: statement.excluded[k] for k in row if k != key}
    )
    return upserting
