"""The report as one self-contained HTML page: inline CSS and SVG, no script, no network.

Plots: each suite's failure rate off vs on with its 95% interval; the latency distribution of
both conditions; the readiness breakdown; the persona pass rate by turn when the
persona_stability suite ran. A team's own suites (`cases:<name>`) get a table of every case:
its verdict off and on, why, and the replies.
"""

from __future__ import annotations

import json
import math
from html import escape

from charter.eval.report import Report, VerdictOut

_CSS = """
body{font:14px/1.45 system-ui,sans-serif;margin:2rem auto;max-width:980px;color:#1b1f24}
h1{font-size:1.4rem}h2{font-size:1.1rem;margin-top:2rem}
table{border-collapse:collapse;width:100%}td,th{padding:4px 8px;border-bottom:1px solid #ddd;
text-align:left}th{background:#f4f6f8}.num{text-align:right;font-variant-numeric:tabular-nums}
.off{fill:#9aa5b1}.on{fill:#2563eb}.ci{stroke:#111;stroke-width:1.2}.muted{color:#6b7280}
.fail{color:#b91c1c;font-weight:600}.pass{color:#15803d}details{margin-top:2px}
pre{white-space:pre-wrap;margin:2px 0;font-size:12px}td{vertical-align:top}
.score{font-size:2rem;font-weight:600}.legend span{display:inline-block;width:12px;height:12px;
margin:0 4px 0 12px;vertical-align:middle}
"""

_BAR_W = 520
_ROW_H = 34


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value:.1%}"


def _suite_bars(report: Report) -> str:
    names = list(report.suites)
    height = _ROW_H * len(names) + 30
    parts = [f'<svg role="img" width="{_BAR_W + 240}" height="{height}" aria-label="rates">']
    for tick in range(0, 101, 25):
        x = 220 + _BAR_W * tick / 100
        parts.append(f'<line x1="{x}" y1="0" x2="{x}" y2="{height - 20}" stroke="#eee"/>')
        parts.append(
            f'<text x="{x}" y="{height - 5}" font-size="11" text-anchor="middle">{tick}%</text>'
        )
    for i, name in enumerate(names):
        suite = report.suites[name]
        y = i * _ROW_H + 4
        parts.append(f'<text x="0" y="{y + 18}" font-size="12">{escape(name)}</text>')
        for j, (label, cond) in enumerate((("off", suite.off), ("on", suite.on))):
            rate = cond.failures.rate or 0.0
            low, high = cond.failures.ci95
            top = y + j * 13
            parts.append(
                f'<rect class="{label}" x="220" y="{top}" width="{_BAR_W * rate:.1f}" '
                f'height="11"><title>{label}: {_pct(cond.failures.rate)} '
                f"({cond.failures.k}/{cond.failures.n})</title></rect>"
            )
            parts.append(
                f'<line class="ci" x1="{220 + _BAR_W * low:.1f}" y1="{top + 5.5}" '
                f'x2="{220 + _BAR_W * high:.1f}" y2="{top + 5.5}"/>'
            )
    parts.append("</svg>")
    return "".join(parts)


def _latency_histogram(report: Report) -> str:
    values = {k: [v for v in vs if v > 0] for k, vs in report.latencies_ms.items()}
    everything = [v for vs in values.values() for v in vs]
    if not everything:
        return '<p class="muted">No latencies recorded.</p>'
    low = math.floor(math.log10(min(everything)) * 4) / 4
    high = math.ceil(math.log10(max(everything)) * 4) / 4 + 0.25
    bins = max(1, round((high - low) / 0.25))
    counts = {k: [0] * bins for k in values}
    for key, vs in values.items():
        for v in vs:
            counts[key][min(bins - 1, int((math.log10(v) - low) / 0.25))] += 1
    peak = max(max(c) for c in counts.values()) or 1
    width, height = 760, 200
    slot = width / bins
    parts = [f'<svg role="img" width="{width}" height="{height + 30}" aria-label="latency">']
    for b in range(bins):
        for j, key in enumerate(("off", "on")):
            h = height * counts.get(key, [0] * bins)[b] / peak
            x = b * slot + j * slot / 2
            parts.append(
                f'<rect class="{key}" x="{x:.1f}" y="{height - h:.1f}" width="{slot / 2 - 1:.1f}"'
                f' height="{h:.1f}"><title>{key}: {counts.get(key, [0] * bins)[b]}</title></rect>'
            )
        if b % 2 == 0:
            ms = 10 ** (low + b * 0.25)
            label = f"{ms / 1000:.1f}s" if ms >= 1000 else f"{ms:.0f}ms"
            parts.append(
                f'<text x="{b * slot:.1f}" y="{height + 16}" font-size="11">{label}</text>'
            )
    parts.append("</svg>")
    return "".join(parts)


