"""`driftline serve --tls-cert/--tls-key`: the printed address is HTTPS (and its stream WSS), the
certificate is the one given, and plain HTTP gets no answer.

The integration test runs the command as a user does, on a Ray head of its own.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import ssl
from collections.abc import Iterator
from pathlib import Path

import httpx
import orjson
import pytest
from click.testing import CliRunner
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from websockets.sync.client import connect

from benchmarks import synthetic
from benchmarks.serving import create_key, driftline_serve
from driftline.config import Settings
from driftline.raycluster import free_port
from serving.cli import printed_url, serve, stream_url, trust
from serving.serve_config import http_options
from tests.serving.shell import user_shell

MODEL = "market-ensemble"


# Variables a session Ray head (tests/conftest.py) may have set: `serve` must start its own.
def self_signed(directory: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 and localhost, signed by its own key: (cert, key) PEM files."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "driftline-test")])
    now = dt.datetime.now(dt.UTC)
    san = x509.SubjectAlternativeName(
        [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
    )
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(san, critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "tls.crt", directory / "tls.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    key_path.chmod(0o600)
    return cert_path, key_path


def test_tls_puts_the_certificate_in_serves_http_options(tmp_path: Path) -> None:
    cert, key = self_signed(tmp_path)
    settings = Settings(serving={"tls_cert": cert, "tls_key": key})
    options = http_options(settings, 8000)
    assert (options["ssl_certfile"], options["ssl_keyfile"]) == (str(cert), str(key))
    assert settings.serving.scheme == "https"
    assert "ssl_certfile" not in http_options(Settings(), 8000)
    assert stream_url("https://127.0.0.1:8080") == "wss://127.0.0.1:8080/ws/predictions"
    assert stream_url("http://127.0.0.1:8080") == "ws://127.0.0.1:8080/ws/predictions"
    assert printed_url("serving m at https://127.0.0.1:8080\n") == "https://127.0.0.1:8080"
    # `serve`'s own client trusts the system's CAs and the port's certificate.
    assert isinstance(trust(settings), ssl.SSLContext)
    assert trust(Settings()) is True


def test_a_certificate_without_its_key_is_refused_before_anything_starts(tmp_path: Path) -> None:
    cert, _key = self_signed(tmp_path)
    result = CliRunner().invoke(serve, ["--tls-cert", str(cert)])
    assert result.exit_code == 2
    assert "TLS needs both" in result.output


@pytest.fixture(scope="module")
def tls_serve(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[str, Path, dict[str, str]]]:
    """`driftline serve --tls-cert --tls-key` on its own head: (printed URL, cert, env)."""
    home = tmp_path_factory.mktemp("tls-home")
    cert, key = self_signed(home)
    synthetic.make_bundle(Settings(home=home), "1", trees=(10, 10), depths=(3, 3), rows=300)
    env = user_shell(DRIFTLINE_HOME=str(home), DRIFTLINE_SERVE_PORT=str(free_port()))
    extra = ("--no-follow", "--tls-cert", str(cert), "--tls-key", str(key))
    with driftline_serve("1", env, home / "serve.log", extra=extra) as url:
        yield url, cert, env


@pytest.mark.ray
@pytest.mark.slow
def test_serve_with_a_certificate_answers_https_and_wss_only(
    tls_serve: tuple[str, Path, dict[str, str]],
) -> None:
    url, cert, env = tls_serve
    assert url.startswith("https://127.0.0.1:")
    # A client that trusts the certificate (self-signed here, so it is its own anchor).
    verify = ssl.create_default_context(cafile=str(cert))
    assert httpx.get(f"{url}/v2/health/ready", verify=verify, timeout=30).status_code == 200
    key = create_key(env, "tls-client", "predict,stream,read")
    auth = {"Authorization": f"Bearer {key}"}
    body = {"inputs": [{"name": "features", "shape": [1, 45], "datatype": "FP64"}]}
    body["inputs"][0]["data"] = [[0.1] * 45]
    infer = f"{url}/v2/models/{MODEL}/infer"
    answer = httpx.post(infer, json=body, headers=auth, verify=verify, timeout=30)
    assert answer.status_code == 200, answer.text
    assert answer.json()["model_version"] == "1"
    # The port presents the given certificate: a client that trusts only the system's CAs
    # refuses it, and plain HTTP on the same port gets no HTTP answer.
    with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
        httpx.get(f"{url}/v2/health/ready", timeout=30)
    with pytest.raises(httpx.HTTPError):
        httpx.get(f"{url.replace('https://', 'http://', 1)}/v2/health/ready", timeout=10)
    with connect(stream_url(url), ssl=verify, additional_headers=auth, open_timeout=30) as ws:
        assert orjson.loads(ws.recv(timeout=120))["model_version"] == "1"
