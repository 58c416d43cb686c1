"""The ensemble's output names, the same in every runtime: `prediction` and `member_<name>`.

V2 tensors, pyfunc columns and V2 metadata use these flat names. The stream message, the
forecast answer and the prediction log keep member outputs in their own map (`members`,
`member_outputs`), keyed by the member's own name, which `member_output` turns into its flat name.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TypeVar

PREDICTION = "prediction"
MEMBER_PREFIX = "member_"

T = TypeVar("T")


def member_output(member: str) -> str:
    """The flat output name of `member`'s prediction."""
    return f"{MEMBER_PREFIX}{member}"


def output_names(members: Iterable[str]) -> list[str]:
    """Every output name, the ensemble's first, then members in bundle order."""
    return [PREDICTION, *(member_output(m) for m in members)]


def named_outputs(prediction: T, members: Mapping[str, T]) -> dict[str, T]:
    """The ensemble and member outputs under their flat names, in `output_names` order."""
    return {PREDICTION: prediction, **{member_output(k): v for k, v in members.items()}}