def _by_turn(report: Report) -> str:
    suite = report.suites.get("persona_stability")
    if suite is None or not suite.by_turn:
        return (
            '<p class="muted">persona_stability was not run (opt-in: '
            "<code>--suites persona_stability</code>).</p>"
        )
    width, height, left = 760, 220, 40
    turns = sorted({int(t) for by in suite.by_turn.values() for t in by})
    last = max(turns[-1], 2)

    def x(turn: int) -> float:
        return left + (width - left - 20) * (turn - 1) / (last - 1)

    def y(rate: float) -> float:
        return 10 + (height - 40) * (1 - rate)

    parts = [f'<svg role="img" width="{width}" height="{height}" aria-label="persona by turn">']
    for tick in (0, 0.5, 1):
        parts.append(
            f'<text x="0" y="{y(tick) + 4:.1f}" font-size="11">{tick:.0%}</text>'
            f'<line x1="{left}" y1="{y(tick):.1f}" x2="{width - 20}" y2="{y(tick):.1f}" '
            'stroke="#eee"/>'
        )
    for turn in turns:
        parts.append(
            f'<text x="{x(turn):.1f}" y="{height - 8}" font-size="11" text-anchor="middle">'
            f"turn {turn}</text>"
        )
    for condition, colour in (("off", "#9aa5b1"), ("on", "#2563eb")):
        points = [
            (x(int(t)), y(1 - (r.rate or 0.0)), r) for t, r in suite.by_turn[condition].items()
        ]
        path = " ".join(f"{px:.1f},{py:.1f}" for px, py, _ in points)
        parts.append(f'<polyline points="{path}" fill="none" stroke="{colour}" stroke-width="2"/>')
        for px, py, r in points:
            parts.append(
                f'<circle cx="{px:.1f}" cy="{py:.1f}" r="4" fill="{colour}"><title>{condition}: '
                f"{r.n - r.k}/{r.n} pass</title></circle>"
            )
    parts.append("</svg>")
    return "<p>Share of probe replies that keep every persona check.</p>" + "".join(parts)


def _suite_table(report: Report) -> str:
    rows = []
    for name, s in report.suites.items():
        cost_off = "-" if s.off.cost_per_case is None else f"{s.off.cost_per_case:.6f}"
        cost_on = "-" if s.on.cost_per_case is None else f"{s.on.cost_per_case:.6f}"
        rows.append(
            f"<tr><td>{escape(name)}</td><td>{escape(s.metric)}</td>"
            f'<td class="num">{s.cases}</td>'
            f'<td class="num">{_pct(s.off.failures.rate)} [{s.off.failures.ci95[0]:.0%}, '
            f"{s.off.failures.ci95[1]:.0%}]</td>"
            f'<td class="num">{_pct(s.on.failures.rate)} [{s.on.failures.ci95[0]:.0%}, '
            f"{s.on.failures.ci95[1]:.0%}]</td>"
            f'<td class="num">{s.off.latency_ms_p50:.0f} / {s.on.latency_ms_p50:.0f}</td>'
            f'<td class="num">{s.off.latency_ms_p95:.0f} / {s.on.latency_ms_p95:.0f}</td>'
            f'<td class="num">{s.off.prompt_tokens_per_case + s.off.completion_tokens_per_case:.0f}'
            f" / {s.on.prompt_tokens_per_case + s.on.completion_tokens_per_case:.0f}</td>"
            f'<td class="num">{cost_off} / {cost_on}</td>'
            f'<td class="num">{s.off.errors} / {s.on.errors}</td></tr>'
        )
    head = (
        "<tr><th>suite</th><th>a failure is</th><th>cases</th><th>off (raw)</th>"
        "<th>on (Charter)</th><th>p50 ms off/on</th><th>p95 ms off/on</th>"
        "<th>tokens/case off/on</th><th>cost/case off/on</th><th>errors off/on</th></tr>"
    )
    return f"<table>{head}{''.join(rows)}</table>"


