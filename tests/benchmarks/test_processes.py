"""Naming the processes of a serving tree (benchmarks/_processes.py)."""

from __future__ import annotations

import psutil

from benchmarks._processes import kind_of, sample, total, tree


def test_processes_are_named_by_what_they_run() -> None:
    python = "/work/.venv/bin/python"
    assert kind_of([python, "/work/.venv/bin/driftline", "serve", "--version", "1"]) == (
        "driftline serve"
    )
    assert kind_of([python, "-m", "driftline.cli", "up"]).startswith("driftline up")
    assert kind_of(["ray::ServeReplica:driftline:Ingress.handle"]) == (
        "serve replica driftline/Ingress"
    )
    assert kind_of(["/ray/core/src/ray/gcs/gcs_server", "--port=1"]) == "ray gcs"


def test_this_process_is_sampled() -> None:
    me = psutil.Process()
    assert tree(me)[0] == me
    memory = sample(me)
    assert total(memory, "pss") > 0
    assert total(memory, "rss") >= total(memory, "pss")
