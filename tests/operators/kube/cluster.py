"""A validating in-memory Kubernetes API (and an HTTP front for the real client) for tests.

Every object written is validated: built-in kinds with kubernetes-validate (strict, 1.30), custom
resources with jsonschema against their CRD's openAPIV3Schema (../shared/crds, or our own CRD).
"""

from __future__ import annotations

import copy
import functools
import json
import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

import jsonschema
import kubernetes_validate
import yaml

from operators.kube.api import (
    ENDPOINT_SLICE,
    INFERENCE_SERVICE,
    LEASE,
    MODEL_DEPLOYMENT,
    RAY_JOB,
    RAY_SERVICE,
    SERVICE,
    Body,
    Kind,
    KubeApiError,
)

KUBERNETES_VERSION = "1.30"
OUR_CRD = (
    Path(__file__).resolve().parents[3] / "helm/driftline/crds/driftline.io_modeldeployments.yaml"
)
KINDS = {
    k.plural: k
    for k in (
        RAY_JOB,
        RAY_SERVICE,
        INFERENCE_SERVICE,
        SERVICE,
        ENDPOINT_SLICE,
        LEASE,
        MODEL_DEPLOYMENT,
    )
}
CRD_FILES = {
    RAY_JOB.kind: "ray.io_rayjobs.yaml",
    RAY_SERVICE.kind: "ray.io_rayservices.yaml",
    INFERENCE_SERVICE.kind: "serving.kserve.io_inferenceservices.yaml",
}


def openapi_to_jsonschema(node: Any) -> Any:
    """OpenAPI v3 `nullable` and int-or-string as JSON Schema understands them."""
    if isinstance(node, list):
        return [openapi_to_jsonschema(n) for n in node]
    if not isinstance(node, dict):
        return node
    out = {k: openapi_to_jsonschema(v) for k, v in node.items()}
    if out.pop("nullable", False) and "type" in out:
        out["type"] = [out["type"], "null"]
    if out.pop("x-kubernetes-int-or-string", False):
        out.pop("type", None)
        out["anyOf"] = [{"type": "integer"}, {"type": "string"}]
    return out


@functools.cache
def crd_schema(path: Path, version: str) -> dict[str, Any]:
    """The openAPIV3Schema of `version` in the CRD at `path` (the C loader: they are megabytes)."""
    crd = yaml.load(path.read_text(), Loader=yaml.CSafeLoader)
    (served,) = [v for v in crd["spec"]["versions"] if v["name"] == version]
    return openapi_to_jsonschema(served["schema"]["openAPIV3Schema"])


@dataclass
class Validator:
    """Validates any object the operator writes."""

    shared_crds: Path
    validated: list[str] = field(default_factory=list)

    def schema_for(self, kind: str) -> dict[str, Any] | None:
        """The CRD schema of a custom resource kind; None for built-in kinds."""
        if kind == MODEL_DEPLOYMENT.kind:
            return crd_schema(OUR_CRD, MODEL_DEPLOYMENT.version)
        if kind in CRD_FILES:
            version = INFERENCE_SERVICE.version if kind == INFERENCE_SERVICE.kind else "v1"
            return crd_schema(self.shared_crds / CRD_FILES[kind], version)
        return None

    def __call__(self, body: Body) -> None:
        schema = self.schema_for(body["kind"])
        if schema is None:
            kubernetes_validate.validate(body, KUBERNETES_VERSION, strict=True)
        else:
            # The KubeRay and KServe schemas are megabytes: check the instance against only the
            # parts of the schema its fields reach (the verdict on those fields is unchanged).
            validator = jsonschema.Draft7Validator(prune(schema, body))
            error = jsonschema.exceptions.best_match(validator.iter_errors(body))
            if error is not None:
                raise error
        self.validated.append(f"{body['kind']}/{body['metadata']['name']}")


def prune(schema: Any, instance: Any) -> Any:
    """`schema` cut down to the properties `instance` has (lists: the union of their items)."""
    if not isinstance(schema, dict):
        return schema
    out = {k: v for k, v in schema.items() if k not in {"properties", "items"}}
    if isinstance(schema.get("properties"), dict):
        present = instance if isinstance(instance, dict) else {}
        if not schema.get("x-kubernetes-preserve-unknown-fields"):
            # Strict, like `kubectl --validate=strict`: the API server would drop unknown fields.
            out.setdefault("additionalProperties", False)
        out["properties"] = {
            key: prune(sub, present[key])
            for key, sub in schema["properties"].items()
            if key in present
        }
    if "items" in schema:
        out["items"] = prune(
            schema["items"], _union(instance) if isinstance(instance, list) else None
        )
    return out


