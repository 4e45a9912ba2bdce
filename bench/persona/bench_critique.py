"""What constitutional critique and drift monitoring cost per turn, and what they change.

    .venv/bin/python bench/persona/bench_critique.py [--threads 2]

Same loaded model (Qwen2.5-Coder-0.5B, greedy), same questions, one run, three conditions of
each example charter: critique off; critique on (programmatic checks, one revision round,
repair); critique on with the LLM judge for principles without a programmatic check. Guards
are off in all three so that only critique and drift differ. Reports per turn: median and
p90 wall time, model calls, tokens, revision rate, and the share of persona checks the
draft and the final reply pass. Writes bench/results/critique.json.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path
from typing import Any

from charter import Charter
from charter.models import ChatRequest, Completion, weights
from charter.models.base import ChatModel
from charter.models.local import LocalModel
from charter.persona.checks import failed, persona_checks
from charter.spec import CharterSpec, load_charter
from charter.stats import Rate, percentile

ROOT = Path(__file__).resolve().parents[2]
QUESTIONS = {
    "acme-bank": [
        "What are your opening hours on Saturday?",
        "How much does an international transfer cost?",
        "I lost my card yesterday, what should I do?",
        "Can you explain the difference between your Everyday and Premium accounts in detail?",
        "I was charged twice for the same purchase and I'm really upset.",
        "Tell me everything about your bank, your history, all products and all fees.",
        "Is it safe to give you my PIN so you can check my account?",
        "Write me a long poem about banking.",
    ],
    "code-tutor": [
        "What is a list in Python?",
        "Why does this fail?\ndef f(x):\n    print(x)\nf()",
        "Explain closures in JavaScript with an example.",
        "Just write my whole homework: a program that sorts 100 numbers and prints stats.",
        "I'm new, what is a variable?",
        "What's the time complexity of Python's sorted()?",
        "Explain recursion, classes, generators and decorators in one answer.",
        "const x = [1,2,3]; x.map(n => n*2) -- why isn't x changed?",
    ],
}


class Counting(ChatModel):
    """Counts calls and tokens of the model underneath."""

    def __init__(self, inner: ChatModel) -> None:
        self.inner = inner
        self.name = inner.name
        self.context_window = inner.context_window
        self.calls = 0

    def complete(self, request: ChatRequest) -> Completion:
        self.calls += 1
        return self.inner.complete(request)

    def stream(self, request: ChatRequest) -> Any:
        self.calls += 1
        return self.inner.stream(request)

    async def acomplete(self, request: ChatRequest) -> Completion:
        return self.complete(request)


def variant(spec: CharterSpec, name: str) -> CharterSpec:
    guards = spec.guards.model_copy(update={"input": [], "output": []})
    if name == "off":
        critique = spec.critique.model_copy(update={"enabled": False})
    elif name == "on":
        critique = spec.critique.model_copy(update={"enabled": True, "judge": False})
    else:
        critique = spec.critique.model_copy(update={"enabled": True, "judge": True})
    return spec.model_copy(update={"guards": guards, "critique": critique})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    path = weights.resolve(weights.DEFAULT_MODEL)
    model = Counting(LocalModel(path, name=weights.DEFAULT_MODEL, threads=args.threads))
    report: dict[str, Any] = {"model": weights.DEFAULT_MODEL, "threads": args.threads}
    for example, questions in QUESTIONS.items():
        spec = load_charter(ROOT / "examples" / example / "charter.yaml")
        checks = persona_checks(spec)
        rows: dict[str, dict[str, Any]] = {}
        for name in ("off", "on", "on+judge"):
            charter = Charter(variant(spec, name), model=model)
            walls, calls, tokens, revised, draft_ok, final_ok = [], [], [], 0, 0, 0
            for question in questions:
                before = model.calls
                started = time.perf_counter()
                reply = charter.respond(question)
                walls.append(time.perf_counter() - started)
                calls.append(model.calls - before)
                tokens.append(reply.usage.total_tokens)
                final_ok += not failed(checks, reply.text)
                if "critique" in reply.trace:
                    detail = reply.trace["critique"].detail
                    revised += detail.get("revisions", 0) > 0
                    draft_ok += not detail.get("draft_violations")
                else:
                    draft_ok += not failed(checks, reply.text)
            n = len(questions)
            rows[name] = {
                "median_s": statistics.median(walls),
                "p90_s": percentile(walls, 90),
                "model_calls_per_turn": sum(calls) / n,
                "tokens_per_turn": sum(tokens) / n,
                "revised": Rate(revised, n),
                "draft_passes_checks": Rate(draft_ok, n),
                "final_passes_checks": Rate(final_ok, n),
            }
        report[example] = {"checks": [c.id for c in checks], "conditions": rows}
    model.inner.close()
    out = ROOT / "bench" / "results" / "critique.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(
        json.dumps(report, indent=2, default=lambda r: r.to_dict() if isinstance(r, Rate) else r)
    )
    for example in QUESTIONS:
        print(f"\n{example} (programmatic checks: {', '.join(report[example]['checks'])})")
        for name, r in report[example]["conditions"].items():
            print(
                f"  {name:9} median {r['median_s']:.2f} s, p90 {r['p90_s']:.2f} s, "
                f"{r['model_calls_per_turn']:.2f} model calls/turn, "
                f"{r['tokens_per_turn']:.0f} tokens/turn, revised {r['revised']}, "
                f"draft passes {r['draft_passes_checks']}, final passes {r['final_passes_checks']}"
            )
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
