"""Four columns: the base and the tuned model, each without Charter (off) and with it (on).

    .venv/bin/python bench/training/lift.py BASE_EVAL_DIR TUNED_EVAL_DIR [--json]

Each folder is a `charter eval` output (its `report.json`) of the same suites and cases, one
run with the base charter and one with the charter that names the adapter (`charter tune
--write-charter`). Per suite it prints the failure rate (k/n) in the four columns, and the share
of the gap between the base model off and on that the tuned model closes with Charter off:

    closed = (base off - tuned off) / (base off - base on)

(shown only where Charter lowers the base model's failures), then, with Charter on, the
revisions critique made per case and the median latency, base vs tuned. Cases that were in
the training data should not be in these runs: `charter data export` rows name their source.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from charter.eval.evaluate import load_report
from charter.eval.report import RateOut, Report


def _rate(rate: RateOut) -> str:
    return f"{rate.k}/{rate.n}"


def _value(rate: RateOut) -> float | None:
    return rate.rate


def closed_gap(base_off: float, base_on: float, tuned_off: float) -> float | None:
    """The share of the base model's off-to-on gap the tuned model closes off; None: no gap."""
    gap = base_off - base_on
    if gap <= 0:
        return None
    return (base_off - tuned_off) / gap


def rows(base: Report, tuned: Report) -> list[dict[str, Any]]:
    """One row per suite both reports ran, with the same cases."""
    out: list[dict[str, Any]] = []
    for name, b in base.suites.items():
        t = tuned.suites.get(name)
        if t is None:
            continue
        same = {c.id for c in b.results or []} == {c.id for c in t.results or []}
        values = [_value(r) for r in (b.off.failures, b.on.failures, t.off.failures)]
        closed = None
        if all(v is not None for v in values):
            closed = closed_gap(*(float(v or 0.0) for v in values))
        out.append(
            {
                "suite": name,
                "same_cases": same,
                "base_off": _rate(b.off.failures),
                "base_on": _rate(b.on.failures),
                "tuned_off": _rate(t.off.failures),
                "tuned_on": _rate(t.on.failures),
                "closed": None if closed is None else round(closed, 3),
                "revisions_base_on": b.on.revisions_per_case,
                "revisions_tuned_on": t.on.revisions_per_case,
                "p50_ms_base_on": b.on.latency_ms_p50,
                "p50_ms_tuned_on": t.on.latency_ms_p50,
            }
        )
    if out:
        out.append(_pooled(base, tuned, [str(r["suite"]) for r in out]))
    return out


def _pooled(base: Report, tuned: Report, names: list[str]) -> dict[str, Any]:
    """Every suite's cases together (each case counts once)."""

    def total(report: Report, side: str) -> tuple[int, int]:
        rates = [getattr(report.suites[n], side).failures for n in names]
        return sum(r.k for r in rates), sum(r.n for r in rates)

    cols = {
        "base_off": total(base, "off"),
        "base_on": total(base, "on"),
        "tuned_off": total(tuned, "off"),
        "tuned_on": total(tuned, "on"),
    }
    values = [k / n if n else 0.0 for k, n in cols.values()]
    closed = closed_gap(values[0], values[1], values[2])
    return {
        "suite": "all",
        "same_cases": True,
        **{key: f"{k}/{n}" for key, (k, n) in cols.items()},
        "closed": None if closed is None else round(closed, 3),
        "revisions_base_on": _revisions(base, names),
        "revisions_tuned_on": _revisions(tuned, names),
        "p50_ms_base_on": None,
        "p50_ms_tuned_on": None,
    }


def _revisions(report: Report, names: list[str]) -> float | None:
    """Revisions per case (on) over the suites that record them, weighted by their cases."""
    pairs = [
        (report.suites[n].on.revisions_per_case, report.suites[n].on.failures.n) for n in names
    ]
    known = [(r, n) for r, n in pairs if r is not None]
    cases = sum(n for _, n in known)
    return round(sum(r * n for r, n in known) / cases, 3) if cases else None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("base", type=Path, help="charter eval output of the base charter")
    parser.add_argument("tuned", type=Path, help="charter eval output of the tuned charter")
    parser.add_argument("--json", action="store_true", help="print the rows as JSON")
    args = parser.parse_args(argv)
    base = load_report(args.base / "report.json")
    tuned = load_report(args.tuned / "report.json")
    table = rows(base, tuned)
    if args.json:
        print(json.dumps(table, indent=2))
        return 0
    print(f"base:  {base.charter_fingerprint} {base.model}")
    print(f"tuned: {tuned.charter_fingerprint} {tuned.model}")
    head = (
        f"{'suite':24} {'base off':>9} {'base on':>9} {'tuned off':>9} {'tuned on':>9} "
        f"{'closed':>7} {'rev b/t':>11} {'p50 ms b/t':>15}"
    )
    print(head)
    for r in table:
        closed = "-" if r["closed"] is None else f"{r['closed']:.0%}"
        revs = "/".join(
            "-" if v is None else f"{v:.2f}"
            for v in (r["revisions_base_on"], r["revisions_tuned_on"])
        )
        ms = "/".join(
            "-" if v is None else f"{v:.0f}" for v in (r["p50_ms_base_on"], r["p50_ms_tuned_on"])
        )
        mark = "" if r["same_cases"] else "  (different cases)"
        print(
            f"{r['suite']:24} {r['base_off']:>9} {r['base_on']:>9} {r['tuned_off']:>9} "
            f"{r['tuned_on']:>9} {closed:>7} {revs:>11} {ms:>15}{mark}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
