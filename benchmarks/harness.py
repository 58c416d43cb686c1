"""Discover benchmark modules, run each in its own process, write JSON and Markdown results."""

from __future__ import annotations

import importlib
import json
import os
import pkgutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

PACKAGE = Path(__file__).resolve().parent
RESULTS = PACKAGE / "results"
# Helpers the benchmarks share, not benchmarks themselves.
_NOT_BENCHMARKS = {"harness", "kserve_server", "loadgen", "otlp", "synthetic", "trace_overhead"}
# Drift reports its monitor's share of the stack's CPU, so the stack's figures must exist first.
_FIRST = ("training", "serving", "stack")


def discover() -> list[str]:
    """Names of the benchmark modules in this package, in the order they must run."""
    found = {
        m.name
        for m in pkgutil.iter_modules([str(PACKAGE)])
        if not m.name.startswith("_") and m.name not in _NOT_BENCHMARKS and not m.ispkg
    }
    return [n for n in _FIRST if n in found] + sorted(found - set(_FIRST))


def run_in_child(name: str, timeout_s: float = 3600) -> dict[str, Any]:
    """Run `benchmarks.<name>.run()` in a fresh interpreter and return its result."""
    with tempfile.TemporaryDirectory(prefix="dl-bench-") as scratch:
        out = Path(scratch) / "result.json"
        started = time.monotonic()
        done = subprocess.run(
            [sys.executable, "-m", "benchmarks.harness", "--child", name, str(out)],
            check=False,
            timeout=timeout_s,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        if done.returncode != 0 or not out.is_file():
            return {"title": name, "error": f"exited with code {done.returncode}"}
        result: dict[str, Any] = json.loads(out.read_text())
        result.setdefault("title", name)
        result["harness_seconds"] = round(time.monotonic() - started, 1)
        return result


def write(name: str, result: dict[str, Any], directory: Path = RESULTS) -> tuple[Path, Path]:
    """Write `<name>.json` and `<name>.md` under `directory`."""
    directory.mkdir(parents=True, exist_ok=True)
    json_path, md_path = directory / f"{name}.json", directory / f"{name}.md"
    json_path.write_text(json.dumps(result, indent=2, default=str) + "\n")
    md_path.write_text(_renderer(name)(result))
    return json_path, md_path


def _renderer(name: str) -> Callable[[dict[str, Any]], str]:
    """The module's own `markdown(result)` when it has one (serving's tables), else ours."""
    try:
        module = importlib.import_module(f"benchmarks.{name}")
    except ImportError:
        return markdown
    own = getattr(module, "markdown", None)
    return own if callable(own) else markdown


def markdown(result: dict[str, Any]) -> str:
    """A Markdown page: title, tables (or key/value pairs), notes."""
    lines = [f"# {result.get('title', 'benchmark')}", ""]
    tables = result.get("tables")
    if tables:
        for table in tables:
            lines += [f"## {table.get('title', '')}", "", *_table(table["columns"], table["rows"])]
            lines.append("")
    else:
        pairs = [(k, v) for k, v in _flatten(result) if k != "title"]
        lines += [*_table(["figure", "value"], pairs), ""]
    for note in result.get("notes", []):
        lines.append(f"- {note}")
    return "\n".join(lines).rstrip() + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    """`python -m benchmarks [NAME ...]`: run the named (default: all) benchmarks."""
    args = list(sys.argv[1:] if argv is None else argv)
    if args[:1] == ["--child"]:
        return _child(args[1], Path(args[2]))
    names = args or discover()
    unknown = sorted(set(names) - set(discover()))
    if unknown:
        print(f"unknown benchmark(s): {', '.join(unknown)}; have {', '.join(discover())}")
        return 2
    failed = 0
    for name in names:
        print(f"== benchmark {name}", flush=True)
        result = run_in_child(name)
        json_path, md_path = write(name, result)
        failed += "error" in result
        print(f"== {name}: {result.get('error', 'ok')} -> {json_path}, {md_path}", flush=True)
    return 1 if failed else 0


def main_for(module: str, run: Callable[[], dict[str, Any]]) -> None:
    """Let a benchmark module run standalone (`python -m benchmarks.<name>`)."""
    if module == "__main__":  # run with -m: the module's own name is on its spec
        spec = getattr(sys.modules["__main__"], "__spec__", None)
        module = spec.name if spec is not None else module
    name = module.rsplit(".", 1)[-1]
    json_path, md_path = write(name, run())
    print(f"wrote {json_path} and {md_path}")


def _child(name: str, out: Path) -> int:
    result = importlib.import_module(f"benchmarks.{name}").run()
    out.write_text(json.dumps(result, default=str))
    return 0


def _table(columns: Sequence[Any], rows: Iterable[Sequence[Any]]) -> list[str]:
    head = "| " + " | ".join(str(c) for c in columns) + " |"
    rule = "| " + " | ".join("---" for _ in columns) + " |"
    return [head, rule, *("| " + " | ".join(_cell(v) for v in row) + " |" for row in rows)]


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def _flatten(data: Any, prefix: str = "") -> list[tuple[str, Any]]:
    if isinstance(data, dict):
        return [pair for k, v in data.items() for pair in _flatten(v, f"{prefix}{k}.")]
    return [(prefix.rstrip("."), data)]


if __name__ == "__main__":
    sys.exit(main())
