"""`driftline db`: the revision as text or as one JSON document."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from driftline.cli import main
from driftline.store import migrate


def test_upgrade_and_current_as_json(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DRIFTLINE_HOME", str(tmp_path))
    upgraded = CliRunner().invoke(main, ["db", "upgrade", "--json"])
    assert upgraded.exit_code == 0, upgraded.output
    head = migrate.head_revision()
    assert json.loads(upgraded.output) == {"revision": head, "head": head}
    text = CliRunner().invoke(main, ["db", "current"]).output
    assert text == f"store at revision {head} (newest {head})\n"
    down = CliRunner().invoke(main, ["db", "downgrade", "base", "--json"])
    assert json.loads(down.output) == {"revision": "base", "head": head}
