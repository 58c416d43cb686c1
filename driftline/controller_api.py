"""The controller's stored state and audit trail over HTTP, read-only, for the status page.

Routes (relative to where they are mounted):

- `GET /controller/state` the controller's stored state of the model (404 before its first round)
- `GET /audit` the newest audit events, oldest first (`since`, `rollout_id`, `kind`, `limit`)

The state is the JSON the controller stores: reading it needs no import of `operators`.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query

from driftline.auth.routes import Route
from driftline.auth.scopes import Scope
from driftline.store import Store, utcnow

DEFAULT_AUDIT_SPAN = timedelta(days=7)
# What each route needs (driftline.auth), relative to where the router is mounted.
CONTROLLER_ROUTES: tuple[Route, ...] = (
    Route("GET", "/controller/state", Scope.READ),
    Route("GET", "/audit", Scope.READ),
)


def controller_router(store: Store, *, model_name: str) -> APIRouter:
    """Read-only routes over the controller's rows in `store` for `model_name`."""
    router = APIRouter()

    @router.get("/controller/state")
    def state(model: str = model_name) -> dict[str, Any]:
        record = store.controller.controller_state(model)
        if record is None or record.state is None:
            raise HTTPException(404, f"no controller round for model {model!r} yet")
        return {
            **record.state,
            "updated_at": record.updated_at.isoformat(),
            "lease_holder": record.lease_holder,
        }

    @router.get("/audit")
    def audit(
        model: str = model_name,
        since: datetime | None = None,
        rollout_id: str | None = None,
        kind: str | None = None,
        limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    ) -> list[dict[str, Any]]:
        start = since or utcnow() - DEFAULT_AUDIT_SPAN
        events = store.controller.audit_events(
            model_name=model, since=start, rollout_id=rollout_id, kind=kind
        )
        return [e.to_dict() for e in events[-limit:]]

    return router
