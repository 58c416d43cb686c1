"""Keeps serving on the version the `champion` alias names, rolling out blue/green on a move."""

from __future__ import annotations

import importlib
import logging
import threading
from collections.abc import Callable

from driftline.config import Settings
from driftline.contracts import CHAMPION
from serving.control import ServingControl, ServingState

log = logging.getLogger(__name__)


def registry_alias(settings: Settings, alias: str = CHAMPION) -> Callable[[], str | None]:
    """A function returning the version `alias` currently names in the registry."""
    registry = importlib.import_module("driftline.registry").Registry(settings)

    def version() -> str | None:
        found = registry.alias_version(alias)
        return None if found is None else str(found)

    return version


class ChampionFollower:
    """Polls an alias and rolls serving out to the version it names."""

    def __init__(
        self, control: ServingControl, alias_version: Callable[[], str | None], interval_s: float
    ) -> None:
        self.control = control
        self.alias_version = alias_version
        self.interval_s = interval_s

    def step(self) -> ServingState | None:
        """Roll out if the alias moved; returns the new state, or None when nothing changed."""
        wanted = self.alias_version()
        if wanted is None or wanted == self.control.state().active_version:
            return None
        log.info("champion moved; rolling out", extra={"version": wanted})
        return self.control.rollout(wanted)

    def run(self, stop: threading.Event) -> None:
        """Follow until `stop` is set; a failed rollout is logged and retried next round."""
        while not stop.wait(self.interval_s):
            try:
                self.step()
            except Exception:
                log.exception("following the champion alias failed; serving stays as it was")
