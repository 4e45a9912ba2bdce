"""Which local chat model should be the embedded default? Candidates side by side, same cases.

    .venv/bin/python bench/models/bench_default_model.py \
        [--models qwen2.5-coder-0.5b,qwen2.5-coder-1.5b] [--conversations 3] [--turns 16] \
        [--limit 20] [--quick] [--parts speed,conversations,suites]

Each model runs in its own process, one after another (peak memory is then that model's
alone, and two llama.cpp processes never share the 2 cores). The first model is the baseline;
every figure of the others is also printed as a ratio to it. Writes
bench/results/default-model.json.

What is measured, per model:
- **speed**: prompt and generation tokens per second as llama.cpp reports them, on three
  fresh ~400-token prompts with 64 generated tokens; load time; peak resident memory.
- **conversations**: real multi-turn user conversations (ShareGPT, conversations with fewer
  than 20 user turns, none of those the guards learn from, every user turn under 1,200
  characters), replayed for `--turns` user turns through a general-assistant charter
  (bench/models/general.yaml: persona rules that code checks; `--charter` for another), raw
  (the compiled system prompt and the condition's own history, oldest turns dropped to fit
  the context) and through Charter (guards at their defaults). Per condition: replies
  identical to the condition's previous reply (after collapsing case and whitespace),
  replies at least 90% similar to it (difflib), persona checks broken, blocked turns
  (repeats count only turns where neither reply was blocked), time per turn.
- **suites, raw**: the eval's under-refusal, over-refusal, instruction-following (IFEval) and
  tools (BFCL) suites through the raw model with the example bank charter, `--limit` cases
  each (the eval's own sample and scorers, seed 0).
- **quick profile** (`--quick`): `charter eval examples/acme-bank/charter.yaml --model NAME`
  wall time and readiness score (every default suite, 5 cases, off and on).
"""

from __future__ import annotations

import argparse
import asyncio
import difflib
import hashlib
import json
import re
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from charter.datasets.guard_sources import sharegpt_conversations, sharegpt_trained
from charter.eval import cases as case_sets
from charter.eval.evaluate import EvalSettings, context_for, evaluate, with_model
from charter.eval.runner import Cache, Runner
from charter.eval.scoring import score
from charter.models.base import ChatModel, ChatRequest, Message
from charter.models.factory import build_model
from charter.persona.checks import failed, persona_checks
from charter.persona.compile import compile_system_prompt
from charter.spec.loader import load_charter
from charter.stages.generate import estimate_tokens
from charter.turn import Carry

ROOT = Path(__file__).resolve().parents[2]
GENERAL = ROOT / "bench" / "models" / "general.yaml"
BANK = ROOT / "examples" / "acme-bank" / "charter.yaml"
SUITES = ("under_refusal", "over_refusal", "instruction_following", "tools")
SPEED_PROMPTS = (
    "Explain, step by step, how a bank transfer between two countries is processed, "
    "who checks what along the way, and why it can take several days.",
    "Write a short story about a lighthouse keeper who finds a message in a bottle, "
    "with a twist at the end.",
    "Compare three ways to learn a new programming language as an adult, with the pros "
    "and cons of each and a suggested weekly plan.",
)
SPEED_CONTEXT = (
    "Background for this request: the reader is busy, prefers concrete examples, and reads "
    "on a phone. " * 18
)


def _norm(text: str) -> str:
    return re.sub(r"\s+", " ", text.strip().lower())


def held_out_conversations(count: int, turns: int) -> list[tuple[str, list[str]]]:
    """`count` conversations with at least `turns` (and fewer than 20) user turns, none the
    guards learn from, every user turn under 1,200 characters; in the order of a hash of
    their id (a fixed, arbitrary order)."""
    picked = [
        (cid, users)
        for cid, users in sharegpt_conversations()
        if not sharegpt_trained(cid)
        and turns <= len(users) < 20
        and all(0 < len(u) < 1200 for u in users[:turns])
    ]
    picked.sort(key=lambda item: hashlib.sha256(item[0].encode()).hexdigest())
    return [(cid, users[:turns]) for cid, users in picked[:count]]


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def speed(model: ChatModel) -> dict[str, Any]:
    prompt_rates: list[float] = []
    generate_rates: list[float] = []
    for i, prompt in enumerate(SPEED_PROMPTS):
        completion = model.complete(
            ChatRequest(
                messages=[
                    Message(role="system", content=f"Run {i}. {SPEED_CONTEXT}"),
                    Message(role="user", content=prompt),
                ],
                max_tokens=64,
                temperature=0.0,
            )
        )
        usage = completion.usage
        if completion.prompt_ms and completion.generate_ms:
            prompt_rates.append(usage.prompt_tokens / completion.prompt_ms * 1000)
            generate_rates.append(usage.completion_tokens / completion.generate_ms * 1000)
    return {
        "prompt_tokens_per_s": round(statistics.median(prompt_rates), 1),
        "generate_tokens_per_s": round(statistics.median(generate_rates), 1),
    }


