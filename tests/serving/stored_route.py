"""The controller's route as the store holds it, which the HTTP shadow mirror follows
(`serving.mirror.shadow_colour`): states to store, and storing one as the controller does."""

from __future__ import annotations

from datetime import UTC, datetime

from driftline.contracts import Colour, other_colour
from driftline.store import Store
from operators.codec import encode_state
from operators.states import Phase, Rollout, RolloutKind, RolloutState

MODEL = "market-ensemble"


def in_rollout(
    phase: Phase, active: Colour, kind: RolloutKind = RolloutKind.PROMOTE, model: str = MODEL
) -> RolloutState:
    """A rollout of version 2 in `phase` with `active` taking traffic."""
    other = other_colour(active)
    # Deploying: the candidate waits on the other colour; verifying: it took traffic.
    champion, candidate = (active, other) if phase is Phase.DEPLOYING else (other, active)
    rollout = Rollout(
        rollout_id="r1",
        kind=kind,
        trigger="tests",
        started_at=datetime.now(UTC),
        champion_version="1",
        champion_colour=champion,
        candidate_colour=candidate,
        candidate_version="2",
    )
    return RolloutState(model, phase=phase, active_colour=active, rollout=rollout)


def set_route(store: Store, state: RolloutState) -> None:
    """Store `state` as the controller does, under its lease."""
    now = datetime.now(UTC)
    model = state.model_name
    record = store.controller.acquire_controller_lease(model, "tests", ttl_s=60, now=now)
    assert record is not None
    store.controller.save_controller_state(
        model,
        encode_state(state),
        phase=state.phase.value,
        revision=record.revision,
        holder="tests",
        now=now,
    )
    store.controller.release_controller_lease(model, "tests")
