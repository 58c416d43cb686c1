"""The repository tracks source, never local state a run leaves behind."""

from __future__ import annotations

import fnmatch
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LOCAL_STATE = ("*.db", "*.db-journal", "*.sqlite", "mlruns/*", "mlartifacts/*", ".driftline/*")


def tracked_files() -> list[str]:
    """Paths git tracks in this checkout."""
    out = subprocess.run(
        ["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout
    return out.splitlines()


def test_no_local_state_is_tracked() -> None:
    try:
        files = tracked_files()
    except (OSError, subprocess.CalledProcessError):
        pytest.skip("not a git checkout")
    state = [f for f in files if any(fnmatch.fnmatch(f, p) for p in LOCAL_STATE)]
    assert state == []


def test_the_project_has_a_licence() -> None:
    text = (ROOT / "LICENSE").read_text()
    assert "Apache License" in text
    assert "Version 2.0" in text
