"""`python -m tests.serving.kserve_predictor`: the InferenceService predictor, on loopback.

It runs `serving.kserve_server.main` unchanged, configured by the environment as in a pod; only
the address differs: KServe's REST server binds 0.0.0.0, and a test's server listens on
127.0.0.1 alone (as `benchmarks.kserve_server` does).
"""

from __future__ import annotations

from typing import Any

import uvicorn


class _LoopbackConfig(uvicorn.Config):
    def __init__(self, app: Any, **kwargs: Any) -> None:
        kwargs["host"] = "127.0.0.1"
        super().__init__(app, **kwargs)


if __name__ == "__main__":
    uvicorn.Config = _LoopbackConfig  # type: ignore[misc,assignment]
    from serving.kserve_server import main

    main()
