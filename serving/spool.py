"""A bounded local file the prediction writer spills to while the store is down.

One file per ingress process, locked while it lives, one ASCII JSON record per line, read back
oldest first. A file whose process died (its lock free) is adopted by the next writer that
starts, so a crash during an outage loses nothing the spool held; re-writing a record twice is
harmless because store writes are idempotent on (request_id, slot).
"""

from __future__ import annotations

import fcntl
import os
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import BinaryIO

from driftline.store import PredictionRecord
from driftline.store.predictions import record_from_json, record_json

SUFFIX = ".spool"


class Spool:
    """An append-only file of prediction records with a read position, at most `max_bytes`."""

    def __init__(self, directory: Path, max_bytes: int) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.path = directory / f"predictions-{os.getpid()}{SUFFIX}"
        self._max_bytes = max_bytes
        self._file: BinaryIO = self.path.open("a+b")
        fcntl.flock(self._file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        # The drain task reads while a spill task appends, each on a worker thread.
        self._lock = threading.Lock()
        self._read = 0
        self._size = self._file.seek(0, os.SEEK_END)
        self._pending = self._count_lines()

    def __len__(self) -> int:
        return self._pending

    def append(self, records: Sequence[PredictionRecord]) -> int:
        """Append what fits of `records` in order; returns how many were written."""
        with self._lock:
            return self._append(records)

    def _append(self, records: Sequence[PredictionRecord]) -> int:
        lines = []
        size = self._size
        for record in records:
            line = record_json(record).encode("ascii") + b"\n"
            if size + len(line) > self._max_bytes:
                break
            lines.append(line)
            size += len(line)
        self._write(b"".join(lines))
        self._pending += len(lines)
        return len(lines)

    def peek(self, max_rows: int) -> tuple[list[PredictionRecord], int]:
        """The oldest unread records (about `max_rows` rows) and the position after them."""
        with self._lock:
            return self._peek(max_rows)

    def _peek(self, max_rows: int) -> tuple[list[PredictionRecord], int]:
        self._file.seek(self._read)
        records: list[PredictionRecord] = []
        rows = 0
        position = self._read
        while rows < max_rows and position < self._size:
            line = self._file.readline()
            if not line.endswith(b"\n"):
                break  # a line torn by a crash mid-write: nothing after it was written
            record = record_from_json(line.decode("ascii"))
            records.append(record)
            rows += record.n_rows
            position += len(line)
        return records, position

    def commit(self, position: int, count: int) -> None:
        """Mark everything before `position` (`count` records) written; empties a drained file."""
        with self._lock:
            self._commit(position, count)

    def _commit(self, position: int, count: int) -> None:
        self._read = position
        self._pending -= count
        if self._read >= self._size:
            self._file.truncate(0)
            self._read = self._size = self._pending = 0

    def adopt_orphans(self) -> int:
        """Take over the spool files of dead processes in this directory; records adopted."""
        adopted = 0
        for path in sorted(self.path.parent.glob(f"*{SUFFIX}")):
            if path == self.path:
                continue
            with path.open("rb") as orphan:
                try:
                    fcntl.flock(orphan, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    continue  # its process is alive and still spilling
                data = orphan.read()
            # Complete lines only; adopted files may exceed our bound rather than lose records.
            data = data[: data.rfind(b"\n") + 1]
            with self._lock:
                self._write(data)
                self._pending += data.count(b"\n")
            adopted += data.count(b"\n")
            path.unlink()
        return adopted

    def close(self) -> None:
        """Release the file; an empty one is removed."""
        if self._size == 0:
            self.path.unlink(missing_ok=True)
        self._file.close()

    def _write(self, data: bytes) -> None:
        if not data:
            return
        self._file.seek(0, os.SEEK_END)
        self._file.write(data)
        self._file.flush()
        self._size += len(data)

    def _count_lines(self) -> int:
        self._file.seek(0)
        return sum(1 for line in self._file if line.endswith(b"\n"))
