"""Runtimes carry out the controller's actions: local Ray, Kubernetes, GitOps."""

from operators.runtimes.base import Runtime, RuntimeOperationError, ServingObservation

__all__ = ["Runtime", "RuntimeOperationError", "ServingObservation"]
