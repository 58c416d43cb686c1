"""The controller: drift-triggered retraining, gated blue/green rollout, promotion and rollback.

`decide` is the pure core; `Controller` runs observe-decide-act rounds through a runtime
(`LocalRayRuntime`, `KubernetesRuntime`, `GitOpsRuntime`); `operators.kube` holds the kopf operator.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from operators.controller import Controller, StepReport
    from operators.decide import Decision, Transition, decide
    from operators.observations import Observed, World
    from operators.spec import RolloutSpec
    from operators.states import Phase, Rollout, RolloutState

# Loaded on first use: `operators.cli` is imported for `driftline status`, which needs none of
# the controller's machinery (numpy, scipy, Ray).
_HOMES = {
    "Controller": "operators.controller",
    "StepReport": "operators.controller",
    "Decision": "operators.decide",
    "Transition": "operators.decide",
    "decide": "operators.decide",
    "Observed": "operators.observations",
    "World": "operators.observations",
    "RolloutSpec": "operators.spec",
    "Phase": "operators.states",
    "Rollout": "operators.states",
    "RolloutState": "operators.states",
}


def __getattr__(name: str) -> Any:
    if name not in _HOMES:
        raise AttributeError(f"module 'operators' has no attribute {name!r}")
    return getattr(importlib.import_module(_HOMES[name]), name)


__all__ = [
    "Controller",
    "Decision",
    "Observed",
    "Phase",
    "Rollout",
    "RolloutSpec",
    "RolloutState",
    "StepReport",
    "Transition",
    "World",
    "decide",
]
