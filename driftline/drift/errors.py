"""Errors drift detection raises for input it cannot use; each message is one line."""

from __future__ import annotations


class DriftInputError(ValueError):
    """A window, range, feature list or reference the detectors cannot use."""
