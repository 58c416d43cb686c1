"""Service health of one model version from Prometheus scrapes of the serving ingress."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from prometheus_client.parser import text_string_to_metric_families

from operators.observations import Health

REQUESTS = "driftline_requests"
DURATION = "driftline_request_duration_seconds"


@dataclass(frozen=True, slots=True)
class RequestCounters:
    """Cumulative request, 5xx and latency-bucket counts at one scrape."""

    requests: float = 0.0
    errors: float = 0.0
    buckets: dict[float, float] = field(default_factory=dict)

    def minus(self, earlier: RequestCounters) -> RequestCounters:
        """What happened between `earlier` and this scrape (a restarted process counts anew)."""
        if self.requests < earlier.requests:
            return self
        return RequestCounters(
            self.requests - earlier.requests,
            self.errors - earlier.errors,
            {le: n - earlier.buckets.get(le, 0.0) for le, n in self.buckets.items()},
        )

    def health(self, since: datetime | None = None, quantile: float = 0.99) -> Health:
        """Requests, errors and the latency quantile in milliseconds, counted from `since`."""
        return Health(
            int(self.requests), int(self.errors), quantile_ms(self.buckets, quantile), since
        )


def counters_from_scrape(text: str, *, model: str, version: str) -> RequestCounters:
    """Counters of `version`, plus requests that failed before any version answered them."""
    requests = errors = 0.0
    buckets: dict[float, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            labels = sample.labels
            if labels.get("model") != model or labels.get("version") not in {version, ""}:
                continue
            if sample.name == f"{REQUESTS}_total":
                requests += sample.value
                if labels.get("code", "").startswith("5"):
                    errors += sample.value
            elif sample.name == f"{DURATION}_bucket":
                bound = float(labels["le"])
                buckets[bound] = buckets.get(bound, 0.0) + sample.value
    return RequestCounters(requests, errors, buckets)


def quantile_ms(buckets: dict[float, float], quantile: float) -> float | None:
    """Prometheus' histogram_quantile: linear interpolation inside the bucket that holds it."""
    bounds = sorted(buckets)
    if not bounds or buckets[bounds[-1]] <= 0:
        return None
    rank = quantile * buckets[bounds[-1]]
    lower, below = 0.0, 0.0
    for bound in bounds:
        count = buckets[bound]
        if count >= rank:
            if math.isinf(bound):
                return lower * 1000
            share = (rank - below) / (count - below) if count > below else 1.0
            return (lower + (bound - lower) * share) * 1000
        lower, below = bound, count
    return lower * 1000


class ScrapeHealth:
    """Health of a version since a baseline, from the ingress's `/metrics` (merged per node)."""

    def __init__(
        self,
        metrics_url: str,
        model: str,
        *,
        timeout_s: float = 5.0,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        api_key: str | None = None,
    ) -> None:
        self.metrics_url, self.model, self.timeout_s = metrics_url, model, timeout_s
        # /metrics needs the `read` scope while serving's auth is on.
        self._headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self.clock = clock
        self._baselines: dict[str, tuple[RequestCounters, datetime]] = {}

    def mark(self, version: str) -> None:
        """Start counting `version` from now (called at the switch)."""
        self._baselines[version] = (self._counters(version), self.clock())

    def health(self, colour: str, version: str, since: object = None) -> Health:
        """What `version` answered since its mark, or since the first look after a restart.

        Counters live in memory, so a restarted controller starts counting anew; the health it
        reports then says from when, and verification lasts a whole window from there.
        """
        now = self._counters(version)
        baseline, at = self._baselines.setdefault(version, (now, self.clock()))
        return now.minus(baseline).health(since=at)

    def _counters(self, version: str) -> RequestCounters:
        import httpx  # noqa: PLC0415 - only the controller process needs it

        try:
            response = httpx.get(self.metrics_url, headers=self._headers, timeout=self.timeout_s)
            response.raise_for_status()
        except httpx.HTTPError as error:
            raise ConnectionError(f"{self.metrics_url}: {error}") from None
        return counters_from_scrape(response.text, model=self.model, version=version)