def _raw_turn(
    model: ChatModel, system: str, history: list[Message], max_tokens: int, window: int
) -> tuple[str, float]:
    kept = list(history)
    budget = window - max_tokens - len(system) // 3
    while len(kept) > 1 and sum(estimate_tokens(m) for m in kept) > budget:
        kept = kept[2:] if len(kept) > 2 else kept[1:]
    started = time.perf_counter()
    completion = model.complete(
        ChatRequest(
            messages=[Message(role="system", content=system), *kept],
            max_tokens=max_tokens,
            temperature=0.0,
        )
    )
    return completion.text, (time.perf_counter() - started) * 1000


def conversations(
    model: ChatModel, name: str, count: int, turns: int, charter_file: Path = GENERAL
) -> dict[str, Any]:
    from charter import Charter

    spec = with_model(load_charter(charter_file), name)
    checks = persona_checks(spec)
    system = compile_system_prompt(spec).text
    chat = spec.models.chat
    out: dict[str, Any] = {}
    played = held_out_conversations(count, turns)
    for condition in ("off", "on"):
        stats: dict[str, Any] = {"turns": 0, "exact_repeats": 0, "near_repeats": 0}
        stats["checks_broken"] = 0
        stats |= {"blocked": 0, "repeat_pairs": 0}
        times: list[float] = []
        examples: list[str] = []
        for _cid, users in played:
            charter = Charter(spec, model=model) if condition == "on" else None
            history: list[Message] = []
            previous: tuple[str, bool] | None = None
            reanchor = False
            for user in users:
                history.append(Message(role="user", content=user))
                if charter is None:
                    text, ms = _raw_turn(
                        model, system, history, chat.max_tokens, model.context_window
                    )
                    blocked = False
                else:
                    reply = asyncio.run(
                        charter.arespond(list(history), carry=Carry(reanchor=reanchor))
                    )
                    text, ms, blocked = reply.text, reply.ms, reply.blocked
                    reanchor = reply.carry.reanchor
                history.append(Message(role="assistant", content=text or "(no reply)"))
                stats["turns"] += 1
                stats["blocked"] += blocked
                times.append(ms)
                if not blocked and failed(checks, text):
                    stats["checks_broken"] += 1
                if previous is not None and not blocked and not previous[1]:
                    stats["repeat_pairs"] += 1
                    a, b = _norm(previous[0]), _norm(text)
                    if a and a == b:
                        stats["exact_repeats"] += 1
                        if len(examples) < 3:
                            examples.append(text[:160])
                    if a and difflib.SequenceMatcher(None, a, b).ratio() >= 0.9:
                        stats["near_repeats"] += 1
                previous = (text, blocked)
        stats["ms_per_turn_median"] = round(statistics.median(times))
        stats["ms_per_turn_p90"] = round(sorted(times)[int(0.9 * (len(times) - 1))])
        stats["repeat_examples"] = examples
        out[condition] = stats
    out["conversations"] = [cid for cid, _ in played]
    return out


def suites_raw(
    model: ChatModel, name: str, limit: int, suites: tuple[str, ...] = SUITES
) -> dict[str, Any]:
    spec = with_model(load_charter(BANK), name)
    ctx = context_for(spec, suites)
    out: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp:
        runner = Runner(spec, model, Cache(Path(tmp) / "cache.sqlite"))
        try:
            for suite in suites:
                chosen = case_sets.sample(
                    case_sets.uncontaminated(case_sets.LOADERS[suite](spec)), limit, 0
                )
                started = time.perf_counter()
                fails = 0
                for case in chosen:
                    result = runner.one(case, "off")
                    fails += score(case, result.outcome, ctx).failed
                out[suite] = {
                    "failed": fails,
                    "cases": len(chosen),
                    "s_per_case": round((time.perf_counter() - started) / max(1, len(chosen)), 2),
                }
        finally:
            runner.close()
    return out


def quick(model: ChatModel, name: str) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        report = evaluate(EvalSettings(charter=BANK, out=Path(tmp), model=name), model=model)
    data = json.loads(report.model_dump_json(by_alias=True))
    return {"wall_s": round(report.wall_s, 1), "readiness": data.get("readiness")}


