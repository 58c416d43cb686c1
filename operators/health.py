"""Service health of one model version from Prometheus scrapes of every pod that serves it."""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from driftline.contracts import PREDICTION_ENDPOINTS
from operators.observations import Health

REQUESTS = "driftline_requests"
DURATION = "driftline_request_duration_seconds"


@dataclass(frozen=True, slots=True)
class RequestCounters:
    """Cumulative request, 5xx and latency-bucket counts at one scrape; client errors (4xx)
    are neither requests nor errors here, so a flood of bad requests neither fails a version
    nor dilutes its error rate."""

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

    def plus(self, other: RequestCounters) -> RequestCounters:
        """These counts and `other`'s together (two pods, or a pod before and after a restart)."""
        bounds = self.buckets.keys() | other.buckets.keys()
        return RequestCounters(
            self.requests + other.requests,
            self.errors + other.errors,
            {le: self.buckets.get(le, 0.0) + other.buckets.get(le, 0.0) for le in bounds},
        )

    def health(self, since: datetime | None = None, quantile: float = 0.99) -> Health:
        """Requests, errors and the latency quantile in milliseconds, counted from `since`."""
        return Health(
            int(self.requests), int(self.errors), quantile_ms(self.buckets, quantile), since
        )


def counters_from_scrape(text: str, *, model: str, version: str) -> RequestCounters:
    """Prediction requests of `version`, plus those that failed before any version answered
    them; probes, metadata and scrapes (this one's included) are no one's traffic."""
    requests = errors = 0.0
    buckets: dict[float, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            labels = sample.labels
            if labels.get("model") != model or labels.get("version") not in {version, ""}:
                continue
            if labels.get("endpoint") not in PREDICTION_ENDPOINTS:
                continue
            if sample.name == f"{REQUESTS}_total":
                code = labels.get("code", "")
                if code.startswith("4"):
                    continue
                requests += sample.value
                if code.startswith("5"):
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


@dataclass
class _Watch:
    """What one version's pods answered since its mark (or the first look after a restart)."""

    since: datetime
    baselines: dict[str, RequestCounters]
    last: dict[str, RequestCounters] = field(default_factory=dict)
    counted: dict[str, RequestCounters] = field(default_factory=dict)
    # Counts of pods that restarted since the mark: their counters began again from zero.
    carried: RequestCounters = field(default_factory=RequestCounters)

    def update(self, url: str, now: RequestCounters) -> None:
        """Take one pod's cumulative counters; a pod new since the mark counts whole."""
        last = self.last.get(url)
        if last is not None and now.requests < last.requests:
            self.carried = self.carried.plus(self.counted.pop(url, RequestCounters()))
            self.baselines[url] = RequestCounters()
        self.last[url] = now
        self.counted[url] = now.minus(self.baselines.get(url, RequestCounters()))

    def total(self) -> RequestCounters:
        """Every pod's counts since the mark, pods gone since included."""
        total = self.carried
        for counters in self.counted.values():
            total = total.plus(counters)
        return total


def fetch_text(url: str, timeout_s: float, api_key: str | None = None) -> str:
    """One `/metrics` exposition (with a bearer key when given), or ConnectionError."""
    import httpx  # noqa: PLC0415 - only the controller process needs it

    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    try:
        response = httpx.get(url, headers=headers, timeout=timeout_s)
        response.raise_for_status()
    except httpx.HTTPError as error:
        raise ConnectionError(f"{url}: {error}") from None
    return response.text


class ScrapeHealth:
    """Health of a version since a baseline, summed over every pod that serves it.

    A scrape through a Service lands on one pod at random, and its counters would read a change
    of pod as a restart; so `targets` names every pod's `/metrics` (a Service's ready endpoints,
    or the one local ingress), and each pod is counted against its own baseline.
    """

    def __init__(
        self,
        targets: Callable[[], Sequence[str]],
        model: str,
        *,
        timeout_s: float = 5.0,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        fetch: Callable[[str, float], str] | None = None,
        api_key: str | None = None,
    ) -> None:
        self.targets, self.model, self.timeout_s = targets, model, timeout_s
        self.clock = clock
        # /metrics needs the `read` scope while serving's auth is on.
        self.fetch = fetch or functools.partial(fetch_text, api_key=api_key)
        self._watches: dict[str, _Watch] = {}

    def mark(self, version: str) -> None:
        """Start counting `version` from now (called at the switch)."""
        self._watches[version] = _Watch(self.clock(), self._scrape(version))

    def health(self, colour: str, version: str, since: object = None) -> Health:
        """What `version` answered since its mark, or since the first look after a restart.

        Counters live in memory, so a restarted controller starts counting anew; the health it
        reports then says from when, and verification lasts a whole window from there.
        """
        scraped = self._scrape(version)
        watch = self._watches.setdefault(version, _Watch(self.clock(), dict(scraped)))
        for url, counters in scraped.items():
            watch.update(url, counters)
        return watch.total().health(since=watch.since)

    def _scrape(self, version: str) -> dict[str, RequestCounters]:
        """Each reachable pod's counters; ConnectionError when none answers."""
        targets = list(self.targets())
        scraped, failures = {}, []
        for url in targets:
            try:
                text = self.fetch(url, self.timeout_s)
            except ConnectionError as error:
                failures.append(str(error))
                continue
            scraped[url] = counters_from_scrape(text, model=self.model, version=version)
        if not scraped:
            raise ConnectionError("; ".join(failures) or "no serving pod to scrape")
        return scraped


def endpoint_urls(slices: Sequence[Mapping[str, Any]], port_name: str) -> list[str]:
    """The `/metrics` URL of every ready pod behind a Service, from its EndpointSlices."""
    urls = []
    for piece in slices:
        ports = [p for p in piece.get("ports") or [] if p.get("name") == port_name]
        if not ports or ports[0].get("port") is None:
            continue
        port = int(ports[0]["port"])
        for endpoint in piece.get("endpoints") or []:
            # Kubernetes documents an unset `ready` as ready.
            if (endpoint.get("conditions") or {}).get("ready") is False:
                continue
            for address in endpoint.get("addresses") or []:
                host = f"[{address}]" if ":" in address else address
                urls.append(f"http://{host}:{port}/metrics")
    return sorted(urls)
