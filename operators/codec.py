"""The stored form of the controller's state: JSON the store keeps and the CR status mirrors."""

from __future__ import annotations

from typing import Any

from pydantic import TypeAdapter

from operators.states import RolloutState

_STATE = TypeAdapter(RolloutState)


def encode_state(state: RolloutState) -> dict[str, Any]:
    """`state` as JSON-ready data."""
    data: dict[str, Any] = _STATE.dump_python(state, mode="json")
    return data


def decode_state(data: dict[str, Any]) -> RolloutState:
    """The state `encode_state` wrote (validated: a corrupt row fails loudly, not silently)."""
    return _STATE.validate_python(data)
