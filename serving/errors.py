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


class BadInput(ServingError):
    """The request is malformed or its values are unusable."""

    status = 400
    kind = "bad_input"


class NotFound(ServingError):
    """The model, version or route does not exist."""

    status = 404
    kind = "bad_input"


class PayloadTooLarge(ServingError):
    """The request body exceeds the configured limit."""

    status = 413
    kind = "bad_input"


class Overloaded(ServingError):
    """A bounded queue is full; the client should retry later."""

    status = 503
    kind = "overload"


class NotReady(ServingError):
    """No model version is ready to answer."""

    status = 503
    kind = "overload"


class DeadlineExceeded(ServingError):
    """The request did not finish within the end-to-end timeout."""

    status = 504
    kind = "timeout"
