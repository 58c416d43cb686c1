"""Identifiers for records the store keys on: time-ordered, so fresh ones sort together."""

from __future__ import annotations

import os
import time

_RAND_B = (1 << 62) - 1


def new_id() -> str:
    """A UUIDv7 (RFC 9562) as 32 hex digits: a millisecond timestamp, then 74 random bits.

    The store's keys start with these ids. Random ids (UUIDv4) put each insert on a random
    B-tree leaf, and PostgreSQL logs a whole 8 KiB page image for the first change to each
    page after a checkpoint: a write burst that stalls a busy server. Time-ordered ids
    land on the index's right edge.
    """
    millis = time.time_ns() // 1_000_000
    rand = int.from_bytes(os.urandom(10), "big") >> 6  # 74 bits
    value = (
        (millis & 0xFFFF_FFFF_FFFF) << 80
        | 0x7 << 76
        | (rand >> 62) << 64
        | 0b10 << 62
        | (rand & _RAND_B)
    )
    return f"{value:032x}"
