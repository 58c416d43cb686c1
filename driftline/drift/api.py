"""The drift and outcomes HTTP API: a FastAPI router, and an app that serving can mount.

Routes (relative to where they are mounted):

- `GET  /drift/status` the newest report's verdict and the open alerts
- `GET  /drift/reports` report summaries, newest first (`since`, `min_severity`, `limit`)
- `GET  /drift/reports/{report_id}` one full report
- `GET  /drift/reports/{report_id}.html` one report as a self-contained page with charts
- `GET  /drift/history` stored scores (`feature`, `method`, `since`, `limit`)
- `GET  /drift/alerts` alerts (`acknowledged`, `since`, `limit`)
- `POST /drift/alerts/{alert_id}/acknowledge` `{"by": "..."}`
- `POST /outcomes` `{"outcomes": [{"symbol", "as_of", "value"}]}`, recorded as the caller;
  an outcome whose bar has not closed is refused, a second different value is a conflict
- `GET  /outcomes/conflicts` outcomes holding two values, held out of every gate
- `POST /outcomes/conflicts/resolve` `{"symbol", "as_of", "value"}` (admin) settles one

Requests only read and write the store: no detector, alibi-detect or MLflow runs here.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, FastAPI, HTTPException, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from driftline.auth.asgi import principal_of
from driftline.auth.routes import Route
from driftline.auth.scopes import Scope
from driftline.contracts import Severity
from driftline.drift.html import render_html
from driftline.drift.outcomes import AsOf, OutcomeRecorder, UnclosedBarError, utc
from driftline.store import Store, StoreUnavailableError, utcnow
from driftline.store.drift_records import (
    Alert,
    Outcome,
    OutcomeConflict,
    StoredReport,
    UnknownOutcomeError,
)
from driftline.symbols import Symbol

METHODS = frozenset({"ks", "ks_textbook", "psi", "js", "adwin", "rmse", "mae", "r2"}) | {
    "directional_accuracy"
}
MAX_OUTCOMES = 10_000
# Reports drawn in an HTML report's history chart.
HISTORY_REPORTS = 200


class OutcomeIn(BaseModel):
    """One realised value."""

    model_config = ConfigDict(extra="forbid")

    symbol: Symbol
    as_of: AsOf
    value: float = Field(allow_inf_nan=False)


class OutcomesIn(BaseModel):
    """A batch of realised values, stored all or nothing."""

    model_config = ConfigDict(extra="forbid")

    outcomes: list[OutcomeIn] = Field(min_length=1, max_length=MAX_OUTCOMES)


class ResolveIn(BaseModel):
    """The value an admin settles a conflicting outcome at."""

    model_config = ConfigDict(extra="forbid")

    symbol: Symbol
    as_of: AsOf
    value: float = Field(allow_inf_nan=False)


class AcknowledgeIn(BaseModel):
    """Who acknowledges an alert."""

    model_config = ConfigDict(extra="forbid")

    by: str = Field(min_length=1, max_length=128)


# What each route needs (driftline.auth); the ingress mounts these under /api.
DRIFT_ROUTES: tuple[Route, ...] = (
    Route("GET", "/drift/status", Scope.READ),
    Route("GET", "/drift/reports", Scope.READ),
    Route("GET", "/drift/reports/{report_id}", Scope.READ),
    Route("GET", "/drift/reports/{report_id}.html", Scope.READ),
    Route("GET", "/drift/history", Scope.READ),
    Route("GET", "/drift/alerts", Scope.READ),
    Route("POST", "/drift/alerts/{alert_id}/acknowledge", Scope.ALERTS_WRITE),
    Route("POST", "/outcomes", Scope.OUTCOMES_WRITE),
    Route("GET", "/outcomes/conflicts", Scope.READ),
    Route("POST", "/outcomes/conflicts/resolve", Scope.ADMIN),
)


def drift_router(store: Store, recorder: OutcomeRecorder, *, model_name: str) -> APIRouter:
    """The drift routes over `store` for `model_name` (the default model)."""
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

    # Declared before `/drift/reports/{report_id}`, which would otherwise take `<id>.html`.
    @router.get("/drift/reports/{report_id}.html", response_class=HTMLResponse)
    def report_html(report_id: str) -> HTMLResponse:
        found = store.drift.drift_report(report_id)
        if found is None:
            raise HTTPException(404, f"no drift report {report_id!r}")
        earlier = store.drift.drift_reports(model_name=found.model_name, limit=HISTORY_REPORTS)
        history = [_full(r) for r in earlier if r.created_at <= found.created_at]
        return HTMLResponse(render_html(_full(found), history))

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

    return router


def outcomes_router(store: Store, recorder: OutcomeRecorder) -> APIRouter:
    """Realised values in, with who recorded them, and the conflicts an admin resolves."""
    router = APIRouter()

    @router.post("/outcomes")
    def outcomes(body: OutcomesIn, request: Request) -> dict[str, Any]:
        who = principal_of(request).label
        batch = [
            Outcome(symbol=o.symbol, as_of=o.as_of, value=o.value, source="api", recorded_by=who)
            for o in body.outcomes
        ]
        try:
            result = recorder.ingest(batch)
        except UnknownOutcomeError as error:
            raise HTTPException(404, str(error)) from None
        except UnclosedBarError as error:
            raise HTTPException(422, str(error)) from None
        # Conflicts are stored and named, never settled silently by whoever wrote first.
        conflicts = [{"symbol": k[0], "as_of": k[1].isoformat()} for k in result.conflict_keys]
        return {**result.as_dict(), "conflicts": conflicts}

    @router.get("/outcomes/conflicts")
    def conflicts(limit: Annotated[int, Query(ge=1, le=1000)] = 100) -> list[dict[str, Any]]:
        return [_conflict(c) for c in store.drift.outcome_conflicts(limit=limit)]

    @router.post("/outcomes/conflicts/resolve")
    def resolve(body: ResolveIn, request: Request) -> dict[str, Any]:
        who = principal_of(request).label
        if not store.drift.resolve_outcome(body.symbol, body.as_of, body.value, by=who):
            raise HTTPException(404, f"no open conflict for {body.symbol} at {body.as_of}")
        return {"symbol": body.symbol, "as_of": body.as_of.isoformat(), "value": body.value}

    return router


def drift_app(store: Store, recorder: OutcomeRecorder, *, model_name: str) -> FastAPI:
    """A FastAPI app of `drift_router` whose errors are `{"error": "<one line>"}`."""
    app = FastAPI(title="Driftline drift", docs_url=None, redoc_url=None, openapi_url=None)
    app.include_router(drift_router(store, recorder, model_name=model_name))
    app.include_router(outcomes_router(store, recorder))
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


def _full(report: StoredReport) -> dict[str, Any]:
    # The stored columns are authoritative; the payload adds the detectors' details.
    return {**report.payload, **_summary(report)}


def _conflict(conflict: OutcomeConflict) -> dict[str, Any]:
    return {
        "symbol": conflict.symbol,
        "as_of": conflict.as_of.isoformat(),
        "value": conflict.value,
        "recorded_by": conflict.recorded_by,
        "conflict_value": conflict.conflict_value,
        "conflict_by": conflict.conflict_by,
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