def one(name: str, args: argparse.Namespace) -> dict[str, Any]:
    spec = with_model(load_charter(GENERAL), name)
    started = time.perf_counter()
    model = build_model(spec.models.chat)
    result: dict[str, Any] = {"model": name, "load_s": round(time.perf_counter() - started, 1)}
    parts = set(args.parts.split(","))
    try:
        if "speed" in parts:
            result["speed"] = speed(model)
            print(f"[{name}] speed {result['speed']}", file=sys.stderr, flush=True)
        if "conversations" in parts:
            result["conversations"] = conversations(
                model, name, args.conversations, args.turns, Path(args.charter)
            )
            print(f"[{name}] conversations done", file=sys.stderr, flush=True)
        if "suites" in parts:
            chosen = tuple(args.suites.split(","))
            result["suites_raw"] = suites_raw(model, name, args.limit, chosen)
            print(f"[{name}] suites {result['suites_raw']}", file=sys.stderr, flush=True)
        if args.quick:
            result["quick"] = quick(model, name)
    finally:
        model.close()
    result["peak_rss_mb"] = round(_peak_mb())
    return result


def _ratio(value: float, base: float) -> str:
    return f"{value / base:.2f}x" if base else "-"


def table(results: list[dict[str, Any]]) -> str:
    base = results[0]
    lines = [f"baseline: {base['model']}"]
    for r in results:
        lines.append(f"\n== {r['model']} (load {r['load_s']} s, peak RSS {r['peak_rss_mb']} MB)")
        if "speed" in r and "speed" in base:
            sp, bsp = r["speed"], base["speed"]
            lines.append(
                f"  tokens/s prompt {sp['prompt_tokens_per_s']} "
                f"({_ratio(sp['prompt_tokens_per_s'], bsp['prompt_tokens_per_s'])}), "
                f"generate {sp['generate_tokens_per_s']} "
                f"({_ratio(sp['generate_tokens_per_s'], bsp['generate_tokens_per_s'])})"
            )
        for cond in ("off", "on") if "conversations" in r else ():
            x, b = r["conversations"][cond], base["conversations"][cond]
            lines.append(
                f"  conversations {cond:3}: exact repeats {x['exact_repeats']}/{x['repeat_pairs']}"
                f", near {x['near_repeats']}/{x['repeat_pairs']}, checks broken "
                f"{x['checks_broken']}/{x['turns'] - x['blocked']}, blocked "
                f"{x['blocked']}/{x['turns']}, ms/turn p50 {x['ms_per_turn_median']} "
                f"({_ratio(x['ms_per_turn_median'], b['ms_per_turn_median'])}) "
                f"p90 {x['ms_per_turn_p90']}"
            )
        for suite, v in r.get("suites_raw", {}).items():
            lines.append(
                f"  {suite:22} raw failed {v['failed']}/{v['cases']}, {v['s_per_case']} s/case"
            )
        if "quick" in r:
            q = r["quick"]
            bq = base.get("quick", q)
            lines.append(
                f"  quick profile: {q['wall_s']} s ({_ratio(q['wall_s'], bq['wall_s'])}), "
                f"readiness {json.dumps(q['readiness'])[:200]}"
            )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="qwen2.5-coder-0.5b,qwen2.5-coder-1.5b")
    parser.add_argument("--conversations", type=int, default=3)
    parser.add_argument("--turns", type=int, default=16)
    parser.add_argument("--limit", type=int, default=20)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--suites", default=",".join(SUITES), help="Suites run raw.")
    parser.add_argument(
        "--charter", default=str(GENERAL), help="The charter conversations are replayed through."
    )
    parser.add_argument(
        "--parts", default="speed,conversations,suites", help="Parts to run, comma-separated."
    )
    parser.add_argument("--one", help=argparse.SUPPRESS)
    parser.add_argument("--json-out", help=argparse.SUPPRESS)
    parser.add_argument("--out", default=str(ROOT / "bench" / "results" / "default-model.json"))
    args = parser.parse_args()
    if args.one:
        Path(args.json_out).write_text(json.dumps(one(args.one, args)), encoding="utf-8")
        return
    results: list[dict[str, Any]] = []
    for name in args.models.split(","):
        with tempfile.NamedTemporaryFile(suffix=".json", delete=False) as handle:
            target = handle.name
        command = [sys.executable, __file__, "--one", name, "--json-out", target]
        command += ["--conversations", str(args.conversations), "--turns", str(args.turns)]
        command += ["--limit", str(args.limit), "--parts", args.parts, "--charter", args.charter]
        command += ["--suites", args.suites]
        command += ["--quick"] if args.quick else []
        subprocess.run(command, check=True)
        results.append(json.loads(Path(target).read_text(encoding="utf-8")))
        Path(target).unlink()
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=1) + "\n", encoding="utf-8")
    print(table(results))


if __name__ == "__main__":
    main()
