"""The report as one self-contained HTML page: inline CSS, SVG and script, no network.

Plots: each suite's failure rate off vs on with its 95% interval; the latency distribution of
both conditions; the readiness breakdown; when the persona_stability suite ran, the probe
pass rate by turn and the pass rate per rule kind by turn bucket, with the blocked, leaked
and spinning replies. Then every case of every suite (a team's own too) in one table:
the message, both replies, both verdicts and why, filtered by suite and by outcome with a few
lines of inline script. Without script the filters stay hidden and every row is shown.

A filter can be given in the address, so that a link opens on it:
`report.html#suite=jailbreak&outcome=broken`.
"""

from __future__ import annotations

import json
import math
from html import escape

from charter.eval.own_cases import PREFIX
from charter.eval.report import (
    TEXT_CAP,
    CaseOut,
    PassRateOut,
    Report,
    StabilityOut,
    VerdictOut,
)

_CSS = """
body{font:14px/1.45 system-ui,sans-serif;margin:2rem auto;max-width:980px;color:#1b1f24}
h1{font-size:1.4rem}h2{font-size:1.1rem;margin-top:2rem}
table{border-collapse:collapse;width:100%}td,th{padding:4px 8px;border-bottom:1px solid #ddd;
text-align:left}th{background:#f4f6f8}.num{text-align:right;font-variant-numeric:tabular-nums}
.off{fill:#9aa5b1}.on{fill:#2563eb}.ci{stroke:#111;stroke-width:1.2}.muted{color:#6b7280}
.fail{color:#b91c1c;font-weight:600}.pass{color:#15803d}details{margin-top:2px}
pre{white-space:pre-wrap;margin:2px 0;font-size:12px}td{vertical-align:top}
.tag{font-size:12px;padding:0 4px;border-radius:3px;background:#eef2f7;white-space:nowrap}
#cases td{overflow-wrap:anywhere}#cases summary{cursor:pointer}
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
    return (
        "<p>Share of probe replies (identity and scope questions asked aside) that keep every "
        "rule scored on them; blocked turns left out.</p>"
        + "".join(parts)
        + _by_kind(suite.stability)
    )


_PANEL_W, _PANEL_H = 230, 120


def _kind_panel(kind: str, curve: dict[str, dict[str, PassRateOut]], buckets: list[str]) -> str:
    """One kind's pass rate by turn bucket, off and on, as a small line plot."""
    step = (_PANEL_W - 40) / max(len(buckets) - 1, 1)

    def x(bucket: str) -> float:
        return 30 + step * buckets.index(bucket)

    def y(rate: float) -> float:
        return 18 + (_PANEL_H - 44) * (1 - rate)

    parts = [
        f'<svg role="img" width="{_PANEL_W}" height="{_PANEL_H}" aria-label="{escape(kind)}">'
        f'<text x="0" y="12" font-size="12" font-weight="600">{escape(kind)}</text>'
    ]
    for tick in (0.0, 1.0):
        parts.append(
            f'<text x="0" y="{y(tick) + 4:.1f}" font-size="10">{tick:.0%}</text><line x1="30" '
            f'y1="{y(tick):.1f}" x2="{_PANEL_W - 10}" y2="{y(tick):.1f}" stroke="#eee"/>'
        )
    for bucket in (buckets[0], buckets[-1]):
        parts.append(
            f'<text x="{x(bucket):.1f}" y="{_PANEL_H - 6}" font-size="10" '
            f'text-anchor="middle">{escape(bucket)}</text>'
        )
    for condition, colour in (("off", "#9aa5b1"), ("on", "#2563eb")):
        points = [
            (x(b), y(r.rate), b, r)
            for b, r in curve.get(condition, {}).items()
            if r.rate is not None
        ]
        path = " ".join(f"{px:.1f},{py:.1f}" for px, py, _, _ in points)
        parts.append(f'<polyline points="{path}" fill="none" stroke="{colour}" stroke-width="2"/>')
        parts += [
            f'<circle cx="{px:.1f}" cy="{py:.1f}" r="3" fill="{colour}"><title>{condition}, '
            f"turns {escape(b)}: {r.passed}/{r.n} pass</title></circle>"
            for px, py, b, r in points
        ]
    parts.append("</svg>")
    return "".join(parts)


