"""ScrapeHealth: a version's requests, errors and latency since the switch, summed over every pod
that serves it, from each pod's own `/metrics`."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import pytest
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest

from driftline.contracts import PREDICTION_ENDPOINTS
from operators.assembly import pod_targets
from operators.health import ScrapeHealth, counters_from_scrape, endpoint_urls
from operators.kube.api import ENDPOINT_SLICE, SERVICE, Kind
from operators.kube.manifests import SERVICE_PORT_NAME
from operators.runtimes.base import RuntimeOperationError

T0 = datetime(2026, 1, 1, tzinfo=UTC)
LABELS = ("endpoint", "model", "version")


class Pod:
    """One serving pod's metrics: the serving catalogue's request counter and latency histogram."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter("driftline_requests", "", (*LABELS, "code"), registry=self.registry)
        self.duration = Histogram(
            "driftline_request_duration_seconds",
            "",
            LABELS,
            buckets=(0.01, 0.1, 1.0),
            registry=self.registry,
        )

    def answer(
        self, n: int, *, version: str = "2", code: str = "200", seconds: float = 0.005
    ) -> None:
        for _ in range(n):
            self.requests.labels("v2_infer", "m", version, code).inc()
            self.duration.labels("v2_infer", "m", version).observe(seconds)

    def text(self) -> str:
        return generate_latest(self.registry).decode()


class Cluster:
    """Pods by URL, a settable clock and the endpoints a Service has right now."""

    def __init__(self, **pods: Pod) -> None:
        self.pods = dict(pods)
        self.now = T0
        self.down: set[str] = set()

    def targets(self) -> Sequence[str]:
        return sorted(self.pods)

    def fetch(self, url: str, _timeout: float) -> str:
        if url in self.down:
            raise ConnectionError(f"{url}: refused")
        return self.pods[url].text()

    def health(self) -> ScrapeHealth:
        return ScrapeHealth(self.targets, "m", clock=lambda: self.now, fetch=self.fetch)


def test_counts_from_the_mark_and_says_since_when() -> None:
    pod = Pod()
    cluster = Cluster(a=pod)
    pod.answer(500)
    scrape = cluster.health()
    scrape.mark("2")
    pod.answer(30)
    cluster.now = T0 + timedelta(seconds=10)
    health = scrape.health("green", "2")
    assert (health.requests, health.since) == (30, T0)


def test_a_restarted_controller_counts_from_its_first_look() -> None:
    pod = Pod()
    cluster = Cluster(a=pod)
    pod.answer(530)
    cluster.now = T0 + timedelta(seconds=40)
    restarted = cluster.health()  # no mark: the switch happened in a process that died
    first = restarted.health("green", "2")
    assert (first.requests, first.since) == (0, T0 + timedelta(seconds=40))
    pod.answer(15)
    assert restarted.health("green", "2").requests == 15


def test_two_pods_are_summed_each_against_its_own_baseline() -> None:
    # Issue 13: a scrape through the Service would read pod b after pod a as a restart.
    a, b = Pod(), Pod()
    a.answer(1000)
    b.answer(10)
    cluster = Cluster(a=a, b=b)
    scrape = cluster.health()
    scrape.mark("2")
    a.answer(40)
    b.answer(50, code="500", seconds=0.5)
    health = scrape.health("green", "2")
    assert (health.requests, health.errors) == (90, 50)
    assert health.error_rate == pytest.approx(50 / 90)
    # The slow requests are all pod b's: the p99 sits in its bucket, which one pod alone hides.
    assert health.p99_ms is not None
    assert 100 < health.p99_ms <= 1000
    # Only the candidate version's series count.
    a.answer(100, version="1")
    assert scrape.health("green", "2").requests == 90


def test_a_new_pod_counts_whole_and_a_pod_gone_keeps_its_counts() -> None:
    a = Pod()
    cluster = Cluster(a=a)
    scrape = cluster.health()
    scrape.mark("2")
    a.answer(10, code="500")
    assert scrape.health("green", "2").errors == 10
    cluster.pods["b"] = b = Pod()  # scaled up after the switch
    b.answer(5)
    del cluster.pods["a"]  # and a scaled down
    health = scrape.health("green", "2")
    assert (health.requests, health.errors) == (15, 10)


def test_a_restarted_pod_keeps_what_it_counted_before() -> None:
    a = Pod()
    a.answer(100)
    cluster = Cluster(a=a)
    scrape = cluster.health()
    scrape.mark("2")
    a.answer(20)
    assert scrape.health("green", "2").requests == 20
    cluster.pods["a"] = fresh = Pod()  # the process restarted: its counters begin at zero
    fresh.answer(7)
    assert scrape.health("green", "2").requests == 27
    fresh.answer(3)
    assert scrape.health("green", "2").requests == 30


def test_unreachable_pods_are_skipped_and_none_reachable_is_unobservable() -> None:
    a, b = Pod(), Pod()
    cluster = Cluster(a=a, b=b)
    scrape = cluster.health()
    scrape.mark("2")
    a.answer(4)
    b.answer(6)
    cluster.down = {"b"}
    assert scrape.health("green", "2").requests == 4
    cluster.down = {"a", "b"}
    with pytest.raises(ConnectionError, match="refused"):
        scrape.health("green", "2")


