"""The HTML drift report: it parses, draws one chart per feature, and fetches nothing."""

from __future__ import annotations

from datetime import timedelta
from html.parser import HTMLParser
from typing import Any

import numpy as np
import pandas as pd
import pytest

from driftline.drift.compare import compare_rows
from driftline.drift.detectors import FeatureDrift
from driftline.drift.html import render_html

FEATURES = ["ret_1", "rsi_14", "rvol_20", "volume_change"]
VOID = {"meta", "br", "img", "input", "link", "hr"}  # HTML void elements; SVG ones self-close


class Tags(HTMLParser):
    """Checks that tags nest and records them with their attributes."""

    def __init__(self) -> None:
        super().__init__()
        self.open: list[str] = []
        self.seen: list[tuple[str, dict[str, str | None]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.seen.append((tag, dict(attrs)))
        if tag not in VOID:
            self.open.append(tag)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.seen.append((tag, dict(attrs)))

    def handle_endtag(self, tag: str) -> None:
        assert self.open, f"</{tag}> closes nothing"
        assert self.open[-1] == tag, f"</{tag}> closes <{self.open[-1]}>"
        self.open.pop()


def parse(page: str) -> Tags:
    tags = Tags()
    tags.feed(page)
    tags.close()
    assert tags.open == [], f"unclosed {tags.open}"
    return tags


@pytest.fixture(scope="module")
def report() -> dict[str, Any]:
    rng = np.random.default_rng(3)
    days = pd.date_range("2004-01-01", periods=700, freq="B", tz="UTC")
    rows = pd.DataFrame(rng.standard_normal((700, len(FEATURES))), index=days, columns=FEATURES)
    # The last 60 rows move: a volatility feature jumps, a return drifts a little.
    rows.iloc[-60:, 2] += 3.0
    rows.iloc[-60:, 0] += 0.5
    found = compare_rows(rows.iloc[:-60], rows.iloc[-60:], detector=FeatureDrift(), null_windows=40)
    return found.to_dict()


def test_the_page_parses_and_draws_one_chart_per_feature(report: dict[str, Any]) -> None:
    tags = parse(render_html(report))
    charts = [a for tag, a in tags.seen if tag == "svg"]
    assert len(charts) == len(FEATURES)
    assert all(a["aria-label"] == "reference and current shares per bin" for a in charts)


def test_the_page_fetches_nothing(report: dict[str, Any]) -> None:
    page = render_html(report)
    tags = parse(page)
    assert not [(tag, a) for tag, a in tags.seen if {"src", "href"} & set(a)]
    assert "http" not in page
    assert "<script" not in page
    assert "url(" not in page


def test_the_page_says_the_verdict_and_why(report: dict[str, Any]) -> None:
    page = render_html(report)
    assert f">{report['severity']}</span>" in page
    assert report["recommendation"] in page
    for reason in report["reasons"]:
        assert reason.replace("'", "&#x27;") in page
    assert "rvol_20" in report["drifted_features"]
    assert "share of feature groups drifted" in page


def test_histograms_are_compact_and_sum_to_one(report: dict[str, Any]) -> None:
    feature = next(r for r in report["results"] if r["detector"] == "feature")
    for name in FEATURES:
        histogram = feature["summary"]["histograms"][name]
        assert len(histogram["reference"]) == len(histogram["edges"]) + 1
        assert sum(histogram["current"]) == pytest.approx(1.0, abs=1e-3)
        assert sum(histogram["reference"]) == pytest.approx(1.0, abs=1e-3)


def test_history_adds_a_chart_of_the_score_over_time(report: dict[str, Any]) -> None:
    created = pd.Timestamp(report["created_at"])
    earlier = [
        {**report, "report_id": f"r{i}", "created_at": (created - timedelta(days=i)).isoformat()}
        for i in (1, 2, 3)
    ]
    tags = parse(render_html(report, earlier))
    labels = [a.get("aria-label") for tag, a in tags.seen if tag == "svg"]
    assert labels.count("drift score over time") == 1
    assert len(labels) == len(FEATURES) + 1
    assert len(parse(render_html(report, [])).seen) < len(tags.seen)


def test_feature_names_are_escaped(report: dict[str, Any]) -> None:
    hostile = {**report, "features": {"<script>x</script>": {}}, "reasons": ["<b>"]}
    page = render_html(hostile)
    assert "<script>" not in page
    assert "&lt;script&gt;" in page
    parse(page)