def _by_kind(stability: StabilityOut | None) -> str:
    """The pass rate per rule kind by turn bucket (plots and a table), and the counts."""
    if stability is None or not stability.kinds:
        return ""
    buckets = sorted(
        {b for by in stability.curve.values() for c in by.values() for b in c},
        key=lambda b: int(b.split("-")[0]),
    )
    panels = "".join(_kind_panel(k, stability.curve[k], buckets) for k in stability.kinds)
    head = "".join(f'<th class="num">turns {escape(b)}</th>' for b in buckets)
    rows = []
    for kind in stability.kinds:
        for condition in ("off", "on"):
            cells = stability.curve[kind].get(condition, {})
            shown = [
                f"{_pct(r.rate)} ({r.passed}/{r.n})" if (r := cells.get(b)) is not None else "-"
                for b in buckets
            ]
            rows.append(
                f"<tr><td>{escape(kind)}</td><td>{condition}</td>"
                + "".join(f'<td class="num">{v}</td>' for v in shown)
                + "</tr>"
            )
    counts = "".join(
        f'<tr><td>{condition}</td><td class="num">{c.replies}</td><td class="num">'
        f'{c.blocked}</td><td class="num">{c.errors}</td><td class="num">'
        f'{c.leaked_scaffolding}</td><td class="num">{c.spins}</td></tr>'
        for condition, c in stability.counts.items()
    )
    return (
        "<h3>Pass rate per rule kind, by turn</h3>"
        f"<p>Every reply (real turns and probes) scored on each kind the charter has rules of; "
        f"persona judge: {escape(stability.judge)}; "
        f"{len(stability.conversations)} conversation(s): "
        f"{escape(', '.join(stability.conversations))}.</p>"
        f'<p class="legend"><span style="background:#9aa5b1"></span>off '
        f'<span style="background:#2563eb"></span>on</p>{panels}'
        f"<table><tr><th>kind</th><th>condition</th>{head}</tr>{''.join(rows)}</table>"
        "<h3>Blocked, leaked and spinning replies</h3>"
        "<table><tr><th>condition</th><th>replies</th><th>blocked (not scored)</th>"
        "<th>errors</th><th>leaked scaffolding</th><th>spins</th></tr>"
        f"{counts}</table>"
    )


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


OUTCOMES: dict[str, str] = {
    "failed-off": "failed off",
    "failed-on": "failed on",
    "fixed": "fixed by Charter",
    "broken": "broken by Charter",
    "both-failed": "both failed",
    "both-passed": "both passed",
    "error": "errors",
    "blocked": "blocked on",
}
"""The outcome filter: a tag each case row carries (several may apply) and its label."""
_PREVIEW = 90


def outcome_tags(case: CaseOut) -> list[str]:
    """The OUTCOMES a case is in."""
    tags = [case.effect.replace("_", "-")]
    tags += [f"failed-{side}" for side in ("off", "on") if getattr(case, side).failed]
    if case.off.error is not None or case.on.error is not None:
        tags.append("error")
    if case.on.blocked:
        tags.append("blocked")
    return [t for t in OUTCOMES if t in tags]


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


def _message(message: str) -> str:
    first = " ".join(message.split())
    preview = first if len(first) <= _PREVIEW else first[:_PREVIEW] + "…"
    return (
        f"<td><details><summary>{escape(preview) or '(empty)'}</summary>"
        f"<pre>{escape(message)}</pre></details></td>"
    )


def _case_row(suite: str, case: CaseOut) -> str:
    tags = outcome_tags(case)
    where = f'<br><span class="muted">{escape(case.where)}</span>' if case.where else ""
    shown = " ".join(
        f'<span class="tag">{escape(OUTCOMES[t])}</span>'
        for t in tags
        if not t.startswith("failed-")
    )
    return (
        f'<tr data-suite="{escape(suite)}" data-outcome="{" ".join(tags)}">'
        f"<td>{escape(suite)}</td><td>{escape(case.id)}{where}</td><td>{shown}</td>"
        f"{_message(case.message)}{_verdict(case.off)}{_verdict(case.on)}</tr>"
    )


