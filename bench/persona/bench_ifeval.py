"""Instruction following on IFEval: the raw model vs Charter's critique-and-revise.

    .venv/bin/python bench/persona/bench_ifeval.py [--limit 100] [--threads 2] [--max-tokens 768]

Prompts: the odd-keyed half of IFEval (`charter.eval.ifeval.split_half`); the request reader
(`persona/requested.py`) was developed on the even-keyed half only. `--limit` takes a seeded
sample of that half. One charter (`PLAIN` below: a plain assistant, guards off so that only
critique differs), one loaded model (Qwen2.5-Coder-0.5B, greedy), one run.

Each prompt goes through the pipeline once. The critique stage keeps the generate stage's
draft in its trace when it changes it; that draft *is* the raw model's reply (same system
prompt, same messages, no Charter stage touched it), so both conditions come from the same
call and differ only by what critique did. Graded by this project's IFEval verifiers (strict:
the reply as is). Reports strict prompt-level and instruction-level accuracy with Wilson
95% intervals, per-type pass rates, added model calls, tokens and seconds per prompt.
Writes bench/results/ifeval.json.
"""

from __future__ import annotations

import argparse
import collections
import json
import random
import statistics
import time
from pathlib import Path
from typing import Any

from charter import Charter
from charter.eval import ifeval
from charter.models import weights
from charter.models.local import LocalModel
from charter.spec import CharterSpec
from charter.stats import Rate

ROOT = Path(__file__).resolve().parents[2]
PLAIN = {
    "id": "plain-assistant",
    "persona": {"name": "Assistant", "role": "a helpful general-purpose assistant"},
    "guards": {"input": [], "output": []},
    "drift": {"enabled": False},
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--limit", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--max-tokens", type=int, default=768)
    args = parser.parse_args()
    _, test = ifeval.split_half(ifeval.load())
    prompts = random.Random(args.seed).sample(test, min(args.limit, len(test)))
    spec = CharterSpec.model_validate(
        {**PLAIN, "models": {"chat": {"backend": "local", "max_tokens": args.max_tokens}}}
    )
    model = LocalModel(
        weights.resolve(weights.DEFAULT_MODEL), name=weights.DEFAULT_MODEL, threads=args.threads
    )
    charter = Charter(spec, model=model)
    rows: list[dict[str, Any]] = []
    started_all = time.perf_counter()
    for i, prompt in enumerate(prompts, 1):
        started = time.perf_counter()
        reply = charter.respond(prompt.prompt)
        seconds = time.perf_counter() - started
        critique = reply.trace["critique"]
        draft = critique.detail.get("draft", reply.text)
        raw, final = ifeval.grade(prompt, draft), ifeval.grade(prompt, reply.text)
        rows.append(
            {
                "key": prompt.key,
                "instructions": prompt.instruction_ids,
                "asked_checks": critique.detail.get("user_requests", []),
                "raw": raw.followed,
                "charter": final.followed,
                "revisions": critique.detail.get("revisions", 0),
                "repaired": critique.detail.get("repaired", False),
                "seconds": seconds,
                "critique_ms": critique.ms,
                "tokens": reply.usage.total_tokens,
                "critique_tokens": critique.prompt_tokens + critique.completion_tokens,
            }
        )
        print(
            f"[{i}/{len(prompts)}] key {prompt.key}: raw {raw.strict} charter {final.strict} "
            f"({seconds:.1f} s, revisions {rows[-1]['revisions']})",
            flush=True,
        )
    model.close()
    report = summarise(rows, args, time.perf_counter() - started_all)
    out = ROOT / "bench" / "results" / "ifeval.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({**report, "rows": rows}, indent=2, default=_plain))
    show(report)
    print(f"wrote {out}")


def _plain(value: object) -> object:
    return value.to_dict() if isinstance(value, Rate) else str(value)


def summarise(rows: list[dict[str, Any]], args: argparse.Namespace, wall: float) -> dict[str, Any]:
    n = len(rows)
    per_type: dict[str, dict[str, list[bool]]] = collections.defaultdict(
        lambda: {"raw": [], "charter": []}
    )
    for row in rows:
        for iid, r, c in zip(row["instructions"], row["raw"], row["charter"], strict=True):
            per_type[iid]["raw"].append(r)
            per_type[iid]["charter"].append(c)
    instructions = sum(len(r["raw"]) for r in rows)
    return {
        "model": weights.DEFAULT_MODEL,
        "threads": args.threads,
        "max_tokens": args.max_tokens,
        "prompts": n,
        "half": "test (odd keys)",
        "wall_s": round(wall, 1),
        "prompt_strict": {
            "raw": Rate(sum(all(r["raw"]) for r in rows), n),
            "charter": Rate(sum(all(r["charter"]) for r in rows), n),
        },
        "instruction_strict": {
            "raw": Rate(sum(sum(r["raw"]) for r in rows), instructions),
            "charter": Rate(sum(sum(r["charter"]) for r in rows), instructions),
        },
        "revised": Rate(sum(r["revisions"] > 0 for r in rows), n),
        "repaired": Rate(sum(bool(r["repaired"]) for r in rows), n),
        "critique_s_per_prompt": statistics.mean(r["critique_ms"] for r in rows) / 1000,
        "critique_tokens_per_prompt": statistics.mean(r["critique_tokens"] for r in rows),
        "seconds_per_prompt_median": statistics.median(r["seconds"] for r in rows),
        "per_type": {
            iid: {k: Rate(sum(v), len(v)) for k, v in d.items()}
            for iid, d in sorted(per_type.items())
        },
    }


def show(report: dict[str, Any]) -> None:
    print(
        f"\nIFEval, {report['prompts']} prompts of the {report['half']} half, {report['model']}, "
        f"{report['threads']} threads, max {report['max_tokens']} tokens, {report['wall_s']} s"
    )
    for level in ("prompt_strict", "instruction_strict"):
        raw, charter = report[level]["raw"], report[level]["charter"]
        print(f"  {level:19} raw {raw}   charter {charter}")
    print(
        f"  revised {report['revised']}, repaired in code {report['repaired']}; critique adds "
        f"{report['critique_s_per_prompt']:.2f} s and "
        f"{report['critique_tokens_per_prompt']:.0f} tokens per prompt"
    )
    for iid, rates in report["per_type"].items():
        print(f"    {iid:46} raw {rates['raw']}  charter {rates['charter']}")


if __name__ == "__main__":
    main()
