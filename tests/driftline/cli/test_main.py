"""`driftline` itself: listing commands stays light, and the table tells the truth."""

from __future__ import annotations

import subprocess
import sys

import click
import pytest
from click.testing import CliRunner

from driftline.cli import COMMANDS, main

HEAVY = ("pandas", "ray", "mlflow", "sqlalchemy", "numpy", "scipy", "talib")

_PROBE = f"""
import sys
from driftline.cli import main
try:
    main(["--help"])
except SystemExit as done:
    assert done.code == 0, done.code
print("imported:" + ",".join(m for m in {HEAVY!r} if m in sys.modules))
"""


def test_listing_commands_imports_no_component_or_heavy_library() -> None:
    # A fresh interpreter: this test process has imported all of them already.
    probe = subprocess.run(
        [sys.executable, "-c", _PROBE], capture_output=True, text=True, check=True, timeout=120
    )
    *help_text, imported = probe.stdout.strip().splitlines()
    assert "Commands:" in help_text
    assert imported == "imported:", f"`driftline --help` {imported}"


def _command(name: str) -> click.Command:
    command = main.get_command(click.Context(main), name)  # type: ignore[attr-defined]
    assert isinstance(command, click.Command)
    return command


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_each_command_loads_from_its_owner_and_shows_an_example(name: str) -> None:
    command = _command(name)
    module = COMMANDS[name].target.split(":")[0]
    assert command.callback is not None
    assert command.callback.__module__ == module
    result = CliRunner().invoke(main, [name, "--help"])
    assert result.exit_code == 0, result.output
    assert "Example" in result.output