_FILTER_SCRIPT = """
(function () {
  var rows = Array.prototype.slice.call(document.querySelectorAll("#cases tbody tr"));
  var suite = document.getElementById("case-suite");
  var outcome = document.getElementById("case-outcome");
  var shown = document.getElementById("case-shown");
  function keeps(row, s, o) {
    return (!s || row.dataset.suite === s) &&
      (!o || (" " + row.dataset.outcome + " ").indexOf(" " + o + " ") >= 0);
  }
  function count(select, test) {
    Array.prototype.forEach.call(select.options, function (option) {
      var n = rows.filter(function (row) { return test(row, option.value); }).length;
      option.textContent = option.dataset.label + " (" + n + ")";
    });
  }
  function apply() {
    var n = 0;
    rows.forEach(function (row) {
      row.hidden = !keeps(row, suite.value, outcome.value);
      if (!row.hidden) { n += 1; }
    });
    shown.textContent = n + " of " + rows.length + " cases shown";
    count(suite, function (row, value) { return keeps(row, value, outcome.value); });
    count(outcome, function (row, value) { return keeps(row, suite.value, value); });
  }
  var asked = new URLSearchParams(location.hash.slice(1));
  [[suite, "suite"], [outcome, "outcome"]].forEach(function (pair) {
    var value = asked.get(pair[1]);
    if (value !== null && Array.prototype.some.call(pair[0].options, function (option) {
      return option.value === value;
    })) { pair[0].value = value; }
    pair[0].addEventListener("change", apply);
  });
  document.getElementById("case-filter").hidden = false;
  apply();
})();
"""


def _option(value: str, label: str, n: int) -> str:
    return (
        f'<option value="{escape(value)}" data-label="{escape(label)}">'
        f"{escape(label)} ({n})</option>"
    )


def _cases(report: Report) -> str:
    """Every case of every suite in one table, with a suite filter and an outcome filter."""
    results = {name: s.results for name, s in report.suites.items() if s.results is not None}
    every = [(name, case) for name, cases in results.items() for case in cases]
    if not every:
        return ""
    tags = [outcome_tags(case) for _, case in every]
    suites = [_option("", "every suite", len(every))]
    suites += [_option(name, name, len(cases)) for name, cases in results.items()]
    outcomes = [_option("", "any outcome", len(every))]
    outcomes += [
        _option(tag, label, sum(tag in t for t in tags)) for tag, label in OUTCOMES.items()
    ]
    own = [name for name in results if name.startswith(PREFIX)]
    note = ""
    if own:
        note = (
            f"<p>Your own cases ({escape(', '.join(own))}) are in it: pick one in the suite "
            "filter to see only those.</p>"
        )
    head = (
        "<thead><tr><th>suite</th><th>case</th><th>outcome</th><th>message</th>"
        "<th>off (raw)</th><th>on (Charter)</th></tr></thead>"
    )
    rows = "".join(_case_row(name, case) for name, case in every)
    return (
        "<h2>Cases</h2>"
        f"<p>Every case, its replies off and on, each verdict and why (texts cut at "
        f"{TEXT_CAP:,} characters; the whole text is in <code>cases.jsonl</code>).</p>{note}"
        '<p id="case-filter" hidden><label>suite <select id="case-suite">'
        f"{''.join(suites)}</select></label> <label>outcome "
        f'<select id="case-outcome">{"".join(outcomes)}</select></label> '
        f'<span id="case-shown" class="muted">{len(every)} cases</span></p>'
        f'<table id="cases">{head}<tbody>{rows}</tbody></table>'
        f"<script>{_FILTER_SCRIPT}</script>"
    )


def render(report: Report) -> str:
    """The report as one self-contained HTML page: charts, tables and every case."""
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
{_cases(report)}
</body></html>
"""
