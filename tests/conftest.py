"""Session fixtures: an isolated home, no cluster credentials, a real PostgreSQL, one Ray head."""

from __future__ import annotations

import contextlib
import copy
import os
import re
import subprocess
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Any

import jsonschema
import pytest
import sqlalchemy as sa
import yaml
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from driftline.config import Settings
from driftline.observability import tracing
from driftline.raycluster import LOOPBACK_ENV, LocalRayCluster
from driftline.store import Store, migrate
from driftline.store.engine import normalise_url

# Ray reads this switch once, when it is first imported (collection imports it long before the
# Ray head starts): without it, clients swap 127.0.0.1 for the routable address and miss the head.
os.environ.update(LOOPBACK_ENV)

if TYPE_CHECKING:
    from driftline.registry import ModelBundle

IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}
RUN_E2E = IN_CI or os.environ.get("DRIFTLINE_E2E", "") == "1"
SHARED_CRDS = Path(__file__).resolve().parents[1].parent / "shared" / "crds"
E2E_DIR = Path(__file__).resolve().parent / "e2e"


@pytest.fixture(scope="session", autouse=True)
def isolated_environment(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Point every component at a fresh home; never at the machine's kubeconfig or services."""
    home = tmp_path_factory.mktemp("driftline-home")
    kubeconfig = home / "kubeconfig"
    kubeconfig.write_text("")
    saved = dict(os.environ)
    for name in (
        "MLFLOW_TRACKING_URI",
        "RAY_ADDRESS",
        "DRIFTLINE_DATABASE_URL",
        "DRIFTLINE_ENV_FILE",
    ):
        os.environ.pop(name, None)
    os.environ.update(
        {
            "DRIFTLINE_HOME": str(home),
            "KUBECONFIG": str(kubeconfig),
            "DRIFTLINE_LOG_JSON": "true",
        }
    )
    yield home
    os.environ.clear()
    os.environ.update(saved)


@pytest.fixture(autouse=True)
def mlflow_env_restored() -> Iterator[None]:
    """`mlflow.set_tracking_uri` also exports MLFLOW_TRACKING_URI, which Settings reads: without
    this, one test's registry becomes every later test's default."""
    saved = {k: os.environ.get(k) for k in ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI")}
    yield
    for name, value in saved.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """The modules under tests/e2e run last (they stop the shared Ray head for their own);
    end-to-end tests are opt-in locally and always on in CI."""
    # By place, not by marker: an e2e-marked test elsewhere uses the shared head, which the
    # modules under tests/e2e stop. The sort is stable: each part keeps its order.
    items.sort(key=lambda item: E2E_DIR in item.path.resolve().parents)
    if RUN_E2E:
        return
    skip = pytest.mark.skip(reason="end-to-end: set DRIFTLINE_E2E=1 (always on in CI)")
    for item in items:
        if "e2e" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A fresh PostgreSQL database for this session, dropped at the end."""
    with _database("driftline_test") as url:
        yield url


@pytest.fixture(scope="session")
def scratch_postgres_url() -> Iterator[str]:
    """The `store` fixture's own database: it downgrades to nothing after each test, which
    would wipe what session fixtures keep in `postgres_url` (served's keys, for one)."""
    with _database("driftline_scratch") as url:
        yield url


@contextlib.contextmanager
def _database(prefix: str) -> Iterator[str]:
    admin_url = os.environ.get("DRIFTLINE_TEST_DATABASE_URL")
    if not admin_url:
        if IN_CI:
            pytest.fail("DRIFTLINE_TEST_DATABASE_URL is unset: run the tests through `make test`")
        pytest.skip("PostgreSQL tests need DRIFTLINE_TEST_DATABASE_URL (`make test` sets it)")
    admin = sa.create_engine(normalise_url(admin_url), isolation_level="AUTOCOMMIT")
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    url = sa.make_url(normalise_url(admin_url)).set(database=name)
    try:
        yield url.render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


# The shared head while it runs, so that the end-to-end tests can stop it before they start
# the head `driftline up` starts: two heads at once would share the machine's cores.
_SHARED_HEADS: list[LocalRayCluster] = []


@pytest.fixture(scope="session")
def ray_cluster(isolated_environment: Path) -> Iterator[LocalRayCluster]:
    """One local Ray head (dashboard, Jobs and Serve APIs) shared by the whole session."""
    cluster = LocalRayCluster(num_cpus=2, log_path=isolated_environment / "ray-head.log")
    _SHARED_HEADS.append(cluster.start())
    os.environ.update(cluster.client_env())
    try:
        yield cluster
    finally:
        stop_shared_head()


def stop_shared_head() -> None:
    """Stop the shared head if it runs (the end-to-end tests, ordered last, need it no more)."""
    while _SHARED_HEADS:
        cluster = _SHARED_HEADS.pop()
        cluster.stop()
        # Ray's loopback switch stays: this process set it for every head (pytest_configure).
        for name in cluster.client_env().keys() - LOOPBACK_ENV.keys():
            os.environ.pop(name, None)


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    """Settings with a home of this test's own."""
    return Settings(home=tmp_path / "home")


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    """Every span this process records during the test, in memory (SDK's exporter)."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracing.install(provider)
    yield exporter
    tracing.uninstall()


@pytest.fixture(params=["postgres", "sqlite"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    """A migrated store on each backend (fast retries), downgraded to nothing afterwards."""
    if request.param == "postgres":
        request.applymarker(pytest.mark.postgres)
        url = request.getfixturevalue("scratch_postgres_url")
    else:
        url = f"sqlite:///{tmp_path / 'store.db'}"
    store = Store(url, retries=2, backoff_s=0.01)
    store.upgrade()
    yield store
    migrate.downgrade(url, "base")
    store.close()


@pytest.fixture(scope="session")
def shared_crds() -> Path:
    """The third-party CRDs in ../shared/crds; tests that need them skip where it is absent."""
    if not SHARED_CRDS.is_dir():
        pytest.skip(f"{SHARED_CRDS} is absent: third-party CRD schemas are not available here")
    return SHARED_CRDS


# --- cluster packaging (issue 6): tools in .tools/bin, the rendered chart, CRD schemas ----------

REPO_ROOT = Path(__file__).resolve().parents[1]
CHART_DIR = REPO_ROOT / "helm" / "driftline"
TOOLS_BIN = REPO_ROOT / ".tools" / "bin"


@pytest.fixture(scope="session")
def tool() -> Callable[[str], str]:
    """Path of a validation tool `make tools` installs (helm, promtool, checkov)."""

    def find(name: str) -> str:
        path = TOOLS_BIN / name
        if path.exists():
            return str(path)
        if IN_CI:
            pytest.fail(f"{path} is missing: `make test` runs `make tools` first")
        pytest.skip(f"{name} is not installed: run `make tools`")
        raise AssertionError  # unreachable: skip raises

    return find


@pytest.fixture(scope="session")
def render_chart(tool: Callable[[str], str]) -> Callable[..., list[dict[str, Any]]]:
    """Render helm/driftline with `helm template` (cached per arguments) into a list of objects."""
    helm = tool("helm")
    cache: dict[tuple[str, ...], list[dict[str, Any]]] = {}

    def render(*args: str, kube_version: str = "1.30.0") -> list[dict[str, Any]]:
        key = (*args, kube_version)
        if key not in cache:
            argv = [helm, "template", "driftline", str(CHART_DIR), "--namespace", "driftline"]
            argv += ["--kube-version", kube_version, *args]
            done = subprocess.run(argv, capture_output=True, text=True, check=False)
            if done.returncode != 0:
                # Drop helm's log lines (symlinked files/monitoring) and its --debug hint.
                lines = done.stderr.strip().splitlines()
                errors = [x for x in lines if x.strip() and not x.startswith(("level=", "Use --"))]
                raise ChartRenderError("\n".join(errors))
            cache[key] = [doc for doc in yaml.load_all(done.stdout, _Yaml12Loader) if doc]
        return copy.deepcopy(cache[key])

    return render


class _Yaml12Loader(yaml.SafeLoader):
    """PyYAML reads `1e-05` as a string (YAML 1.1); Kubernetes, like YAML 1.2, reads a number."""


_Yaml12Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(
        r"^[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?$|^[-+]?\.(inf|Inf|INF)$|^\.(nan|NaN|NAN)$"
    ),
    list("-+0123456789."),
)


class ChartRenderError(RuntimeError):
    """`helm template` refused the values; the message is helm's error."""


def _forbid_unknown_fields(schema: Any) -> Any:
    """A CRD schema in which undeclared fields fail, as the API server would prune them silently."""
    if isinstance(schema, list):
        return [_forbid_unknown_fields(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    strict = {key: _forbid_unknown_fields(value) for key, value in schema.items()}
    if (
        "properties" in schema
        and "additionalProperties" not in schema
        and not schema.get("x-kubernetes-preserve-unknown-fields")
    ):
        strict["additionalProperties"] = False
    return strict


@pytest.fixture(scope="session")
def crd_validator() -> Callable[[dict[str, Any], Path], list[str]]:
    """Validate a custom resource against its CRD's openAPIV3Schema; returns the errors."""
    schemas: dict[tuple[Path, str], Any] = {}

    def validate(obj: dict[str, Any], crd_file: Path) -> list[str]:
        version = obj["apiVersion"].split("/")[-1]
        if (crd_file, version) not in schemas:
            crd = yaml.safe_load(crd_file.read_text())
            assert crd["spec"]["names"]["kind"] == obj["kind"], f"{crd_file} is not {obj['kind']}"
            (served,) = [v for v in crd["spec"]["versions"] if v["name"] == version]
            schema = _forbid_unknown_fields(served["schema"]["openAPIV3Schema"])
            # ObjectMeta is validated by the API server itself, not by the CRD.
            schema["properties"]["metadata"] = {"type": "object"}
            schemas[(crd_file, version)] = jsonschema.Draft7Validator(schema)
        validator = schemas[(crd_file, version)]
        return [
            f"{'.'.join(map(str, error.absolute_path)) or '<root>'}: {error.message}"
            for error in validator.iter_errors(obj)
        ]

    return validate


# --- training: one small real model per session (training branch) ----------------------------
def pytest_configure(config: pytest.Config) -> None:
    """Keep Ray on loopback in this process too: Ray reads the switch once, when first imported
    (test modules import it at collection), and otherwise resolves 127.0.0.1 to the machine's
    routable address when a Jobs client looks up the session's cluster."""
    os.environ.update(LOOPBACK_ENV)


@dataclass(frozen=True)
class RegisteredModel:
    """A model trained and registered once per session: what serving, drift and gates need."""

    settings: Settings
    name: str
    version: str
    bundle: ModelBundle
    model_uri: str
    job_seconds: float


@pytest.fixture(scope="session")
def registered_model(ray_cluster: LocalRayCluster) -> RegisteredModel:
    """Train a small real ensemble (rf + xgb, one trial each, S&P 500 2011-2018) through the Ray
    Jobs API on the session's cluster, into the session's MLflow under DRIFTLINE_HOME.

    It is version 1 with aliases `champion` and `challenger` unless a test registers another
    first; refer to it by `.version`, which never moves.
    """
    from driftline.contracts import TrainingRequest  # noqa: PLC0415
    from driftline.registry import Registry  # noqa: PLC0415  (MLflow is slow to import)
    from driftline.training_job import run_training_job  # noqa: PLC0415

    settings = Settings()
    lines: list[str] = []
    outcome = run_training_job(
        ray_cluster.dashboard_url,
        settings,
        TrainingRequest(trials=1, start=date(2011, 1, 1), members="rf,xgb"),
        echo=lines.append,
    )
    if outcome.exit_code != 0 or outcome.version is None:
        pytest.fail(
            f"training job {outcome.status}: {outcome.message[-2000:]}\n" + "\n".join(lines[-20:])
        )
    registry = Registry(settings)
    version = outcome.version
    bundle = registry.load_bundle(version)
    return RegisteredModel(
        settings=settings,
        name=registry.name,
        version=version,
        bundle=bundle,
        model_uri=registry.model_uri(version),
        job_seconds=outcome.seconds,
    )
