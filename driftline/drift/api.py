"""The drift and outcomes HTTP API: a FastAPI router, and an app that serving can mount.

Routes (relative to where they are mounted):

- `GET  /drift/status` the newest report's verdict and the open alerts
- `GET  /drift/reports` report summaries, newest first (`since`, `min_severity`, `limit`)
- `GET  /drift/reports/{report_id}` one full report
- `GET  /drift/history` stored scores (`feature`, `method`, `since`, `limit`)
- `GET  /drift/alerts` alerts (`acknowledged`, `since`, `limit`)
- `POST /drift/alerts/{alert_id}/acknowledge` `{"by": "..."}`
- `POST /outcomes` `{"outcomes": [{"symbol", "as_of", "value"}]}`

Requests only read and write the store: no detector, alibi-detect or MLflow runs here.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, FastAPI, HTTPException, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, field_validator

from driftline.auth.routes import Route
from driftline.auth.scopes import Scope
from driftline.contracts import Severity
from driftline.drift.outcomes import OutcomeRecorder, utc
from driftline.store import Store, StoreUnavailableError, utcnow
from driftline.store.drift_records import (
    Alert,
    Outcome,
    StoredReport,
    UnknownOutcomeError,
)

METHODS = frozenset({"ks", "ks_textbook", "psi", "js", "adwin", "rmse", "mae", "r2"}) | {
    "directional_accuracy"
}
MAX_OUTCOMES = 10_000


class OutcomeIn(BaseModel):
    """One realised value."""

    model_config = ConfigDict(extra="forbid")

    symbol: str = Field(min_length=1, max_length=32)
    as_of: datetime
    value: float = Field(allow_inf_nan=False)

    @field_validator("as_of")
    @classmethod
    def _utc(cls, value: datetime) -> datetime:
        return utc(value)


class OutcomesIn(BaseModel):
    """A batch of realised values, stored all or nothing."""

    model_config = ConfigDict(extra="forbid")

    outcomes: list[OutcomeIn] = Field(min_length=1, max_length=MAX_OUTCOMES)


class AcknowledgeIn(BaseModel):
    """Who acknowledges an alert."""

    model_config = ConfigDict(extra="forbid")

    by: str = Field(min_length=1, max_length=128)


# What each route needs (driftline.auth); the ingress mounts these under /api.
DRIFT_ROUTES: tuple[Route, ...] = (
    Route("GET", "/drift/status", Scope.READ),
    Route("GET", "/drift/reports", Scope.READ),
    Route("GET", "/drift/reports/{report_id}", Scope.READ),
    Route("GET", "/drift/history", Scope.READ),
    Route("GET", "/drift/alerts", Scope.READ),
    Route("POST", "/drift/alerts/{alert_id}/acknowledge", Scope.ALERTS_WRITE),
    Route("POST", "/outcomes", Scope.OUTCOMES_WRITE),
)


def drift_router(store: Store, recorder: OutcomeRecorder, *, model_name: str) -> APIRouter:
    """The drift and outcomes routes over `store` for `model_name` (the default model)."""
    router = APIRouter()

    @router.get("/drift/status")
    def status(model: str = model_name) -> dict[str, Any]:
        report = store.drift.latest_report(model)
        if report is None:
            raise HTTPException(404, f"no drift report for model {model!r} yet")
        open_alerts = store.drift.alerts(model_name=model, acknowledged=False, limit=100)
        return {
            **_summary(report),
            "reasons": report.payload.get("reasons", []),
            "drifted_features": report.payload.get("drifted_features", []),
            "open_alerts": [_alert(a) for a in open_alerts],
            "outcomes": dict(recorder.counts),
        }

    @router.get("/drift/reports")
    def reports(
        model: str = model_name,
        since: datetime | None = None,
        min_severity: str | None = None,
        limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    ) -> list[dict[str, Any]]:
        level = None if min_severity is None else int(_severity(min_severity))
        found = store.drift.drift_reports(
            model_name=model, since=_since(since), min_severity_level=level, limit=limit
        )
        return [_summary(r) for r in found]

    @router.get("/drift/reports/{report_id}")
    def report(report_id: str) -> dict[str, Any]:
        found = store.drift.drift_report(report_id)
        if found is None:
            raise HTTPException(404, f"no drift report {report_id!r}")
        return found.payload

    @router.get("/drift/history")
    def history(
        model: str = model_name,
        feature: str | None = None,
        method: str | None = None,
        since: datetime | None = None,
        limit: Annotated[int, Query(ge=1, le=10_000)] = 1000,
    ) -> list[dict[str, Any]]:
        if method is not None and method not in METHODS:
            raise HTTPException(422, f"unknown method {method!r}; use one of {sorted(METHODS)}")
        if feature is not None:
            latest = store.drift.latest_report(model)
            known = set(latest.payload.get("features", {})) if latest else set()
            if known and feature not in known and feature not in {"prediction", "error"}:
                raise HTTPException(404, f"unknown feature {feature!r} for model {model!r}")
        rows = store.drift.drift_scores(
            model_name=model, feature=feature, method=method, since=_since(since), limit=limit
        )
        return [
            {
                "report_id": r.report_id,
                "created_at": r.created_at.isoformat(),
                "detector": r.detector,
                "feature": r.feature,
                "method": r.method,
                "value": r.value,
                "pvalue": r.pvalue,
                "threshold": r.threshold,
                "drifted": r.drifted,
            }
            for r in rows
        ]

    @router.get("/drift/alerts")
    def alerts(
        model: str = model_name,
        acknowledged: bool | None = None,
        since: datetime | None = None,
        limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    ) -> list[dict[str, Any]]:
        found = store.drift.alerts(
            model_name=model, acknowledged=acknowledged, since=_since(since), limit=limit
        )
        return [_alert(a) for a in found]

    @router.post("/drift/alerts/{alert_id}/acknowledge")
    def acknowledge(alert_id: str, body: AcknowledgeIn) -> dict[str, Any]:
        alert = store.drift.acknowledge_alert(alert_id, by=body.by, at=utcnow())
        if alert is None:
            raise HTTPException(404, f"no alert {alert_id!r}")
        return _alert(alert)

    @router.post("/outcomes")
    def outcomes(body: OutcomesIn) -> dict[str, int]:
        batch = [
            Outcome(symbol=o.symbol, as_of=o.as_of, value=o.value, source="api")
            for o in body.outcomes
        ]
        try:
            return recorder.ingest(batch).as_dict()
        except UnknownOutcomeError as error:
            raise HTTPException(404, str(error)) from None

    return router


def drift_app(store: Store, recorder: OutcomeRecorder, *, model_name: str) -> FastAPI:
    """A FastAPI app of `drift_router` whose errors are `{"error": "<one line>"}`."""
    app = FastAPI(title="Driftline drift", docs_url=None, redoc_url=None, openapi_url=None)
    app.include_router(drift_router(store, recorder, model_name=model_name))
    app.add_exception_handler(HTTPException, _http_error)  # type: ignore[arg-type]
    app.add_exception_handler(RequestValidationError, _validation_error)  # type: ignore[arg-type]
    app.add_exception_handler(StoreUnavailableError, _unavailable)
    return app


async def _http_error(_request: Request, error: HTTPException) -> JSONResponse:
    return JSONResponse({"error": str(error.detail)}, status_code=error.status_code)


async def _validation_error(_request: Request, error: RequestValidationError) -> JSONResponse:
    first = error.errors()[0] if error.errors() else {"loc": (), "msg": "invalid request"}
    where = ".".join(str(part) for part in first.get("loc", ()) if part != "body")
    return JSONResponse({"error": f"{where}: {first.get('msg')}"}, status_code=422)


async def _unavailable(_request: Request, error: Exception) -> JSONResponse:
    return JSONResponse({"error": str(error)}, status_code=503, headers={"Retry-After": "5"})


def _severity(text: str) -> Severity:
    try:
        return Severity.parse(text)
    except ValueError as error:
        raise HTTPException(422, str(error)) from None


def _since(value: datetime | None) -> datetime | None:
    return None if value is None else utc(value)


def _summary(report: StoredReport) -> dict[str, Any]:
    return {
        "report_id": report.report_id,
        "created_at": report.created_at.isoformat(),
        "model_name": report.model_name,
        "model_version": report.model_version,
        "severity": report.severity,
        "recommendation": report.recommendation,
        "n_rows": report.n_rows,
        "window_start": report.window_start.isoformat() if report.window_start else None,
        "window_end": report.window_end.isoformat() if report.window_end else None,
    }


def _alert(alert: Alert) -> dict[str, Any]:
    return {
        "alert_id": alert.alert_id,
        "created_at": alert.created_at.isoformat(),
        "model_name": alert.model_name,
        "model_version": alert.model_version,
        "severity": alert.severity,
        "recommendation": alert.recommendation,
        "message": alert.message,
        "report_id": alert.report_id,
        "acknowledged_at": alert.acknowledged_at.isoformat() if alert.acknowledged_at else None,
        "acknowledged_by": alert.acknowledged_by,
    }
