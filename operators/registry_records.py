"""The registry as the controller sees it: the champion alias and what each job registered."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from driftline.config import Settings
from driftline.contracts import CHAMPION
from operators.actions import SetChampion

JOB_TAG = "driftline.job_id"
# Registration finishes a moment before the job reports its end.
_SLACK = timedelta(seconds=30)


class RegistryRecords:
    """Champion alias reads and writes, and job-to-version lookups, through driftline.registry."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._registry: Any = None

    @property
    def registry(self) -> Any:
        """The model's registry client, created on first use (MLflow imports slowly)."""
        if self._registry is None:
            from driftline.registry import Registry  # noqa: PLC0415

            self._registry = Registry(self.settings)
        return self._registry

    def get(self) -> str | None:
        """The version the champion alias points at."""
        version = self.registry.alias_version(CHAMPION)
        return None if version is None else str(version)

    def set(self, action: SetChampion) -> None:
        """Move the champion alias and tag the version with why."""
        self.registry.set_alias(CHAMPION, action.version)
        key = "driftline.restored_by" if action.rollback else "driftline.promoted_by"
        self.registry.set_version_tag(action.version, key, action.rollout_id or "controller")

    def version_for(
        self, job_id: str, started: datetime | None, finished: datetime | None
    ) -> str | None:
        """The version tagged with `job_id`, else the one registered while the job ran.

        Only one retraining job runs per model at a time, so a version created inside a job's
        run belongs to it; it is then tagged so later lookups are exact.
        """
        versions = self.registry.versions()
        tagged = [v for v in versions if v.tags.get(JOB_TAG) == job_id]
        if tagged:
            return str(tagged[0].version)
        if started is None:
            return None
        low = (started - _SLACK).timestamp() * 1000
        high = ((finished or started) + _SLACK).timestamp() * 1000
        inside = [v for v in versions if low <= v.created_ms <= high and JOB_TAG not in v.tags]
        if not inside:
            return None
        version = str(inside[0].version)  # newest first
        self.registry.set_version_tag(version, JOB_TAG, job_id)
        return version