def _readiness_table(report: Report) -> str:
    rows = [
        f"<tr><td>{escape(c.name)}</td><td>{escape(c.source)}</td>"
        f'<td class="num">{c.weight:g}</td>'
        f'<td class="num">{"-" if c.off is None else f"{c.off:.3f}"}</td>'
        f'<td class="num">{"-" if c.on is None else f"{c.on:.3f}"}</td>'
        f"<td>{'yes' if c.measured else 'not run'}</td></tr>"
        for c in report.readiness.components
    ]
    head = (
        "<tr><th>component</th><th>from</th><th>weight</th><th>off</th><th>on</th>"
        "<th>measured</th></tr>"
    )
    return f"<table>{head}{''.join(rows)}</table>"


def _verdict(verdict: VerdictOut) -> str:
    mark = '<span class="fail">fail</span>' if verdict.failed else '<span class="pass">pass</span>'
    label = "reply (blocked)" if verdict.blocked else "reply"
    shown = escape(verdict.reply) or "(no text)"
    if verdict.calls is not None:
        shown += "\ncalls: " + escape(json.dumps(verdict.calls, ensure_ascii=False))
    return (
        f"<td>{mark} {escape(verdict.why)}<details><summary>{label}</summary>"
        f"<pre>{shown}</pre></details></td>"
    )


def _own_cases(report: Report) -> str:
    parts: list[str] = []
    for name, suite in report.suites.items():
        if suite.results is None:
            continue
        rows = [
            f'<tr><td>{escape(c.id)}<br><span class="muted">{escape(c.where)}</span></td>'
            f"<td>{escape(c.message)}</td>"
            f"{_verdict(c.off)}{_verdict(c.on)}</tr>"
            for c in suite.results
        ]
        head = "<tr><th>case</th><th>message</th><th>off (raw)</th><th>on (Charter)</th></tr>"
        parts.append(f"<h3>{escape(name)}</h3><table>{head}{''.join(rows)}</table>")
    if not parts:
        return ""
    return "<h2>Your own cases</h2>" + "".join(parts)


def render(report: Report) -> str:
    settings = ", ".join(f"{k}={v}" for k, v in report.settings.items())
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width,initial-scale=1">
<title>charter eval · {escape(report.charter)}</title><style>{_CSS}</style></head>
<body>
<h1>Product-readiness report</h1>
<p class="muted">{escape(report.charter)} · model {escape(report.model)} · {escape(report.created)}
 · {report.wall_s:.0f} s · {escape(settings)}</p>
<p><span class="score">{report.readiness.on:.1f}</span> readiness with Charter
 · <span class="score muted">{report.readiness.off:.1f}</span> raw model (0-100)</p>
<h2>Failure rate per suite (lower is better; bars: 95% interval)</h2>
<p class="legend"><span style="background:#9aa5b1"></span>off (raw model, same system prompt)
<span style="background:#2563eb"></span>on (Charter pipeline)</p>
{_suite_bars(report)}
{_suite_table(report)}
<h2>Latency per case</h2>
{_latency_histogram(report)}
<h2>Readiness breakdown</h2>
{_readiness_table(report)}
<h2>Persona pass rate by turn</h2>
{_by_turn(report)}
{_own_cases(report)}
</body></html>
"""
