"""An OTLP/HTTP trace collector stand-in: accepts `POST /v1/traces` (protobuf), decodes each
export and keeps it, so a benchmark or test can count what a traced process really sent."""

from __future__ import annotations

import threading
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest


class OtlpCollector:
    """A local collector on a free loopback port; `url` is what OTEL_EXPORTER_OTLP_ENDPOINT
    takes."""

    def __init__(self) -> None:
        self.exports: list[ExportTraceServiceRequest] = []
        self._lock = threading.Lock()
        collector = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                ok = (
                    self.path == "/v1/traces"
                    and self.headers["Content-Type"] == "application/x-protobuf"
                )
                if ok:
                    with collector._lock:
                        collector.exports.append(ExportTraceServiceRequest.FromString(body))
                self.send_response(200 if ok else 400)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *_args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"

    def __enter__(self) -> OtlpCollector:
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def __exit__(
        self,
        _type: type[BaseException] | None,
        _value: BaseException | None,
        _tb: TracebackType | None,
    ) -> None:
        self._server.shutdown()
        self._server.server_close()

    def span_names(self) -> Counter[str]:
        """How many spans of each name arrived."""
        with self._lock:
            exports = list(self.exports)
        return Counter(
            span.name
            for export in exports
            for resource in export.resource_spans
            for scope in resource.scope_spans
            for span in scope.spans
        )

    def services(self) -> set[str]:
        """The `service.name` of every process that exported."""
        with self._lock:
            exports = list(self.exports)
        return {
            attribute.value.string_value
            for export in exports
            for resource in export.resource_spans
            for attribute in resource.resource.attributes
            if attribute.key == "service.name"
        }
