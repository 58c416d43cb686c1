"""Typed serving errors; the ingress maps each to its HTTP status and a `{"error": ...}` body."""

from __future__ import annotations

from typing import ClassVar


class ServingError(Exception):
    """An error with the HTTP status and metric kind the ingress answers it with."""

    status: ClassVar[int] = 500
    kind: ClassVar[str] = "internal"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class BadInputError(ServingError):
    """The request is malformed or its values are unusable."""

    status = 400
    kind = "bad_input"


class NotFoundError(ServingError):
    """The model, version or route does not exist."""

    status = 404
    kind = "bad_input"


class PayloadTooLargeError(ServingError):
    """The request body exceeds the configured limit."""

    status = 413
    kind = "bad_input"


class OverloadedError(ServingError):
    """A bounded queue is full; the client should retry later."""

    status = 503
    kind = "overload"


class ReplicaUnavailableError(ServingError):
    """A replica that was to answer died or cannot be reached; a retry reaches another."""

    status = 503
    kind = "unavailable"


class NotReadyError(ServingError):
    """No model version is ready to answer."""

    status = 503
    kind = "overload"


class DeadlineExceededError(ServingError):
    """The request did not finish within the end-to-end timeout."""

    status = 504
    kind = "timeout"
