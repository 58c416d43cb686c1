"""The serving port's OpenAPI document, Swagger UI at /docs (assets served locally) and /ui/.

The document lists every HTTP operation of the ingress: the KServe V1/V2 and domain endpoints
(described here, after KServe's published V2 REST schema), the drift and controller API under
/api (FastAPI's own schema), each with the bearer scheme and its scope from the route table.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from driftline.auth.openapi import with_security
from driftline.auth.routes import RouteTable
from driftline.symbols import SYMBOL_PATTERN

UI_DIR = Path(__file__).parent / "ui"
OPENAPI_PATH = "/openapi.json"
DOCS_PATH = "/docs"
DOCS_ASSETS = "/docs/assets"
_PARAM = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")
_REF = "#/components/schemas/"

# The Open Inference Protocol's REST types, trimmed from kserve/kserve
# docs/predict-api/v2/rest_predict_v2.yaml to what this server reads and answers.
SCHEMAS: dict[str, Any] = {
    "Tensor": {
        "type": "object",
        "required": ["name", "shape", "datatype"],
        "properties": {
            "name": {"type": "string"},
            "shape": {"type": "array", "items": {"type": "integer"}},
            "datatype": {"type": "string", "examples": ["FP64"]},
            "parameters": {"type": "object"},
            "data": {"type": "array", "items": {}},
        },
    },
    "InferenceRequest": {
        "type": "object",
        "required": ["inputs"],
        "properties": {
            "id": {"type": "string"},
            "parameters": {
                "type": "object",
                "description": (
                    "`symbol` and `as_of`, both or neither, key the stored prediction as "
                    "`POST /api/outcomes` keys an outcome, so an outcome settles it and the "
                    "controller's shadow gate pairs it; `as_of` (a date or an ISO 8601 time, "
                    "UTC without an offset) describes the request's last row. Other parameters "
                    "keep their KServe meaning (`binary_data_output`)."
                ),
                "properties": {
                    "symbol": {"type": "string", "pattern": SYMBOL_PATTERN},
                    "as_of": {"type": "string", "format": "date-time"},
                },
            },
            "inputs": {"type": "array", "items": {"$ref": _REF + "Tensor"}},
            "outputs": {"type": "array", "items": {"type": "object"}},
        },
    },
    "InferenceResponse": {
        "type": "object",
        "required": ["model_name", "outputs"],
        "properties": {
            "model_name": {"type": "string"},
            "model_version": {"type": "string"},
            "id": {"type": "string"},
            "parameters": {"type": "object"},
            "outputs": {"type": "array", "items": {"$ref": _REF + "Tensor"}},
        },
    },
    "V1Request": {
        "type": "object",
        "required": ["instances"],
        "properties": {
            "instances": {"type": "array", "items": {"type": "array", "items": {"type": "number"}}}
        },
    },
    "V1Response": {
        "type": "object",
        "properties": {"predictions": {"type": "array", "items": {"type": "number"}}},
    },
    "Forecast": {
        "type": "object",
        "description": "OHLCV bars (`open`, `high`, `low`, `close`, `volume` arrays) to score.",
    },
    "Error": {"type": "object", "properties": {"error": {"type": "string"}}},
}
_BODIES = {"v2_infer": "InferenceRequest", "v1_predict": "V1Request", "forecast": "Forecast"}
_ANSWERS = {"v2_infer": "InferenceResponse", "v1_predict": "V1Response"}


def endpoint_paths(routes: Iterable[tuple[str, str, Callable[..., Any], str]]) -> dict[str, Any]:
    """OpenAPI path items of the ingress's own endpoints: `(path, label, handler, method)`."""
    paths: dict[str, Any] = {}
    for path, label, handler, method in routes:
        summary = (handler.__doc__ or label).strip().splitlines()[0]
        operation: dict[str, Any] = {
            "operationId": f"{label}_{len(paths)}",
            "summary": summary,
            "tags": ["kserve" if path.startswith(("/v1", "/v2")) or path == "/" else "serving"],
            "responses": {
                "200": _answer(_ANSWERS.get(label)),
                "400": _answer("Error", "Bad input, named in one line."),
            },
        }
        params = [
            {"name": n, "in": "path", "required": True, "schema": {"type": "string"}}
            for n in _PARAM.findall(path)
        ]
        if params:
            operation["parameters"] = params
        if label in _BODIES:
            operation["requestBody"] = {
                "required": True,
                "content": {"application/json": {"schema": {"$ref": _REF + _BODIES[label]}}},
            }
        paths.setdefault(path, {})[method.lower()] = operation
    return paths


