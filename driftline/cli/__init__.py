"""The `driftline` command line: each subcommand lives in its own module and loads on first use."""

from __future__ import annotations

import importlib

import click

# Subcommand name -> "module:attribute". Loading lazily keeps `driftline --help` fast: Ray,
# MLflow and alibi-detect take seconds to import.
COMMANDS: dict[str, str] = {
    "db": "driftline.cli.db:db",
    "keys": "driftline.cli.keys:keys",
    "drift": "driftline.cli.drift:drift",
    "outcomes": "driftline.cli.drift:outcomes",
    "train": "driftline.cli.train:train",
    "serve": "driftline.cli.serve:serve",
    "up": "driftline.cli.up:up",
    # controller (operators/)
    "controller": "driftline.cli.controller:controller",
    "status": "driftline.cli.controller:status",
    "promote": "driftline.cli.controller:promote",
    "rollback": "driftline.cli.controller:rollback",
    "audit": "driftline.cli.controller:audit",
}


class LazyGroup(click.Group):
    """A click group whose subcommands are imported only when invoked or listed."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *COMMANDS})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in COMMANDS:
            module_name, attribute = COMMANDS[cmd_name].split(":")
            command = getattr(importlib.import_module(module_name), attribute)
            assert isinstance(command, click.Command)
            return command
        return super().get_command(ctx, cmd_name)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="driftline")
def main() -> None:
    """Train, serve, watch and roll out ensemble models."""


__all__ = ["main"]
