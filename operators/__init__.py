"""The controller: drift-triggered retraining, gated blue/green rollout, promotion and rollback.

`decide` is the pure core; `Controller` runs observe-decide-act rounds through a runtime
(`LocalRayRuntime`, `KubernetesRuntime`, `GitOpsRuntime`); `operators.kube` holds the kopf operator.
"""

from operators.controller import Controller, StepReport
from operators.decide import Decision, Transition, decide
from operators.observations import Observed, World
from operators.spec import RolloutSpec
from operators.states import Phase, Rollout, RolloutState

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