def _answer(schema: str | None, description: str = "OK") -> dict[str, Any]:
    if schema is None:
        return {"description": description}
    return {
        "description": description,
        "content": {"application/json": {"schema": {"$ref": _REF + schema}}},
    }


def serving_document(
    *,
    title: str,
    version: str,
    endpoints: dict[str, Any],
    mounted: dict[str, dict[str, Any]],
    table: RouteTable,
) -> dict[str, Any]:
    """The whole port's document: `endpoints`, every `{prefix: FastAPI document}`, secured."""
    paths = dict(endpoints)
    schemas = dict(SCHEMAS)
    for prefix, document in mounted.items():
        paths.update({prefix + p: item for p, item in document.get("paths", {}).items()})
        schemas.update(document.get("components", {}).get("schemas", {}))
    for path in (OPENAPI_PATH, DOCS_PATH):
        paths[path] = {"get": {"summary": _OWN[path], "tags": ["docs"], "responses": _OK}}
    document = {
        "openapi": "3.1.0",
        "info": {
            "title": title,
            "version": version,
            "description": (
                "KServe V1/V2 inference, the domain API, drift and controller state. Send "
                "`Authorization: Bearer <key>`; each operation names its scope in "
                "`x-driftline-scope`. The WebSocket stream `/ws/predictions` needs `stream`; "
                "browsers offer the subprotocols `driftline.v1` and `bearer.<key>`."
            ),
        },
        "paths": paths,
        "components": {"schemas": schemas},
    }
    return with_security(document, table)


_OK = {"200": {"description": "OK"}}
_OWN = {OPENAPI_PATH: "This OpenAPI document.", DOCS_PATH: "Swagger UI over this document."}


def _swagger_assets() -> Path:
    import fastapi_offline  # noqa: PLC0415  (only where the docs are served)

    return Path(fastapi_offline.__file__).parent / "static"


def _swagger_page(title: str) -> str:
    return f"""<!doctype html>
<html><head><meta charset="utf-8"><title>{title}</title>
<link rel="stylesheet" href="{DOCS_ASSETS}/swagger-ui.css"></head>
<body><div id="swagger-ui"></div>
<script src="{DOCS_ASSETS}/swagger-ui-bundle.js"></script>
<script>
SwaggerUIBundle({{url: "{OPENAPI_PATH}", dom_id: "#swagger-ui", persistAuthorization: true}});
</script></body></html>
"""


def docs_routes(title: str, document: Callable[[], dict[str, Any]]) -> list[BaseRoute]:
    """/openapi.json, /docs (Swagger UI, no CDN) and the status page's files under /ui/."""

    async def openapi(_request: Request) -> Response:
        return JSONResponse(document())

    async def docs(_request: Request) -> Response:
        return HTMLResponse(_swagger_page(title))

    return [
        Route(OPENAPI_PATH, openapi, methods=["GET"]),
        Route(DOCS_PATH, docs, methods=["GET"]),
        Mount(DOCS_ASSETS, app=StaticFiles(directory=_swagger_assets())),
        Mount("/ui", app=StaticFiles(directory=UI_DIR, html=True)),
    ]


def public_routes(table: RouteTable) -> RouteTable:
    """Declare the docs and static files public in `table`; returns it."""
    table.public("GET", OPENAPI_PATH)
    table.public("GET", DOCS_PATH)
    table.public("GET", DOCS_ASSETS + "/{path:path}")
    table.public("GET", "/ui/{path:path}")
    table.public("GET", "/ui")
    return table
