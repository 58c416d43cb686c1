"""A drift report as one self-contained HTML page: inline CSS and SVG, no script, no fetches.

It reads the report's dict form (what `DriftReport.to_dict` writes and the store keeps), so
the CLI and the API render the same page. Sections: the verdict and the severity rule that
decided it, the feature groups, one small chart per feature (reference and current shares in
the null model's frozen bins, KS and PSI against their null thresholds), and the history of
the share of groups drifted when earlier reports are given.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from html import escape
from typing import Any

from driftline.drift.report import DetectorResult
from driftline.drift.severity import Findings, SeverityRules, findings_of

RULES = SeverityRules()
COLOURS = {
    "none": "#2e7d32",
    "low": "#689f38",
    "medium": "#f9a825",
    "high": "#ef6c00",
    "critical": "#c62828",
}
REFERENCE, CURRENT = "#5c6bc0", "#ef6c00"
CHART_W, CHART_H = 220, 90

STYLE = """
body{font:14px/1.45 system-ui,sans-serif;margin:2rem auto;max-width:72rem;color:#212121;
padding:0 1rem}
h1{font-size:1.5rem;margin:0 0 .3rem}h2{font-size:1.15rem;margin:2rem 0 .6rem}
.badge{display:inline-block;padding:.15rem .6rem;border-radius:1rem;color:#fff;font-weight:600}
.muted{color:#616161}table{border-collapse:collapse}td,th{padding:.25rem .6rem;text-align:left}
tr:nth-child(even){background:#f5f5f5}.grid{display:grid;gap:.8rem;
grid-template-columns:repeat(auto-fill,minmax(240px,1fr))}.card{border:1px solid #e0e0e0;
border-radius:6px;padding:.5rem}.card.drifted{border-color:#ef6c00;background:#fff8f0}
.card h3{font-size:.9rem;margin:0 0 .2rem;font-family:monospace}.card p{margin:.2rem 0;
font-size:.8rem}.held{font-weight:600}.legend span{margin-right:1rem}
.sw{display:inline-block;width:.8rem;height:.8rem;vertical-align:middle;margin-right:.3rem}
"""


def render_html(report: Mapping[str, Any], history: Sequence[Mapping[str, Any]] = ()) -> str:
    """The page for `report` (a report's dict form); `history` is earlier reports' dict forms."""
    results = [DetectorResult.from_dict(r) for r in report.get("results", [])]
    findings = findings_of(results)
    feature = next((r for r in results if r.detector == "feature" and r.skipped is None), None)
    version = f" v{report['model_version']}" if report.get("model_version") else ""
    title = f"Drift report: {report['model_name']}{version}"
    body = [
        _header(report),
        _verdict(report, findings),
        _groups(findings),
        _features(report, feature),
        _history(report, history),
    ]
    return (
        "<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'>"
        f"<title>{escape(title)}</title><style>{STYLE}</style></head><body>"
        f"<h1>{escape(title)}</h1>{''.join(body)}</body></html>\n"
    )


def _header(report: Mapping[str, Any]) -> str:
    window = f"{_day(report.get('window_start'))} to {_day(report.get('window_end'))}"
    if "reference" in report:  # `drift compare` names both ranges
        window += f" against reference {report['reference']}"
    return (
        f"<p class='muted'>report {escape(str(report['report_id']))} · created "
        f"{escape(_day(report.get('created_at'), minutes=True))} · window {escape(window)} · "
        f"{int(report.get('n_rows', 0))} rows</p>"
    )


def _verdict(report: Mapping[str, Any], findings: Findings) -> str:
    severity = str(report["severity"])
    reasons = "".join(f"<li>{escape(r)}</li>" for r in report.get("reasons", [])) or (
        "<li>nothing moved beyond the reference's own variation</li>"
    )
    rows = [
        ("share of feature groups drifted", f"{findings.share(RULES):.0%}", _share_rule()),
        (
            "groups that moved far",
            str(len(findings.far_groups(RULES))),
            f"far: median PSI ≥ {RULES.far_psi_ratio:g}x its null quantile, or KS ≥ "
            f"{RULES.far_ks:g}; medium at 1, high at {RULES.high_far}, "
            f"critical at {RULES.critical_far} (with ≥ {RULES.critical_share:.0%} drifted)",
        ),
        (
            "joint ratio (whole vector / null quantile)",
            f"{findings.joint_ratio:.2f}",
            f"medium at {RULES.medium_joint_ratio:g}, critical at "
            f"{RULES.critical_joint_ratio:g} (with ≥ {RULES.critical_share:.0%} drifted)",
        ),
        ("prediction distribution drifted", _yes(findings.prediction), "medium"),
        ("live performance fell significantly", _yes(findings.performance), "high"),
        ("error stream changed level (concept)", _yes(findings.concept), "medium"),
    ]
    table = "".join(
        f"<tr><td>{escape(a)}</td><td class='held'>{escape(b)}</td>"
        f"<td class='muted'>{escape(c)}</td></tr>"
        for a, b, c in rows
    )
    return (
        f"<h2>Verdict</h2><p><span class='badge' style='background:{_colour(severity)}'>"
        f"{escape(severity)}</span> recommendation <b>{escape(str(report['recommendation']))}</b>"
        f"</p><ul>{reasons}</ul><table><tr><th>evidence</th><th>value</th>"
        f"<th>rule</th></tr>{table}</table>"
        "<p class='muted'>Severity is the first rule that holds from the top: critical, high, "
        "medium, low (a group drifted), none. A group is the features that carry one signal; "
        "it drifted when the calibrated KS test flagged a member or it moved far.</p>"
    )


def _share_rule() -> str:
    return (
        f"medium at {RULES.medium_share:.0%}, high at {RULES.high_share:.0%}, "
        f"critical at {RULES.critical_share:.0%}"
    )


def _groups(findings: Findings) -> str:
    if not findings.groups:
        return ""
    rows = "".join(
        f"<tr><td>{escape(', '.join(g.features))}</td><td>{_yes(g.tested)}</td>"
        f"<td>{g.psi_ratio:.2f}</td><td>{g.ks_max:.3f}</td><td>{_yes(g.far(RULES))}</td>"
        f"<td class='held'>{_yes(g.drifted(RULES))}</td></tr>"
        for g in sorted(findings.groups, key=lambda g: (-g.drifted(RULES), -g.psi_ratio))
    )
    return (
        "<h2>Feature groups</h2><table><tr><th>features</th><th>KS flagged</th>"
        "<th>median PSI / null</th><th>largest KS</th><th>far</th><th>drifted</th></tr>"
        f"{rows}</table>"
    )


def _features(report: Mapping[str, Any], feature: DetectorResult | None) -> str:
    if feature is None:
        return "<h2>Features</h2><p>The feature detector did not run on this window.</p>"
    histograms: Mapping[str, Any] = feature.summary.get("histograms", {})
    per_feature: Mapping[str, Any] = report.get("features", {})
    cards = [
        _card(name, per_feature.get(name, {}), histograms.get(name))
        for name in sorted(per_feature, key=lambda n: _order(per_feature[n]))
    ]
    legend = (
        f"<p class='legend'><span><i class='sw' style='background:{REFERENCE}'></i>reference"
        f"</span><span><i class='sw' style='background:{CURRENT}'></i>current</span>"
        "<span class='muted'>bins are the reference's quantiles, frozen in the null model; "
        "drifted features first</span></p>"
    )
    return f"<h2>Features</h2>{legend}<div class='grid'>{''.join(cards)}</div>"


def _order(scores: Mapping[str, Any]) -> tuple[bool, float]:
    ks = scores.get("ks", {})
    psi = scores.get("psi", {})
    ratio = float(psi.get("value") or 0.0) / max(float(psi.get("threshold") or 0.0), 1e-9)
    return (not ks.get("drifted", False), -ratio)


def _card(name: str, scores: Mapping[str, Any], histogram: Mapping[str, Any] | None) -> str:
    ks, psi = scores.get("ks", {}), scores.get("psi", {})
    drifted = bool(ks.get("drifted"))
    chart = _bars(histogram) if histogram else "<p class='muted'>no histogram stored</p>"
    return (
        f"<div class='card{' drifted' if drifted else ''}'><h3>{escape(name)}</h3>{chart}"
        f"<p>KS {_num(ks.get('value'))} vs {_num(ks.get('threshold'))}"
        f" (p {_num(ks.get('pvalue'))}){' <b>drifted</b>' if drifted else ''}</p>"
        f"<p>PSI {_num(psi.get('value'))} vs null {_num(psi.get('threshold'))}</p></div>"
    )


def _bars(histogram: Mapping[str, Any]) -> str:
    reference = [float(p) for p in histogram["reference"]]
    current = [float(p) for p in histogram["current"]]
    edges = histogram.get("edges", [])
    top = max([*reference, *current, 1e-9])
    width = CHART_W / max(len(reference), 1)
    bars = []
    for i, (r, c) in enumerate(zip(reference, current, strict=False)):
        x = i * width
        for offset, share, colour in ((0.1, r, REFERENCE), (0.5, c, CURRENT)):
            h = (CHART_H - 12) * share / top
            bars.append(
                f"<rect x='{x + offset * width:.1f}' y='{CHART_H - 12 - h:.1f}' "
                f"width='{0.4 * width:.1f}' height='{h:.1f}' fill='{colour}'/>"
            )
    low, high = (edges[0], edges[-1]) if edges else ("", "")
    axis = (
        f"<text x='0' y='{CHART_H - 1}' font-size='9' fill='#616161'>≤{escape(str(low))}</text>"
        f"<text x='{CHART_W}' y='{CHART_H - 1}' font-size='9' fill='#616161' "
        f"text-anchor='end'>&gt;{escape(str(high))}</text>"
    )
    return (
        f"<svg width='{CHART_W}' height='{CHART_H}' "
        f"role='img' aria-label='reference and current shares per bin'>{''.join(bars)}"
        f"{axis}</svg>"
    )


def _history(report: Mapping[str, Any], history: Sequence[Mapping[str, Any]]) -> str:
    points = sorted(
        [(_time(h["created_at"]), h) for h in history if h.get("report_id") != report["report_id"]]
        + [(_time(report["created_at"]), report)],
        key=lambda p: p[0],
    )
    if len(points) < 2:
        return ""
    shares = [_share(h) for _, h in points]
    w, h, pad = 720, 180, 30
    t0, t1 = points[0][0].timestamp(), points[-1][0].timestamp()

    def x(t: datetime) -> float:
        return pad + (w - 2 * pad) * (t.timestamp() - t0) / max(t1 - t0, 1.0)

    def y(share: float) -> float:
        return h - pad - (h - 2 * pad) * share

    line = " ".join(f"{x(t):.1f},{y(s):.1f}" for (t, _), s in zip(points, shares, strict=True))
    dots = "".join(
        f"<circle cx='{x(t):.1f}' cy='{y(s):.1f}' r='3.5' fill='{_colour(str(p['severity']))}'>"
        f"<title>{escape(_day(p['created_at'], minutes=True))}: {escape(str(p['severity']))}, "
        f"{s:.0%} of groups</title></circle>"
        for (t, p), s in zip(points, shares, strict=True)
    )
    rules = "".join(
        f"<line x1='{pad}' x2='{w - pad}' y1='{y(v):.1f}' y2='{y(v):.1f}' stroke='{_colour(k)}' "
        f"stroke-dasharray='4 3'/><text x='{w - pad + 2}' y='{y(v) + 3:.1f}' font-size='9'>"
        f"{k}</text>"
        for k, v in (
            ("medium", RULES.medium_share),
            ("high", RULES.high_share),
            ("critical", RULES.critical_share),
        )
    )
    labels = (
        f"<text x='{pad}' y='{h - 8}' font-size='10'>{escape(_day(points[0][1]['created_at']))}"
        f"</text><text x='{w - pad}' y='{h - 8}' font-size='10' text-anchor='end'>"
        f"{escape(_day(points[-1][1]['created_at']))}</text>"
        f"<text x='4' y='{y(1.0) + 3:.1f}' font-size='10'>100%</text>"
        f"<text x='4' y='{y(0.0) + 3:.1f}' font-size='10'>0%</text>"
    )
    return (
        "<h2>Share of feature groups drifted, over time</h2>"
        f"<svg width='{w}' height='{h}' role='img' "
        f"aria-label='drift score over time'>{rules}<polyline points='{line}' fill='none' "
        f"stroke='#424242'/>{dots}{labels}</svg>"
        f"<p class='muted'>{len(points)} reports; dots coloured by severity.</p>"
    )


def _share(report: Mapping[str, Any]) -> float:
    results = [DetectorResult.from_dict(r) for r in report.get("results", [])]
    return findings_of(results).share(RULES)


def _colour(severity: str) -> str:
    return COLOURS.get(severity, "#757575")


def _yes(flag: bool) -> str:
    return "yes" if flag else "no"


def _num(value: float | None) -> str:
    return "-" if value is None else f"{float(value):.3g}"


def _time(text: object) -> datetime:
    return text if isinstance(text, datetime) else datetime.fromisoformat(str(text))


def _day(text: object, *, minutes: bool = False) -> str:
    if not text:
        return "?"
    return _time(text).strftime("%Y-%m-%d %H:%M" if minutes else "%Y-%m-%d")
