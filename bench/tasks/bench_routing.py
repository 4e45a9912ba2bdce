"""Routing: quality and cost of always-cheap, always-strong and routed, on eval suites.

    .venv/bin/python bench/tasks/bench_routing.py [--limit 8] [--suites a,b] [--threads 2]

Needs the strong model: `.venv/bin/charter models pull qwen2.5-coder-1.5b`.

The acme-bank charter with `models.chat` = Qwen2.5-Coder-0.5B and `models.strong` =
Qwen2.5-Coder-1.5B (both Q4_K_M, greedy, loaded once and shared), run three times over
the same seeded cases of `charter eval`'s suites (default over_refusal, under_refusal,
policy, instruction_following), with `models.routing.mode` = cheap, strong and auto. Only
the pipeline ("on") runs; each reply is scored by the eval's own scorers. Prices are
ILLUSTRATIVE (per million tokens, cheap 0.05 in / 0.10 out, strong 0.15 / 0.30: three times
the parameters, three times the price); seconds per case are measured. Prints, per mode,
the failure rate per suite and pooled (Wilson 95%), mean cost and seconds per case and the
share of turns sent to the strong model. Writes bench/results/routing.json.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path
from typing import Any

from charter import Charter
from charter.eval import cases as case_sets
from charter.eval.evaluate import context_for
from charter.eval.scoring import Outcome, score
from charter.models import weights
from charter.models.local import LocalModel
from charter.spec.loader import load_charter
from charter.spec.models import Price
from charter.stats import Rate

ROOT = Path(__file__).resolve().parents[2]
CHEAP_PRICE = Price(input_per_million=0.05, output_per_million=0.10)
STRONG_PRICE = Price(input_per_million=0.15, output_per_million=0.30)
MODES = ("cheap", "strong", "auto")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--limit", type=int, default=8, help="cases per suite")
    parser.add_argument(
        "--suites", default="over_refusal,under_refusal,policy,instruction_following"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    base = load_charter(ROOT / "examples" / "acme-bank" / "charter.yaml")
    suites = tuple(args.suites.split(","))
    cases = [
        c
        for suite in suites
        for c in case_sets.sample(case_sets.LOADERS[suite](base), args.limit, args.seed)
    ]
    cheap = LocalModel(weights.resolve("qwen2.5-coder-0.5b"), threads=args.threads)
    strong = LocalModel(weights.resolve("qwen2.5-coder-1.5b"), threads=args.threads)
    ctx = context_for(base, suites)
    rows: list[dict[str, Any]] = []
    for mode in MODES:
        models = base.models.model_copy(
            update={
                "chat": base.models.chat.model_copy(update={"price": CHEAP_PRICE}),
                "strong": base.models.chat.model_copy(
                    update={"model": "qwen2.5-coder-1.5b", "price": STRONG_PRICE}
                ),
                "routing": base.models.routing.model_copy(update={"mode": mode}),
            }
        )
        spec = base.model_copy(
            update={
                "models": models,
                "guards": base.guards.model_copy(update={"rate_limit": None}),
            }
        )
        charter = Charter(spec, model=cheap, strong_model=strong)
        for i, case in enumerate(cases, 1):
            started = time.perf_counter()
            reply = charter.respond(case.message, user=f"bench:{case.key}")
            outcome = Outcome(
                text=reply.text,
                blocked=reply.blocked,
                ms=reply.ms,
                prompt_tokens=reply.usage.prompt_tokens,
                completion_tokens=reply.usage.completion_tokens,
                cost=reply.cost,
            )
            verdict = score(case, outcome, ctx)
            route = reply.trace["route"].detail if "route" in reply.trace else {}
            rows.append(
                {
                    "mode": mode,
                    "suite": case.suite,
                    "id": case.id,
                    "failed": verdict.failed,
                    "why": verdict.why,
                    "strong": "strong" in reply.usage_by_model,
                    "signals": route.get("signals", []),
                    "cost": reply.cost,
                    "s": round(time.perf_counter() - started, 2),
                }
            )
            mark = "x" if verdict.failed else "ok"
            print(f"{mode} {i}/{len(cases)} {case.key}: {mark}", flush=True)
    cheap.close()
    strong.close()
    summary = summarise(rows, suites)
    for mode, result in summary.items():
        print(
            f"\n{mode}: pooled failures {result['pooled']['text']}; cost/case "
            f"{result['cost_per_case']:.8f}; s/case {result['s_per_case']}; "
            f"strong {result['strong_share']:.0%}"
        )
        for suite in suites:
            print(f"  {suite:<24}{result['suites'][suite]['text']}")
    out = ROOT / "bench" / "results" / "routing.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(
        json.dumps({"settings": vars(args), "summary": summary, "rows": rows}, indent=1) + "\n"
    )
    print(f"wrote {out.relative_to(ROOT)}")


def summarise(rows: list[dict[str, Any]], suites: tuple[str, ...]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for mode in MODES:
        mine = [r for r in rows if r["mode"] == mode]
        pooled = Rate(sum(r["failed"] for r in mine), len(mine))
        per_suite = {}
        for suite in suites:
            part = [r for r in mine if r["suite"] == suite]
            rate = Rate(sum(r["failed"] for r in part), len(part))
            per_suite[suite] = {**rate.to_dict(), "text": str(rate)}
        out[mode] = {
            "pooled": {**pooled.to_dict(), "text": str(pooled)},
            "suites": per_suite,
            "cost_per_case": statistics.fmean(r["cost"] or 0.0 for r in mine),
            "s_per_case": round(statistics.fmean(r["s"] for r in mine), 2),
            "strong_share": sum(r["strong"] for r in mine) / len(mine),
        }
    return out


if __name__ == "__main__":
    main()
