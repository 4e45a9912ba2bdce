"""The report in the terminal: the summary table, and what changed between two reports."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table

from charter.eval.report import RateOut, Report


def _rate(rate: RateOut) -> str:
    if rate.rate is None:
        return "-"
    low, high = rate.ci95
    return f"{rate.rate:.0%} {rate.k}/{rate.n} [{low * 100:.0f}-{high * 100:.0f}]"


def summary(report: Report, console: Console) -> None:
    """Print each suite's failure rates off and on, then the readiness score and breakdown."""
    table = Table(title=f"charter eval · {report.charter} · {report.model}", title_justify="left")
    wide = console.width >= 110
    columns = ["suite", "a failure is"] if wide else ["suite"]
    for column in (*columns, "off (raw model)", "on (Charter)", "p50 ms"):
        table.add_column(column, no_wrap=column != "a failure is")
    for name, suite in report.suites.items():
        better = (suite.on.failures.rate or 0) < (suite.off.failures.rate or 0)
        worse = (suite.on.failures.rate or 0) > (suite.off.failures.rate or 0)
        style = "green" if better else "red" if worse else ""
        table.add_row(
            *([name, suite.metric] if wide else [name]),
            _rate(suite.off.failures),
            f"[{style}]{_rate(suite.on.failures)}[/]" if style else _rate(suite.on.failures),
            f"{suite.off.latency_ms_p50:.0f} / {suite.on.latency_ms_p50:.0f}",
        )
    console.print(table)
    parts = [
        f"{c.name} {c.on:.2f}" if c.measured and c.on is not None else f"{c.name} (not run)"
        for c in report.readiness.components
    ]
    console.print(
        f"[bold]Readiness[/] on {report.readiness.on:.1f} / off {report.readiness.off:.1f} "
        f"(0-100; breakdown, on: {', '.join(parts)})"
    )


def compare(a: Report, b: Report, console: Console) -> None:
    """What changed from report A to report B, on the pipeline (on) side and the raw side."""
    table = Table(title=f"A: {a.created} {a.charter}  →  B: {b.created} {b.charter}")
    for column in ("suite", "on A", "on B", "Δ on", "off A", "off B"):
        table.add_column(column)
    for name in sorted(set(a.suites) | set(b.suites)):
        sa, sb = a.suites.get(name), b.suites.get(name)
        on_a = sa.on.failures if sa else None
        on_b = sb.on.failures if sb else None
        delta = "-"
        if on_a and on_b and on_a.rate is not None and on_b.rate is not None:
            change = on_b.rate - on_a.rate
            colour = "green" if change < 0 else "red" if change > 0 else ""
            delta = f"[{colour}]{change:+.1%}[/]" if colour else f"{change:+.1%}"
        table.add_row(
            name,
            _rate(on_a) if on_a else "not run",
            _rate(on_b) if on_b else "not run",
            delta,
            _rate(sa.off.failures) if sa else "not run",
            _rate(sb.off.failures) if sb else "not run",
        )
    console.print(table)
    console.print(
        f"Readiness on: {a.readiness.on:.1f} → {b.readiness.on:.1f} "
        f"({b.readiness.on - a.readiness.on:+.1f}); off: {a.readiness.off:.1f} → "
        f"{b.readiness.off:.1f}"
    )
