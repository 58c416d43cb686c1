"""The `driftline` command: a table of subcommands, each owned by its component, loaded on use.

Listing commands (`driftline --help`) reads only this table, so it imports nothing but click:
the components' modules pull in Ray, MLflow, pandas and SQLAlchemy, which take seconds.
"""

from __future__ import annotations

import importlib
import os
from typing import NamedTuple

import click


class Entry(NamedTuple):
    """Where a subcommand lives (`module:attribute`) and its one-line help for the listing."""

    target: str
    help: str


COMMANDS: dict[str, Entry] = {
    # base package: the store and drift
    "db": Entry("driftline.cli.db:db", "Manage the store's schema (Alembic migrations)."),
    "drift": Entry(
        "driftline.cli.drift:drift", "Detect drift: compare date ranges, run the monitor, report."
    ),
    "outcomes": Entry(
        "driftline.cli.drift:outcomes", "Record realised values to judge live performance."
    ),
    "keys": Entry("driftline.cli.keys:keys", "Create, list and revoke API keys."),
    # components
    "train": Entry("training.cli:train", "Train and register a new version as a Ray job."),
    "serve": Entry("serving.cli:serve", "Serve the champion with KServe V1/V2 until interrupted."),
    "controller": Entry("operators.cli:controller", "Run the rollout controller (run, step)."),
    "status": Entry("operators.cli:status", "Controller state, serving colour, candidate."),
    "promote": Entry("operators.cli:promote", "Ask the controller to roll a version out."),
    "rollback": Entry("operators.cli:rollback", "Ask the controller to roll back."),
    "audit": Entry("operators.cli:audit", "The controller's audit trail, oldest first."),
    # composition of all of the above
    "up": Entry("driftline.cli.up:up", "The whole platform locally: train, serve, watch."),
}


class LazyGroup(click.Group):
    """A click group that imports a subcommand's module only when that subcommand runs."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *COMMANDS})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        entry = COMMANDS.get(cmd_name)
        if entry is None:
            return super().get_command(ctx, cmd_name)
        module_name, attribute = entry.target.split(":")
        command = getattr(importlib.import_module(module_name), attribute)
        if not isinstance(command, click.Command):
            raise TypeError(f"{entry.target} is not a click command")
        return command

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = [(name, COMMANDS[name].help) for name in sorted(COMMANDS)]
        with formatter.section("Commands"):
            formatter.write_dl(rows)


@click.group(
    cls=LazyGroup,
    context_settings={"help_option_names": ["-h", "--help"]},
    epilog="Example: driftline up   (then `driftline status` in another terminal)",
)
@click.version_option(package_name="driftline")
@click.option(
    "--log-format",
    type=click.Choice(["auto", "text", "json"]),
    default="auto",
    show_default=True,
    help="Log lines on stderr: text, JSON, or auto (text on a terminal, JSON otherwise).",
)
def main(log_format: str) -> None:
    """Train, serve, watch and roll out ensemble models.

    `driftline COMMAND --help` shows a command's options and an example.
    """
    if log_format != "auto":
        # Through the environment, so that processes the command starts log the same way.
        os.environ["DRIFTLINE_LOG_JSON"] = "true" if log_format == "json" else "false"
    # MLflow logs its own INFO lines (database setup, run links) on import and use.
    os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "WARNING")


__all__ = ["COMMANDS", "main"]
