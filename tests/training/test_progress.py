"""Progress lines: elapsed seconds, a stage column, the message."""

from __future__ import annotations

import io

from training.progress import Progress


def test_lines_carry_elapsed_time_and_stage() -> None:
    stream = io.StringIO()
    ticks = iter([100.0, 112.34])
    Progress(stream, clock=lambda: next(ticks))("tune", "rf trial 1/2 fold 3/4")
    assert stream.getvalue() == "[   12.3s] tune      rf trial 1/2 fold 3/4\n"
