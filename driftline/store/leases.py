"""Named leases (owner: whoever names one; today the drift monitor): one holder at a time.

The same compare-and-set as the controller's lease: a holder takes a free, expired or own lease
and renews it before it expires; a replica that crashed loses it after its time to live.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from driftline.store.retry import RetryPolicy
from driftline.store.tables import leases


class LeaseStore:
    """Takes, renews and releases named leases; every call retries lost connections."""

    def __init__(self, engine: sa.Engine, retry: RetryPolicy) -> None:
        self.engine = engine
        self.retry = retry

    def acquire(self, name: str, holder: str, *, ttl_s: float, now: datetime) -> bool:
        """Take or renew lease `name` for `holder` until `now + ttl_s`; whether it holds it."""
        dialect = postgresql if self.engine.dialect.name == "postgresql" else sqlite
        create = dialect.insert(leases).values(name=name).on_conflict_do_nothing()
        c = leases.c
        take = (
            sa.update(leases)
            .where(c.name == name)
            .where(sa.or_(c.holder.is_(None), c.holder == holder, c.expires_at < now))
            .values(holder=holder, expires_at=now + timedelta(seconds=ttl_s))
        )

        def run() -> bool:
            with self.engine.begin() as conn:
                conn.execute(create)
                return conn.execute(take).rowcount == 1

        return self.retry.run(run, f"take the lease {name}")

    def release(self, name: str, holder: str) -> None:
        """Give up lease `name` if `holder` has it, so a standby need not wait it out."""
        c = leases.c
        release = (
            sa.update(leases)
            .where(c.name == name, c.holder == holder)
            .values(holder=None, expires_at=None)
        )

        def run() -> None:
            with self.engine.begin() as conn:
                conn.execute(release)

        self.retry.run(run, f"release the lease {name}")

    def holder(self, name: str) -> str | None:
        """Who holds lease `name` (expired or not), or None."""
        query = sa.select(leases.c.holder).where(leases.c.name == name)

        def run() -> str | None:
            with self.engine.connect() as conn:
                return conn.execute(query).scalar_one_or_none()

        return self.retry.run(run, f"read the lease {name}")
