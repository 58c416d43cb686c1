"""The baseline: KServe's own ModelServer serving the same ensemble in one process.

Run as `python -m benchmarks.kserve_server --port P --home H --version V`. The model is the
InferenceService predictor's own (`serving.kserve_server.build_model`): the registry's runtime,
ONNX sessions of one thread each, combined in-process. Two changes from
KServe's defaults, both in its favour or required here: per-request access and timing logs are
off (our ingress does not log per request either), and uvicorn binds 127.0.0.1 (KServe
hard-codes 0.0.0.0; nothing here may listen beyond loopback).
"""

from __future__ import annotations

import argparse
import logging
from typing import Any

import uvicorn


class _LoopbackConfig(uvicorn.Config):
    def __init__(self, app: Any, **kwargs: Any) -> None:
        kwargs["host"] = "127.0.0.1"
        super().__init__(app, **kwargs)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--home", required=True)
    parser.add_argument("--version", default="1")
    args = parser.parse_args()
    uvicorn.Config = _LoopbackConfig  # type: ignore[misc,assignment]

    from kserve import ModelServer  # noqa: PLC0415

    from benchmarks import synthetic  # noqa: PLC0415
    from driftline.config import Settings  # noqa: PLC0415
    from serving.kserve_server import build_model  # noqa: PLC0415

    settings = Settings(home=args.home)
    model = build_model(
        settings, synthetic.load(settings, settings.registry.model_name, args.version)
    )
    server = ModelServer(http_port=args.port, enable_grpc=False, enable_latency_logging=False)
    for name in ("uvicorn.access", "kserve.trace"):
        logging.getLogger(name).disabled = True
    server.start([model])


if __name__ == "__main__":
    main()
