"""The benchmark harness: discovery, Markdown rendering, results on disk."""

from __future__ import annotations

import json
from pathlib import Path

from benchmarks import harness


def test_discovery_finds_benchmark_modules_but_not_the_harness() -> None:
    names = harness.discover()
    assert "training" in names
    assert "harness" not in names
    assert not any(n.startswith("_") for n in names)


def test_tables_render_as_markdown_with_notes(tmp_path: Path) -> None:
    result = {
        "title": "Demo",
        "tables": [
            {"title": "costs", "columns": ["case", "ms"], "rows": [["a", 1.23456], ["b", 2]]}
        ],
        "notes": ["medians of one run"],
    }
    json_path, md_path = harness.write("demo", result, tmp_path)
    assert json.loads(json_path.read_text()) == result
    assert md_path.read_text() == (
        "# Demo\n\n## costs\n\n| case | ms |\n| --- | --- |\n| a | 1.235 |\n| b | 2 |\n\n"
        "- medians of one run\n"
    )


def test_a_result_without_tables_renders_as_key_value_pairs() -> None:
    text = harness.markdown({"title": "Plain", "p50_ms": 4.5, "load": {"clients": 4}})
    assert "| p50_ms | 4.5 |" in text
    assert "| load.clients | 4 |" in text


def test_unknown_benchmarks_are_refused() -> None:
    assert harness.main(["no_such_benchmark"]) == 2
