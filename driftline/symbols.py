"""What a market symbol may be, checked the same way wherever one enters (the forecast
endpoint, the outcomes API and CLI, the settings the stream reads). Imports no Driftline module."""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import StringConstraints

SYMBOL_PATTERN = r"^[A-Za-z0-9^][A-Za-z0-9._^=-]{0,31}$"
"""A symbol as every entry point accepts it: 1-32 printable ASCII ticker characters
(`SPX`, `^GSPC`, `BRK.B`, `EURUSD=X`); no NUL, control character or lone surrogate reaches the
store or a log line."""
_SYMBOL = re.compile(SYMBOL_PATTERN.rstrip("$") + r"\Z")

Symbol = Annotated[str, StringConstraints(pattern=SYMBOL_PATTERN)]
"""A validated symbol in a pydantic model (the API's request bodies, settings)."""


def check_symbol(value: object) -> str:
    """`value` when it is a valid symbol, else ValueError saying what a symbol may hold."""
    if not isinstance(value, str) or not _SYMBOL.match(value):
        shown = repr(value)[:40]
        raise ValueError(
            f"symbol {shown} is not valid: 1-32 characters of A-Z, a-z, 0-9 and . _ ^ = -"
        )
    return value
