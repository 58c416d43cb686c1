"""Day partitions of the predictions table on PostgreSQL: created ahead, dropped once old.

There `predictions` is `PARTITION BY RANGE (day)`, `day` being the UTC date of `created_at`
(migration 0008): one partition per day, `predictions_pYYYYMMDD`, and `predictions_default` for a
row whose day has none yet, so an insert never fails. Retention drops whole partitions instead of
deleting their rows. SQLite keeps one plain table (with `day`) and none of this applies.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable
from datetime import UTC, date, datetime, time, timedelta

import sqlalchemy as sa

from driftline.store.retry import store_unreachable

log = logging.getLogger(__name__)

PARENT = "predictions"
DEFAULT = "predictions_default"
DAY = timedelta(days=1)
_NAME = re.compile(r"^predictions_p(\d{8})$")
# SQL here is built with f-strings (hence `noqa: S608`): names and bounds come from dates, never
# from input, and DDL takes no bound parameters.
# Processes creating or dropping partitions at once (ingress replicas, the monitor) take turns.
_LOCK = sa.text("SELECT pg_advisory_xact_lock(hashtext('driftline: predictions partitions'))")


def partition_name(day: date) -> str:
    """The partition that holds the rows of UTC `day`."""
    return f"predictions_p{day:%Y%m%d}"


def is_partition(table_name: str) -> bool:
    """Whether `table_name` is one of the predictions table's partitions (not in the metadata)."""
    return table_name == DEFAULT or _NAME.match(table_name) is not None


def day_start(day: date) -> datetime:
    """Midnight UTC at the start of `day`."""
    return datetime.combine(day, time(), tzinfo=UTC)


def utc_day(moment: datetime) -> date:
    """The UTC date of `moment`, the `day` its prediction row is kept under (a naive `moment` is
    refused when its row is written, by the timestamp column)."""
    return moment.astimezone(UTC).date() if moment.tzinfo is not None else moment.date()


def bound(day: date) -> str:
    """`day` as a date literal for partition bounds (DDL takes no parameters)."""
    return f"'{day.isoformat()}'"


def partitioned(conn: sa.Connection) -> bool:
    """Whether this store's predictions table is partitioned (PostgreSQL at 0008 or later)."""
    if conn.dialect.name != "postgresql":
        return False
    kind = conn.execute(
        sa.text("SELECT relkind FROM pg_class WHERE oid = to_regclass(:name)"), {"name": PARENT}
    ).scalar()
    return kind == "p"


def day_partitions(conn: sa.Connection) -> dict[date, str]:
    """The day partitions that exist, by day."""
    names = conn.execute(
        sa.text(
            "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
            "WHERE i.inhparent = to_regclass(:name)"
        ),
        {"name": PARENT},
    ).scalars()
    found = (_NAME.match(name) for name in names)
    return {date.fromisoformat(m[1]): m[0] for m in found if m}


def ensure_days(conn: sa.Connection, days: Iterable[date]) -> list[str]:
    """Create the partitions of `days` that are missing; the names created.

    Rows of such a day already in the default partition move into the new one, since
    PostgreSQL refuses a partition whose rows the default partition holds.
    """
    conn.execute(_LOCK)
    missing = sorted(set(days) - day_partitions(conn).keys())
    for day in missing:
        _attach_day(conn, day)
    return [partition_name(day) for day in missing]


def _attach_day(conn: sa.Connection, day: date) -> None:
    # A new table attached (rather than CREATE TABLE ... PARTITION OF) holds only a SHARE UPDATE
    # EXCLUSIVE lock on the parent, so inserts into other days go on meanwhile. The default
    # partition is locked first so no row of this day lands there between the move and the check.
    name, start, end = partition_name(day), bound(day), bound(day + DAY)
    conn.execute(sa.text(f"LOCK TABLE {DEFAULT} IN ACCESS EXCLUSIVE MODE"))
    conn.execute(sa.text(f"CREATE TABLE {name} (LIKE {PARENT} INCLUDING DEFAULTS)"))
    conn.execute(
        sa.text(
            f"WITH moved AS (DELETE FROM {DEFAULT} WHERE day = {start} "  # noqa: S608
            f"RETURNING *) INSERT INTO {name} SELECT * FROM moved"
        )
    )
    conn.execute(
        sa.text(
            f"ALTER TABLE {PARENT} ATTACH PARTITION {name} FOR VALUES FROM ({start}) TO ({end})"
        )
    )


def drop_before(conn: sa.Connection, limit: datetime) -> tuple[int, list[str]]:
    """Drop the day partitions that end at or before `limit`: rows they held, names dropped."""
    conn.execute(_LOCK)
    rows, dropped = 0, []
    for day, name in sorted(day_partitions(conn).items()):
        if day_start(day) + DAY > limit:
            continue
        # Counted first so that `driftline db prune` reports rows, as on SQLite.
        count = sa.text(f"SELECT count(*) FROM {name}")  # noqa: S608
        rows += int(conn.execute(count).scalar_one())
        conn.execute(sa.text(f"DROP TABLE {name}"))
        dropped.append(name)
    return rows, dropped


class PartitionsAhead:
    """Makes sure today's and tomorrow's partitions exist, checked at most once a day per process,
    so rows reach their day's partition rather than the default one."""

    def __init__(self) -> None:
        self._through: date | None = None

    def ensure(self, engine: sa.Engine, now: datetime) -> None:
        """Create the partitions of `now`'s UTC day and the next, unless done already today."""
        today = utc_day(now)
        if self._through is not None and today < self._through:
            return
        try:
            with engine.begin() as conn:
                if partitioned(conn):
                    ensure_days(conn, (today, today + DAY))
        except sa.exc.DBAPIError as error:
            if store_unreachable(error):
                raise
            # A role without CREATE rights, say: rows go to the default partition, which prune
            # also empties, and the daily pass retries with its own rights.
            log.warning("day partitions not created ahead", exc_info=True)
        self._through = today + DAY
