"""Store engines: pooled psycopg 3 for PostgreSQL, WAL-mode SQLite for the embedded default."""

from __future__ import annotations

from typing import Any

import orjson
import sqlalchemy as sa

# JSON columns carry whole prediction vectors: orjson encodes them several times faster than
# the json module, on the writer thread that shares the ingress's interpreter lock.
_JSON_OPTIONS = orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS


def dumps_json(value: Any) -> str:
    """JSON text for a JSON column (non-finite floats become null, as PostgreSQL requires)."""
    return orjson.dumps(value, option=_JSON_OPTIONS).decode()


def create_engine(url: str, *, pool_size: int = 5) -> sa.Engine:
    """An engine for `url` that checks pooled connections before use."""
    url = normalise_url(url)
    if url.startswith("sqlite"):
        engine = sa.create_engine(url, connect_args={"timeout": 30}, json_serializer=dumps_json)
        sa.event.listen(engine, "connect", _sqlite_pragmas)
        return engine
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
