"""Record ids: valid UUIDv7s whose text order is their time order."""

from __future__ import annotations

import time
import uuid

from driftline.ids import new_id


def test_an_id_is_a_uuid7_in_32_hex_digits() -> None:
    ident = new_id()
    parsed = uuid.UUID(hex=ident)
    assert len(ident) == 32
    assert ident == parsed.hex
    assert parsed.version == 7
    assert parsed.variant == uuid.RFC_4122


def test_an_id_carries_the_millisecond_it_was_made() -> None:
    before = time.time_ns() // 1_000_000
    ident = new_id()
    after = time.time_ns() // 1_000_000
    assert before <= int(ident[:12], 16) <= after


def test_ids_made_in_later_milliseconds_sort_after_earlier_ones() -> None:
    earlier = [new_id() for _ in range(50)]
    time.sleep(0.002)
    later = [new_id() for _ in range(50)]
    assert max(earlier) < min(later)


def test_ids_do_not_repeat() -> None:
    made = [new_id() for _ in range(100_000)]
    assert len(set(made)) == len(made)
