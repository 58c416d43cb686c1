"""Log lines: text for a person at a terminal, JSON for everything else."""

from __future__ import annotations

import io
import logging
import os
from collections.abc import Iterator

import orjson
import pytest
from click.testing import CliRunner

from driftline.cli import main
from driftline.observability import logs
from driftline.observability.logs import JsonFormatter, TextFormatter, configure_logging


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.fixture(autouse=True)
def _restore_root() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


def _formatter() -> logging.Formatter | None:
    return logging.getLogger().handlers[0].formatter


def test_text_on_a_terminal_json_otherwise(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(logs.sys, "stderr", Terminal())
    configure_logging()
    assert isinstance(_formatter(), TextFormatter)
    monkeypatch.setattr(logs.sys, "stderr", io.StringIO())
    configure_logging()
    assert isinstance(_formatter(), JsonFormatter)
    configure_logging(json=False)
    assert isinstance(_formatter(), TextFormatter)


def test_a_text_line_carries_the_extra_fields() -> None:
    record = logging.makeLogRecord(
        {"name": "serving.ingress", "levelname": "INFO", "msg": "routing updated", "active": "blue"}
    )
    line = TextFormatter().format(record)
    assert line.endswith(" info serving.ingress: routing updated active=blue")
    assert orjson.loads(JsonFormatter().format(record))["active"] == "blue"


def test_log_format_reaches_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DRIFTLINE_LOG_JSON", raising=False)
    assert CliRunner().invoke(main, ["--log-format", "text", "drift", "--help"]).exit_code == 0
    assert os.environ["DRIFTLINE_LOG_JSON"] == "false"
    assert CliRunner().invoke(main, ["--log-format", "json", "drift", "--help"]).exit_code == 0
    assert os.environ["DRIFTLINE_LOG_JSON"] == "true"


def test_inside_a_serve_replica_lines_go_to_serves_logger_without_a_stack_walk(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from ray.serve._private import logging_utils  # noqa: PLC0415

    received: list[logging.LogRecord] = []
    target = logging.getLogger("test.serve.replica")
    target.propagate = False
    target.setLevel(logging.INFO)
    monkeypatch.setattr(target, "handlers", [_Collect(received)])
    monkeypatch.setattr(logs.sys, "stderr", logging_utils.StreamToLogger(target, 20, io.StringIO()))

    def walked() -> None:
        raise AssertionError("a log line walked the stack")

    monkeypatch.setattr(logging_utils.traceback, "extract_stack", walked)
    configure_logging(json=True)
    logging.getLogger("serving.ingress").warning("routing updated", extra={"active": "blue"})
    logging.getLogger("serving.ingress").debug("below the level")
    [record] = received
    assert record.levelno == logging.WARNING
    line = orjson.loads(record.getMessage())
    assert (line["msg"], line["level"], line["active"]) == ("routing updated", "warning", "blue")


class _Collect(logging.Handler):
    def __init__(self, into: list[logging.LogRecord]) -> None:
        super().__init__()
        self.into = into

    def emit(self, record: logging.LogRecord) -> None:
        self.into.append(record)
