"""GitOpsRuntime: jobs and serving through another runtime; the champion is a commit."""

from __future__ import annotations

from datetime import datetime

from driftline.contracts import Colour
from operators.actions import RequestApproval, SetChampion, SubmitRetraining
from operators.gitops import GitOpsRepository
from operators.observations import Approval, Health, JobObservation
from operators.runtimes.base import Approvals, Runtime, ServingObservation


class GitOpsRuntime:
    """Promotion edits `model.version` in the environment's values file; rollback reverts it.

    It is also where promotions await approval: a review branch per version (`Approvals`).
    """

    name = "gitops"

    def __init__(self, delegate: Runtime, repo: GitOpsRepository) -> None:
        self.delegate, self.repo = delegate, repo

    def champion_version(self) -> str | None:
        committed, recorded = self.repo.current_version(), self.delegate.champion_version()
        if committed is None or committed == recorded:
            return recorded  # an empty version follows the registry's alias
        if recorded is not None and self.repo.under_review(recorded):
            return recorded  # the file follows once the review branch merges: no need to ask again
        # The file and the registry disagree: report both, so `decide` publishes again.
        return f"git:{committed}/registry:{recorded}"

    def set_champion(self, action: SetChampion) -> None:
        self.repo.publish(action)  # the environment's record first: it is the source of truth
        self.delegate.set_champion(action)

    def approval(self, version: str) -> Approval:
        return self.repo.approval(version)

    def request_approval(self, action: RequestApproval) -> None:
        self.repo.request_approval(action.promotion)

    def observe_serving(self) -> ServingObservation:
        return self.delegate.observe_serving()

    def observe_job(self, job_id: str) -> JobObservation:
        return self.delegate.observe_job(job_id)

    def running_jobs(self) -> tuple[str, ...]:
        return self.delegate.running_jobs()

    def health(self, colour: Colour, version: str, since: datetime) -> Health:
        return self.delegate.health(colour, version, since)

    def submit_retraining(self, action: SubmitRetraining) -> None:
        self.delegate.submit_retraining(action)

    def stop_retraining(self, job_id: str) -> None:
        self.delegate.stop_retraining(job_id)

    def deploy(self, colour: Colour, version: str) -> None:
        self.delegate.deploy(colour, version)

    def route(self, active: Colour, shadow: Colour | None) -> None:
        self.delegate.route(active, shadow)

    def retire(self, colour: Colour) -> None:
        self.delegate.retire(colour)


def approvals_of(runtime: Runtime) -> Approvals | None:
    """The runtime's approval branches, if it promotes through GitOps."""
    return runtime if isinstance(runtime, GitOpsRuntime) else None
