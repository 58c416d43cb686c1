"""RolloutSpec from a ModelDeployment or the local settings: a policy the controller cannot
follow is refused when it is read, not failed every round."""

from __future__ import annotations

from typing import Any

import pytest

from driftline.config import Settings
from operators.spec import ApprovalNeedsGitOpsError, RolloutSpec


def _resource(**sections: Any) -> dict[str, Any]:
    return {"model": {"name": "m"}, "rollout": {"requireApproval": True}, **sections}


def test_approval_without_gitops_is_refused_in_a_model_deployment() -> None:
    with pytest.raises(ApprovalNeedsGitOpsError, match="requireApproval needs the GitOps runtime"):
        RolloutSpec.from_resource(_resource())
    with pytest.raises(ApprovalNeedsGitOpsError, match=r"spec\.gitops\.enabled"):
        RolloutSpec.from_resource(_resource(gitops={"enabled": False}))


def test_approval_with_gitops_from_the_spec_or_the_operator_is_read() -> None:
    spec = RolloutSpec.from_resource(_resource(gitops={"enabled": True, "repoUrl": "git@x:y"}))
    assert spec.rollout.require_approval
    assert RolloutSpec.from_resource(_resource(), gitops=True).rollout.require_approval
    # Without approval GitOps is optional.
    assert not RolloutSpec.from_resource({"model": {"name": "m"}}).rollout.require_approval


def test_approval_without_gitops_is_refused_in_the_local_settings() -> None:
    settings = Settings(rollout={"require_approval": True})  # type: ignore[call-arg]
    with pytest.raises(ApprovalNeedsGitOpsError, match="DRIFTLINE_CONTROLLER_REQUIRE_APPROVAL"):
        RolloutSpec.from_settings(settings)
    assert RolloutSpec.from_settings(settings, gitops=True).rollout.require_approval