def _union(items: list[Any]) -> Any:
    dicts = [i for i in items if isinstance(i, dict)]
    if not dicts:
        return items[0] if items else None
    merged: dict[str, Any] = {}
    for item in dicts:
        for key, value in item.items():
            merged[key] = _union([merged[key], value]) if key in merged else value
    return merged


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386 JSON merge patch."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


@dataclass
class FakeKubeApi:
    """KubeApi over a dict; `fail` maps a verb to an HTTP status to raise once."""

    validate: Validator
    objects: dict[tuple[str, str, str], Body] = field(default_factory=dict)
    calls: list[tuple[str, str, str]] = field(default_factory=list)
    fail: dict[str, int] = field(default_factory=dict)
    version: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def seed(self, body: Body) -> Body:
        kind = next(k for k in KINDS.values() if k.kind == body["kind"])
        return self._store(kind, body, validate=True)

    def get(self, kind: Kind, namespace: str, name: str) -> Body | None:
        self._call("get", kind, name)
        found = self.objects.get((kind.plural, namespace, name))
        return copy.deepcopy(found) if found else None

    def create(self, kind: Kind, namespace: str, body: Body) -> Body:
        name = body["metadata"]["name"]
        self._call("create", kind, name)
        if (kind.plural, namespace, name) in self.objects:
            return copy.deepcopy(self.objects[(kind.plural, namespace, name)])
        body = merge_patch(body, {"metadata": {"namespace": namespace, "uid": f"uid-{name}"}})
        return self._store(kind, body)

    def patch(self, kind: Kind, namespace: str, name: str, patch: Body) -> Body:
        self._call("patch", kind, name)
        current = self._existing(kind, namespace, name)
        return self._store(kind, merge_patch(current, patch))

    def replace(self, kind: Kind, namespace: str, name: str, body: Body) -> Body:
        self._call("replace", kind, name)
        current = self._existing(kind, namespace, name)
        expected = body.get("metadata", {}).get("resourceVersion")
        if expected is not None and expected != current["metadata"]["resourceVersion"]:
            raise KubeApiError(f"PUT {name}: 409 Conflict", 409)
        return self._store(kind, body)

    def delete(self, kind: Kind, namespace: str, name: str) -> None:
        self._call("delete", kind, name)
        self.objects.pop((kind.plural, namespace, name), None)

    def select(self, kind: Kind, namespace: str, label_selector: str) -> list[Body]:
        self._call("list", kind, label_selector)
        wanted = dict(part.split("=", 1) for part in label_selector.split(",") if part)
        return [
            copy.deepcopy(body)
            for (plural, ns, _), body in sorted(self.objects.items())
            if plural == kind.plural
            and ns == namespace
            and wanted.items() <= (body["metadata"].get("labels") or {}).items()
        ]

    def of(self, kind: Kind) -> list[Body]:
        return [b for (plural, _, _), b in sorted(self.objects.items()) if plural == kind.plural]

    def writes(self) -> list[tuple[str, str, str]]:
        return [c for c in self.calls if c[0] in {"create", "patch", "replace", "delete"}]

    def _call(self, verb: str, kind: Kind, name: str) -> None:
        self.calls.append((verb, kind.kind, name))
        status = self.fail.pop(verb, None)
        if status is not None:
            raise KubeApiError(f"{verb} {kind.kind}/{name}: {status} injected", status)

    def _existing(self, kind: Kind, namespace: str, name: str) -> Body:
        found = self.objects.get((kind.plural, namespace, name))
        if found is None:
            raise KubeApiError(f"{kind.kind}/{name}: 404 Not Found", 404)
        return copy.deepcopy(found)

    def _store(self, kind: Kind, body: Body, *, validate: bool = True) -> Body:
        with self.lock:
            self.version += 1
            body = merge_patch(body, {"metadata": {"resourceVersion": str(self.version)}})
        if validate:
            clean = merge_patch(body, {"metadata": {"resourceVersion": None, "uid": None}})
            self.validate(clean)
        meta = body["metadata"]
        self.objects[(kind.plural, meta["namespace"], meta["name"])] = body
        return copy.deepcopy(body)


_PATH = re.compile(
    r"^/(?:api/(?P<core>v1)|apis/(?P<group>[^/]+)/(?P<version>[^/]+))"
    r"/namespaces/(?P<ns>[^/]+)/(?P<plural>[^/]+)(?:/(?P<name>[^/]+))?$"
)


