"""`driftline serve` (serving owns it): serve the champion on local Ray, follow the alias."""

from __future__ import annotations

import os
import re
import signal
import ssl
import threading
from types import FrameType

import click

from driftline.config import Settings
from driftline.observability.logs import configure_logging
from driftline.raycluster import LOOPBACK_ENV


@click.command()
@click.option("--host", default=None, help="Address to bind (default: DRIFTLINE_SERVE_HOST).")
@click.option("--port", type=int, default=None, help="HTTP port (default: DRIFTLINE_SERVE_PORT).")
@click.option("--version", "version", default=None, help="Serve this version, not the champion.")
@click.option("--no-follow", is_flag=True, help="Do not follow the champion alias.")
@click.option(
    "--tls-cert",
    type=click.Path(exists=True, dir_okay=False),
    default=None,
    help="PEM certificate: serve HTTPS and WSS only (default: DRIFTLINE_SERVE_TLS_CERT).",
)
@click.option(
    "--tls-key",
    type=click.Path(exists=True, dir_okay=False),
    default=None,
    help="PEM private key of --tls-cert (default: DRIFTLINE_SERVE_TLS_KEY).",
)
@click.option(
    "--loader",
    default=None,
    hidden=True,
    help="`module:function` loading bundles (default: the MLflow registry).",
)
def serve(  # noqa: PLR0917 (click passes one argument per option)
    host: str | None,
    port: int | None,
    version: str | None,
    no_follow: bool,
    tls_cert: str | None,
    tls_key: str | None,
    loader: str | None,
) -> None:
    """Serve the `champion` model version with KServe V1/V2 on HOST:PORT until interrupted.

    Following the alias, a new champion is rolled out blue/green (serving.control).

    \b
    Examples:
      driftline serve
      driftline serve --port 8080 --version 3 --no-follow
    """
    given = {"host": host, "port": port, "tls_cert": tls_cert, "tls_key": tls_key}
    overrides = {k: v for k, v in given.items() if v}
    settings = Settings(serving=overrides) if overrides else Settings()
    try:
        settings.serving.tls  # noqa: B018 (a certificate without its key is refused up front)
    except ValueError as error:
        raise click.UsageError(str(error)) from None
    configure_logging(settings.observability.log_level, json=settings.observability.log_json)
    # Ray reads this when it is imported: set it first so every socket stays on loopback.
    os.environ.update(LOOPBACK_ENV)
    from driftline.store import Store  # noqa: PLC0415  (heavy imports after the env is set)
    from serving.control import ServingControl, local_head, proxy_port  # noqa: PLC0415
    from serving.follow import ChampionFollower, registry_alias  # noqa: PLC0415

    Store.from_settings(settings).upgrade()
    alias = registry_alias(settings) if loader is None else (lambda: None)
    wanted = version or alias()
    if wanted is None:
        raise click.ClickException(
            "no version carries the champion alias yet: train one first (`driftline train`)"
        )
    cluster = None
    dashboard = os.environ.get("RAY_DASHBOARD_ADDRESS")
    if settings.ray.address is None or dashboard is None:
        cluster = local_head(settings)
        cluster.start()
        # This command's Ray clients use the head it started, whatever the shell points at
        # (RAY_API_SERVER_ADDRESS outranks the address a client is given).
        os.environ.update(cluster.client_env())
        dashboard = cluster.dashboard_url
    stop = threading.Event()

    def request_stop(_signum: int, _frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    control = ServingControl(settings, dashboard, http_port=proxy_port(settings), loader=loader)
    try:
        click.echo(f"deploying {settings.registry.model_name} version {wanted} ...")
        control.deploy(wanted)
        print_urls(settings, control.front_url(), _own_key(settings))
        if no_follow or version is not None:
            stop.wait()
        else:
            ChampionFollower(control, alias, settings.serving.follow_interval_s).run(stop)
    finally:
        click.echo("stopping: flushing predictions ...")
        control.shutdown()
        if cluster is not None:
            cluster.stop()


def _own_key(settings: Settings) -> str:
    """The `read` key `serve` keeps in its home to look its own model up."""
    from driftline.auth.admin import ensure_saved_key  # noqa: PLC0415
    from driftline.auth.scopes import Scope  # noqa: PLC0415

    return ensure_saved_key(settings, "serve", frozenset({Scope.READ}))


def _n_features(settings: Settings, base: str, key: str) -> int:
    import httpx  # noqa: PLC0415

    headers = {"Authorization": f"Bearer {key}"}
    reply = httpx.get(f"{base}/api/models", headers=headers, timeout=30, verify=trust(settings))
    return int(reply.json()["active"]["n_features"])


def trust(settings: Settings) -> ssl.SSLContext | bool:
    """What a client of this serving port verifies it with: the system's CAs, plus the port's
    own certificate (a self-signed one is then its own anchor)."""
    tls = settings.serving.tls
    if tls is None:
        return True
    context = ssl.create_default_context()
    context.load_verify_locations(cafile=str(tls[0]))
    return context


def stream_url(base: str) -> str:
    """The WebSocket address beside HTTP(S) address `base` (ws:// or wss://)."""
    return "ws" + base.removeprefix("http") + "/ws/predictions"


SERVING_LINE = re.compile(r"^serving \S+ at (https?://\S+)$", re.MULTILINE)


def printed_url(output: str) -> str:
    """The address `driftline serve` or `up` printed first: what users and benchmarks call."""
    found = SERVING_LINE.search(output)
    if found is None:
        raise ValueError("no `serving <model> at <url>` line in the output")
    return found.group(1)


def print_urls(settings: Settings, base: str, key: str) -> None:
    """Where everything is served (all behind the one address `base`), and a curl for it
    (`key` reads the model)."""
    n_features = _n_features(settings, base, key)
    name = settings.registry.model_name
    click.echo(f"serving {name} at {base}")
    click.echo(f"  V2 infer:   {base}/v2/models/{name}/infer")
    click.echo(f"  V1 predict: {base}/v1/models/{name}:predict")
    click.echo(f"  health:     {base}/v2/health/ready")
    click.echo(f"  models:     {base}/api/models")
    click.echo(f"  stream:     {stream_url(base)}")
    click.echo(f"  metrics:    {base}/metrics")
    click.echo(f"  API docs:   {base}/docs  (OpenAPI: {base}/openapi.json)")
    tls = settings.serving.tls
    cacert = f" --cacert {tls[0]}" if tls is not None else ""
    click.echo(
        "every route but health and docs needs an API key; create one with\n"
        "  driftline keys create my-client --scope predict,read\n"
        "and send it as `Authorization: Bearer <key>` (docs/calling-driftline.md).\n"
        "try:\n"
        f"  curl -s{cacert} {base}/v2/models/{name}/infer -H 'content-type: application/json' \\\n"
        '    -H "Authorization: Bearer $DRIFTLINE_API_KEY" \\\n'
        f'    -d \'{{"inputs": [{{"name": "features", "shape": [1, {n_features}], '
        f'"datatype": "FP64", "data": [[{", ".join(["0.0"] * n_features)}]]}}]}}\'\n'
        f'  curl -s{cacert} {base}/api/models -H "Authorization: Bearer $DRIFTLINE_API_KEY"'
    )
