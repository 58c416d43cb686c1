"""The route table written into an OpenAPI document."""

from __future__ import annotations

import pytest
from fastapi import FastAPI

from driftline.auth.openapi import with_security
from driftline.auth.routes import PUBLIC, Route, RouteTable
from driftline.auth.scopes import Scope


def app() -> FastAPI:
    api = FastAPI()

    @api.get("/healthz")
    def healthz() -> str:
        return "ok"

    @api.post("/v2/models/{model}/infer")
    def infer(model: str) -> dict[str, str]:
        return {"model": model}

    return api


def test_operations_name_the_bearer_scheme_and_their_scope() -> None:
    table = RouteTable(
        [Route("GET", "/healthz", PUBLIC), Route("POST", "/v2/models/{model}/infer", Scope.PREDICT)]
    )
    original = app().openapi()
    document = with_security(original, table)
    assert document["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"
    assert document["paths"]["/healthz"]["get"]["security"] == []
    infer = document["paths"]["/v2/models/{model}/infer"]["post"]
    assert infer["security"] == [{"bearer": []}]
    assert infer["x-driftline-scope"] == "predict"
    assert {"401", "403", "429"} <= set(infer["responses"])
    assert "security" not in original["paths"]["/healthz"]["get"]  # the input is not changed


def test_an_operation_missing_from_the_table_raises() -> None:
    table = RouteTable([Route("GET", "/healthz", PUBLIC)])
    with pytest.raises(ValueError, match=r"POST /v2/models/\{model\}/infer"):
        with_security(app().openapi(), table)
