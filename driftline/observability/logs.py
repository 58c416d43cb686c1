"""Log lines: JSON (with a per-request correlation id bound through contextvars) for machines,
short text for a person at a terminal."""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any

import orjson

correlation_id: ContextVar[str | None] = ContextVar("correlation_id", default=None)

# Attributes every LogRecord has; anything else came through `extra=` and is logged as a field.
_STANDARD_ATTRS = frozenset(logging.makeLogRecord({}).__dict__) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, correlation and trace ids, and
    extra fields."""

    def format(self, record: logging.LogRecord) -> str:
        payload: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        cid = correlation_id.get()
        if cid is not None:
            payload["correlation_id"] = cid
        payload.update(_trace_fields())
        payload.update(
            (key, value)
            for key, value in record.__dict__.items()
            if key not in _STANDARD_ATTRS and not key.startswith("_")
        )
        if record.exc_info:
            payload["exc"] = self.formatException(record.exc_info)
        return orjson.dumps(payload, default=str).decode()


def _trace_fields() -> dict[str, str]:
    # No span can be current in a process that never loaded the tracing module, and loading
    # OpenTelemetry costs a CLI that only logs about 40 ms.
    tracing = sys.modules.get("driftline.observability.tracing")
    if tracing is None:
        return {}
    trace_id = tracing.current_trace_id()
    if trace_id is None:
        return {}
    return {"trace_id": trace_id, "span_id": tracing.current_span_id()}


class TextFormatter(logging.Formatter):
    """`12:03:04 warning serving.ingress: message key=value ...`, for a person reading."""

    def format(self, record: logging.LogRecord) -> str:
        when = datetime.fromtimestamp(record.created).strftime("%H:%M:%S")
        extra = " ".join(
            f"{key}={value}"
            for key, value in record.__dict__.items()
            if key not in _STANDARD_ATTRS and not key.startswith("_")
        )
        line = f"{when} {record.levelname.lower()} {record.name}: {record.getMessage()}"
        line = f"{line} {extra}" if extra else line
        return f"{line}\n{self.formatException(record.exc_info)}" if record.exc_info else line


def configure_logging(level: str = "INFO", *, json: bool | None = None) -> None:
    """Send the root logger's records to stderr: JSON lines when `json`, text when not, and
    when None, text on a terminal and JSON otherwise (a file, a pipe, a container's log)."""
    stream = sys.stderr
    if json is None:
        json = not stream.isatty()
    handler = _handler_for(stream)
    handler.setFormatter(JsonFormatter() if json else TextFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # Client libraries log every HTTP call at INFO; polling Ray's APIs would drown our lines.
    for chatty in ("httpx", "httpcore", "urllib3", "alembic.runtime.plugins", "mlflow"):
        logging.getLogger(chatty).setLevel(max(logging.WARNING, root.level))


class LoggerHandler(logging.Handler):
    """Hands each formatted line to `target`, the logger that owns the output, at its level."""

    def __init__(self, target: logging.Logger) -> None:
        super().__init__()
        self.target = target

    def emit(self, record: logging.LogRecord) -> None:
        if not self.target.isEnabledFor(record.levelno):
            return
        try:
            line = self.format(record)
        except Exception:  # logging.Handler's contract: report, never raise
            self.handleError(record)
            return
        # makeRecord rather than log(): the line is already formatted, and the caller lookup
        # would name this method.
        self.target.handle(
            self.target.makeRecord(
                self.target.name, record.levelno, record.pathname, record.lineno, line, (), None
            )
        )


def _handler_for(stream: Any) -> logging.Handler:
    # Inside a Serve replica, stderr is Serve's StreamToLogger, whose write() extracts the whole
    # stack (an os.stat per cached source file) for every line: with a line per request that
    # stalled the event loop for up to 100 ms. Its logger gets the lines directly instead, so
    # they land in the replica's log file as before.
    serve_logs = sys.modules.get("ray.serve._private.logging_utils")
    if serve_logs is not None and isinstance(stream, serve_logs.StreamToLogger):
        return LoggerHandler(stream._logger)
    return logging.StreamHandler(stream)


@contextmanager
def bound_correlation_id(value: str) -> Iterator[str]:
    """Bind `value` as the correlation id of every log line inside the block."""
    token = correlation_id.set(value)
    try:
        yield value
    finally:
        correlation_id.reset(token)
