"""ScrapeHealth: a version's requests and latency since the switch, from the ingress's scrapes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from operators.health import RequestCounters, ScrapeHealth, counters_from_scrape

T0 = datetime(2026, 1, 1, tzinfo=UTC)


class ScriptedHealth(ScrapeHealth):
    """ScrapeHealth over scripted cumulative counters and a settable clock."""

    def __init__(self) -> None:
        self.now = T0
        super().__init__("http://unused/metrics", "m", clock=lambda: self.now)
        self.served = 0.0

    def _counters(self, version: str) -> RequestCounters:
        return RequestCounters(self.served, 0.0, {0.1: self.served, float("inf"): self.served})


def test_counts_from_the_mark_and_says_since_when() -> None:
    scrape = ScriptedHealth()
    scrape.served = 500
    scrape.mark("2")
    scrape.served, scrape.now = 530, T0 + timedelta(seconds=10)
    health = scrape.health("green", "2")
    assert (health.requests, health.since) == (30, T0)


def test_a_restarted_process_counts_from_its_first_look() -> None:
    restarted = ScriptedHealth()  # no mark: the switch happened in a process that died
    restarted.served, restarted.now = 530, T0 + timedelta(seconds=40)
    first = restarted.health("green", "2")
    assert (first.requests, first.since) == (0, T0 + timedelta(seconds=40))
    restarted.served, restarted.now = 545, T0 + timedelta(seconds=45)
    assert restarted.health("green", "2").requests == 15


def test_client_errors_are_neither_requests_nor_errors() -> None:
    lines = [
        "# TYPE driftline_requests counter",
        *(
            f'driftline_requests_total{{model="m",version="{v}",code="{c}"}} {n}'
            for v, c, n in (("2", "200", 90), ("2", "500", 10), ("2", "400", 5000), ("", "413", 7))
        ),
    ]
    counters = counters_from_scrape("\n".join(lines) + "\n", model="m", version="2")
    # A flood of bad requests neither fails the version nor dilutes its 10% error rate.
    assert (counters.requests, counters.errors) == (100, 10)
