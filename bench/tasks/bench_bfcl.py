"""Function calling on BFCL: the raw model prompted with the functions vs Charter's tool layer.

    .venv/bin/python bench/tasks/bench_bfcl.py [--limit 30] [--categories simple_python,...]
        [--min-relevance P] [--threads 2] [--dev] [--model qwen2.5-coder-0.5b]
        [--ways raw,charter] [--ids ID,...] [--unseen RESULTS.json ...]

Cases: the test half (odd rows) of each category (`charter.eval.bfcl.split`); `--dev` runs
the development half instead (what the tool layer was tried on while it was built: never
report it). `--limit` takes a seeded sample per category; `--ids` keeps only the named cases
of it (to replay a few cases after a change; the output file is then `...-ids.json`);
`--unseen` takes the sample from the cases that none of the given results files holds (a
fresh draw from the test half, once the first sample's misses have been read; the output
file is then `...-unseen.json`). One
loaded model (Qwen2.5-Coder-0.5B Q4_K_M by default, `--model` for another in the catalog;
greedy),
the same cases both ways (`--ways` for one of them), one run:

- raw: BFCL-style prompt (the functions as JSON, "answer with [f(a=1), ...]"), parsed leniently;
- charter: `charter.tools.loop.ToolLoop` behind the relevance gate (`--min-relevance`, by
  default the gate's own threshold; -1 offers every function), schema-forced decisions,
  validation and retries, loop stop.

Both are checked by the same AST rules (`charter.eval.bfcl.check`). Prints accuracy per
category with Wilson 95% intervals, the calling categories pooled (all but irrelevance), the
difference charter - raw in points, seconds and tokens per case. Writes
bench/results/bfcl.json (`bfcl-dev.json` with `--dev`; the model's name is added for another
model).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import statistics
import time
from pathlib import Path
from typing import Any

from charter.eval import bfcl
from charter.models import weights
from charter.models.local import LocalModel
from charter.spec.models import ToolLimits
from charter.stats import Rate
from charter.tools.relevance import threshold

ROOT = Path(__file__).resolve().parents[2]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--limit", type=int, default=30, help="cases per category")
    parser.add_argument("--categories", default=",".join(bfcl.CATEGORIES))
    parser.add_argument("--min-relevance", type=float, default=ToolLimits().min_relevance)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--dev", action="store_true", help="the development half (not reported)")
    parser.add_argument("--model", default=weights.DEFAULT_MODEL, help="a catalog model name")
    parser.add_argument("--ways", default="raw,charter", help="raw, charter or both")
    parser.add_argument(
        "--unseen",
        nargs="*",
        default=[],
        help="results files whose cases are left out of the pool before sampling",
    )
    parser.add_argument(
        "--ids", default="", help="only these case ids of the sample (comma-separated): a replay"
    )
    args = parser.parse_args()
    ways = tuple(w for w in ("raw", "charter") if w in args.ways.split(","))
    if not ways:
        parser.error("--ways: name raw, charter or both")
    model = LocalModel(weights.resolve(args.model), threads=args.threads)
    limits = ToolLimits(min_relevance=args.min_relevance)
    rows: list[dict[str, Any]] = []
    for category in args.categories.split(","):
        dev, test = bfcl.split(bfcl.load(category))
        seen = {row["id"] for f in args.unseen for row in json.loads(Path(f).read_text())["rows"]}
        pool = [c for c in (dev if args.dev else test) if c.id not in seen]
        cases = random.Random(f"{args.seed}:{category}").sample(pool, min(args.limit, len(pool)))
        if args.ids:
            cases = [c for c in cases if c.id in args.ids.split(",")]
        for i, case in enumerate(cases, 1):
            row: dict[str, Any] = {"category": category, "id": case.id}
            for way in ways:
                started = time.perf_counter()
                tokens = 0
                try:
                    if way == "raw":
                        calls, text, usage = asyncio.run(bfcl.raw_calls(model, case))
                    else:
                        calls, text, usage = asyncio.run(bfcl.charter_calls(model, case, limits))
                    why = bfcl.check(case, calls)
                    tokens = usage.total_tokens
                except Exception as exc:  # recorded and scored as a failure, never skipped
                    calls, text, why = [], "", f"error: {type(exc).__name__}: {exc}"
                row[way] = {
                    "ok": why is None,
                    "why": why,
                    "calls": calls,
                    "text": text[:400],
                    "s": round(time.perf_counter() - started, 2),
                    "tokens": tokens,
                }
            rows.append(row)
            marks = " ".join(f"{way} {'ok' if row[way]['ok'] else 'x'}" for way in ways)
            print(f"{category} {i}/{len(cases)} {case.id}: {marks}", flush=True)
    model.close()
    summary = summarise(rows, ways)
    summary["settings"] = {**vars(args), "min_relevance": threshold(args.min_relevance)}
    print()
    both = len(ways) == 2  # the difference charter - raw needs both ways
    header = f"{'category':<16}" + "".join(f"{way:<30}" for way in ways)
    print(header + (f"{'diff':>7}" if both else ""))
    for name, result in summary["categories"].items():
        line = f"{name:<16}" + "".join(f"{result[way]['text']:<30}" for way in ways)
        if both:
            line += f"{100 * (result['charter']['rate'] - result['raw']['rate']):>+6.1f}"
        print(line)
    for way in ways:
        print(f"{way}: {summary['cost'][way]}")
    stem = "bfcl-dev" if args.dev else "bfcl"
    if args.model != weights.DEFAULT_MODEL:
        stem += f"-{args.model}"
    if args.ids:
        stem += "-ids"
    if args.unseen:
        stem += "-unseen"
    out = ROOT / "bench" / "results" / f"{stem}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"summary": summary, "rows": rows}, indent=1) + "\n")
    print(f"wrote {out.relative_to(ROOT)}")


def summarise(rows: list[dict[str, Any]], ways: tuple[str, ...]) -> dict[str, Any]:
    groups: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        groups.setdefault(row["category"], []).append(row)
    calling = [r for r in rows if r["category"] != "irrelevance"]
    if calling:
        groups["calling (pooled)"] = calling
    categories: dict[str, Any] = {}
    for name, group in groups.items():
        categories[name] = {}
        for way in ways:
            rate = Rate(sum(r[way]["ok"] for r in group), len(group))
            categories[name][way] = {**rate.to_dict(), "text": str(rate)}
    cost = {
        way: {
            "s_per_case_mean": round(statistics.fmean(r[way]["s"] for r in rows), 2),
            "tokens_per_case_mean": round(statistics.fmean(r[way]["tokens"] for r in rows), 1),
        }
        for way in ways
    }
    return {"categories": categories, "cost": cost}


if __name__ == "__main__":
    main()