SLICES = [
    {
        "ports": [{"name": SERVICE_PORT_NAME, "port": 8080}, {"name": "grpc", "port": 8081}],
        "endpoints": [
            {"addresses": ["10.0.0.7"], "conditions": {"ready": True}},
            {"addresses": ["10.0.0.8"], "conditions": {"ready": False}},
            {"addresses": ["10.0.0.9"]},
        ],
    },
    {
        "ports": [{"name": SERVICE_PORT_NAME, "port": 8080}],
        "endpoints": [{"addresses": ["fd00::2"]}],
    },
    {"ports": [{"name": "other", "port": 9}], "endpoints": [{"addresses": ["10.0.0.10"]}]},
]


def test_every_ready_pod_behind_the_service_by_port_name() -> None:
    assert endpoint_urls(SLICES, SERVICE_PORT_NAME) == [
        "http://10.0.0.7:8080/metrics",
        "http://10.0.0.9:8080/metrics",
        "http://[fd00::2]:8080/metrics",
    ]


class SliceApi:
    """The calls pod_targets makes: list a Service's EndpointSlices by label, get the Service."""

    def __init__(self, slices: list[dict[str, object]], ports: list[dict[str, object]]) -> None:
        self.slices = slices
        self.service: dict[str, object] | None = {"spec": {"ports": ports}}
        self.asked: list[tuple[Kind, str, str]] = []

    def select(self, kind: Kind, namespace: str, label_selector: str) -> list[dict[str, object]]:
        self.asked.append((kind, namespace, label_selector))
        return self.slices

    def get(self, kind: Kind, namespace: str, name: str) -> dict[str, object] | None:
        self.asked.append((kind, namespace, name))
        return self.service


HTTP_80 = {"name": SERVICE_PORT_NAME, "port": 80, "targetPort": "serve"}


def test_pod_targets_read_the_service_endpoints_or_fall_back_to_the_service() -> None:
    api = SliceApi(SLICES, [HTTP_80])
    targets = pod_targets(api, "ns", "m-active")  # type: ignore[arg-type]
    assert len(targets()) == 3
    assert api.asked == [(ENDPOINT_SLICE, "ns", "kubernetes.io/service-name=m-active")]
    api.slices = []
    assert targets() == ["http://m-active.ns.svc:80/metrics"]
    assert api.asked[-1] == (SERVICE, "ns", "m-active")


def test_pod_targets_refuse_a_service_without_a_port_named_http() -> None:
    # No number is guessed (the chart's Services listen on 80, the pods elsewhere).
    api = SliceApi([], [{"name": "web", "port": 8000}])
    targets = pod_targets(api, "ns", "m-active")  # type: ignore[arg-type]
    with pytest.raises(RuntimeOperationError, match="Service ns/m-active has no port named 'http'"):
        targets()
    api.service = None
    with pytest.raises(RuntimeOperationError, match="Service ns/m-active does not exist"):
        targets()


def test_client_errors_are_neither_requests_nor_errors() -> None:
    lines = [
        "# TYPE driftline_requests counter",
        *(
            f'driftline_requests_total{{endpoint="v2_infer",model="m",version="{v}",code="{c}"}} '
            f"{n}"
            for v, c, n in (("2", "200", 90), ("2", "500", 10), ("2", "400", 5000), ("", "413", 7))
        ),
    ]
    counters = counters_from_scrape("\n".join(lines) + "\n", model="m", version="2")
    # A flood of bad requests neither fails the version nor dilutes its 10% error rate.
    assert (counters.requests, counters.errors) == (100, 10)


def test_only_prediction_requests_count_not_probes_metadata_or_the_scrapes_themselves() -> None:
    pod = Pod()
    for endpoint, version in (
        ("metrics", ""),  # the controller's own scrape, every round
        ("v2_live", ""),
        ("v2_model_ready", "2"),  # readiness probes name the version they ask about
        ("v2_model_metadata", "2"),
    ):
        pod.requests.labels(endpoint, "m", version, "200").inc(50)
        pod.duration.labels(endpoint, "m", version).observe(2.0)
    counters = counters_from_scrape(pod.text(), model="m", version="2")
    assert (counters.requests, counters.errors, counters.health().p99_ms) == (0, 0, None)
    # A prediction that failed before any version answered it still counts, as an error.
    pod.requests.labels("v1_predict", "m", "", "503").inc()
    pod.answer(9)
    counters = counters_from_scrape(pod.text(), model="m", version="2")
    assert (counters.requests, counters.errors) == (10, 1)


def test_prediction_endpoints_are_the_serving_routes_that_score_rows() -> None:
    from driftline.auth.scopes import Scope  # noqa: PLC0415
    from serving.endpoints import routes  # noqa: PLC0415
    from serving.kserve_server import endpoint_of  # noqa: PLC0415

    scoring = {name for _path, name, _fn, _method, scope in routes() if scope is Scope.PREDICT}
    # The ingress's stream predicts each replayed bar on the active version: live traffic too.
    assert scoring | {"stream"} == PREDICTION_ENDPOINTS
    assert {endpoint_of({}), endpoint_of(object())} <= PREDICTION_ENDPOINTS
