"""Service health of one model version from a Prometheus scrape of the serving ingress."""

from __future__ import annotations

import math

from prometheus_client.parser import text_string_to_metric_families

from operators.observations import Health

REQUESTS = "driftline_requests"
DURATION = "driftline_request_duration_seconds"


def health_from_scrape(text: str, *, model: str, version: str, quantile: float = 0.99) -> Health:
    """Requests, 5xx errors and the latency quantile (from histogram buckets) of `version`."""
    requests = errors = 0
    buckets: dict[float, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            labels = sample.labels
            if labels.get("model") != model or labels.get("version") != version:
                continue
            if sample.name == f"{REQUESTS}_total":
                requests += int(sample.value)
                if labels.get("code", "").startswith("5"):
                    errors += int(sample.value)
            elif sample.name == f"{DURATION}_bucket":
                bound = float(labels["le"])
                buckets[bound] = buckets.get(bound, 0.0) + sample.value
    return Health(requests, errors, _quantile_ms(buckets, quantile))


def _quantile_ms(buckets: dict[float, float], quantile: float) -> float | None:
    """Prometheus' histogram_quantile: linear interpolation inside the bucket that holds it."""
    bounds = sorted(buckets)
    if not bounds or buckets[bounds[-1]] == 0:
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
