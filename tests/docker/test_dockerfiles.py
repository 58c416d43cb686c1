"""docker/: pinned slim bases, non-root final stage, no build tools, health checks."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

DOCKER = Path(__file__).resolve().parents[2] / "docker"
IMAGES = sorted(DOCKER.glob("*.Dockerfile"))
BUILD_TOOLS = re.compile(r"\b(gcc|g\+\+|make|build-essential|cmake|clang|python3-dev|libc6-dev)\b")


def instructions(path: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with line continuations joined and comments dropped."""
    joined = re.sub(r"\\\n", " ", path.read_text())
    result = []
    for raw in joined.splitlines():
        line = raw.strip()
        if line and not line.startswith("#"):
            keyword, _, rest = line.partition(" ")
            result.append((keyword.upper(), rest.strip()))
    return result


def final_stage(path: Path) -> list[tuple[str, str]]:
    """Instructions of the last FROM stage."""
    steps = instructions(path)
    last = max(i for i, (keyword, _) in enumerate(steps) if keyword == "FROM")
    return steps[last:]


def test_one_image_per_component() -> None:
    assert [p.name for p in IMAGES] == [
        "controller.Dockerfile",
        "serving.Dockerfile",
        "training.Dockerfile",
    ]


@pytest.mark.parametrize("path", IMAGES, ids=lambda p: p.stem)
def test_bases_are_pinned_slim_images(path: Path) -> None:
    bases = [args.split()[0] for keyword, args in instructions(path) if keyword == "FROM"]
    assert len(bases) >= 2, "multi-stage: build tools stay in the build stage"
    for base in bases:
        assert re.fullmatch(r"python:\d+\.\d+\.\d+-slim-bookworm(@sha256:[0-9a-f]{64})?", base), (
            base
        )


@pytest.mark.parametrize("path", IMAGES, ids=lambda p: p.stem)
def test_final_stage_runs_as_non_root_without_build_tools(path: Path) -> None:
    stage = final_stage(path)
    users = [args for keyword, args in stage if keyword == "USER"]
    assert users
    assert users[-1].split(":")[0] not in {"0", "root"}
    assert int(users[-1].split(":")[0]) >= 10000
    for keyword, args in stage:
        if keyword == "RUN":
            assert not BUILD_TOOLS.search(args), args
            assert "pip install" not in args, "install in the build stage, copy the venv"
    copied = [args for keyword, args in stage if keyword == "COPY"]
    assert copied == ["--from=build /opt/venv /opt/venv"]


@pytest.mark.parametrize("path", IMAGES, ids=lambda p: p.stem)
def test_health_check_and_lock_pinned_install(path: Path) -> None:
    steps = instructions(path)
    (health,) = [args for keyword, args in steps if keyword == "HEALTHCHECK"]
    assert "CMD" in health
    assert "--timeout" in health
    installs = [args for keyword, args in steps if keyword == "RUN" and "uv pip install" in args]
    assert installs
    assert all("-c requirements/lock.txt" in args for args in installs)