class ApiServer:
    """Serves a FakeKubeApi over HTTP on 127.0.0.1 for the official client."""

    def __init__(self, api: FakeKubeApi) -> None:
        self.api = api
        self.requests: list[tuple[str, str, str]] = []
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def __enter__(self) -> ApiServer:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def _go(self, verb: str) -> None:
                url = urlparse(self.path)
                match = _PATH.match(url.path)
                length = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(length)) if length else None
                server.requests.append((verb, url.path, self.headers.get("Content-Type", "")))
                if match is None:
                    return self._send(404, {"kind": "Status", "code": 404})
                kind = KINDS[match["plural"]]
                ns, name = match["ns"], match["name"]
                try:
                    result: Any
                    if verb == "GET" and name:
                        result = server.api.get(kind, ns, name)
                        if result is None:
                            return self._send(404, {"kind": "Status", "code": 404})
                    elif verb == "GET":
                        selector = parse_qs(url.query).get("labelSelector", [""])[0]
                        result = {"items": server.api.select(kind, ns, selector)}
                    elif verb == "POST":
                        if (kind.plural, ns, body["metadata"]["name"]) in server.api.objects:
                            return self._send(409, {"kind": "Status", "code": 409})
                        result = server.api.create(kind, ns, body)
                    elif verb == "PATCH":
                        result = server.api.patch(kind, ns, name, body)
                    elif verb == "PUT":
                        result = server.api.replace(kind, ns, name, body)
                    else:
                        server.api.delete(kind, ns, name)
                        result = {"kind": "Status", "status": "Success"}
                except KubeApiError as error:
                    return self._send(
                        error.status or 500, {"kind": "Status", "message": str(error)}
                    )
                return self._send(200, result)

            def _send(self, code: int, payload: object) -> None:
                data = json.dumps(payload).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:
                self._go("GET")

            def do_POST(self) -> None:
                self._go("POST")

            def do_PATCH(self) -> None:
                self._go("PATCH")

            def do_PUT(self) -> None:
                self._go("PUT")

            def do_DELETE(self) -> None:
                self._go("DELETE")

            def log_message(self, format: str, *args: object) -> None:
                pass

        return Handler


def chart_objects(namespace: str = "ml", release: str = "driftline") -> Iterator[Body]:
    """What the Helm chart renders for the controller: Services and colour RayServices."""
    labels = {"app.kubernetes.io/name": "driftline", "app.kubernetes.io/instance": release}
    for role, colour in (("active", "blue"), ("preview", "green")):
        yield {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": f"{release}-{role}", "namespace": namespace, "labels": labels},
            "spec": {
                "selector": {**labels, "driftline.io/colour": colour, "ray.io/serve": "true"},
                "ports": [{"name": "http", "port": 8000, "targetPort": 8000, "protocol": "TCP"}],
            },
        }
    for colour, alias in (("blue", "champion"), ("green", "challenger")):
        config = {
            "proxy_location": "EveryNode",
            "http_options": {"host": "0.0.0.0", "port": 8000},
            "applications": [
                {
                    "name": "driftline",
                    "import_path": "serving.app:build_app",
                    "route_prefix": "/",
                    "args": {
                        "model_name": "market-ensemble",
                        "model_version": alias,
                        "colour": colour,
                    },
                }
            ],
        }
        yield {
            "apiVersion": "ray.io/v1",
            "kind": "RayService",
            "metadata": {
                "name": f"{release}-{colour}",
                "namespace": namespace,
                "labels": {**labels, "driftline.io/colour": colour},
            },
            "spec": {
                "serveConfigV2": yaml.safe_dump(config, sort_keys=False),
                "rayClusterConfig": {
                    "headGroupSpec": {
                        "rayStartParams": {},
                        "template": {
                            "spec": {"containers": [{"name": "ray-head", "image": "serving:1"}]}
                        },
                    }
                },
            },
            "status": {"serviceStatus": "Running"},
        }


def model_deployment(namespace: str = "ml", release: str = "driftline", **spec: Any) -> Body:
    """A ModelDeployment with the chart's names but no `serving.template` (as a hand-written one:
    colours the controller creates come from its fallback)."""
    return {
        "apiVersion": "driftline.io/v1alpha1",
        "kind": "ModelDeployment",
        "metadata": {"name": release, "namespace": namespace, "uid": "md-uid-1", "generation": 3},
        "spec": merge_patch(
            {
                "model": {"name": "market-ensemble", "trackingUri": "http://mlflow:5000"},
                "serving": {
                    "runtime": "RayService",
                    "image": "ghcr.io/driftline/serving:1",
                    "activeServiceName": f"{release}-active",
                    "previewServiceName": f"{release}-preview",
                },
                "driftPolicy": {"retrainAt": "high", "sustainedReports": 1, "cooldownSeconds": 0},
                "retraining": {"image": "ghcr.io/driftline/training:1", "trials": 4},
                "rollout": {
                    "gates": {"test": "paired-t"},
                    "shadow": {"minPairedOutcomes": 30},
                    "verification": {"windowSeconds": 60, "minRequests": 10},
                },
            },
            spec,
        ),
    }
