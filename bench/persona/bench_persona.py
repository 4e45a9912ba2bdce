"""Persona rules over real conversations, one rule kind at a time: raw model vs Charter.

    .venv/bin/python bench/persona/bench_persona.py [--conversations 4] [--turns 16]
        [--kinds format,scope,tone,identity,values] [--model NAME] [--seed 0] [--out DIR]
        [--steering FILE [--strength 1.0]] [--fake]

For each rule kind a one-rule charter (`bench/persona/charters/<kind>.yaml`) replays the same
held-out ShareGPT conversations (fewer than 20 user turns, none the guards learn from, those
of 16 user turns or more first; `charter.eval.stability`), cut at `--turns`, through the
persona_stability suite's machinery: off = the raw model with the compiled system prompt and
its own replies as history, on = the full pipeline (guards at their defaults). Probes are
asked aside at every 4th turn and the last: identity probes for the identity charter, scope
probes for the scope charter, the charter's own choice for the others (identity).

Per kind it prints that kind's pass rate at turns 1-5 and at the last five turns, off and
on, as k/n with a Wilson 95% interval (every reply: real turns and probes; a turn blocked on
either side is left out of both), then blocked turns, leaked scaffolding, spinning replies
and errors per condition, and the time of a real turn: on minus off, and the share of the on
turn that holding the reply costs (critique + hygiene stage time over the turn's time).

Tone is read by the code checks of its marks (`persona.style.no_exclamation_marks`,
`no_emoji`) and by the persona judge (`charter.persona.judge`, used when built for the
charter); with neither it prints "not scored". Every reply is cached in `--out`, so an
interrupted run resumes; the figures go to `<out>/results.json`. `--steering FILE` runs the
chat model with that steering file (`charter steer`) applied at `--strength`, on both sides:
the model itself is steered, so off is the steered raw model. `--fake`: a scripted fake
model and a fake judge, for a quick check of the machinery (no model weights are loaded).
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from charter.eval import stability
from charter.eval.evaluate import uses_refusal_judge, with_model
from charter.eval.persona_probes import KINDS, ProbeKind
from charter.eval.runner import Cache, Runner, pairs
from charter.models.base import ChatModel, ChatRequest
from charter.models.factory import build_model
from charter.models.fake import FakeModel
from charter.models.weights import sha256_of
from charter.spec.loader import load_charter
from charter.spec.models import CharterSpec, SteeringSpec
from charter.stats import Rate

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
CHARTERS = HERE / "charters"
PROBES: dict[str, tuple[ProbeKind, ...]] = {"identity": ("identity",), "scope": ("scope",)}
WINDOW = 5


def fake_answer(request: ChatRequest) -> str:
    """The fake model: short on-persona replies, a long one every third turn, a wrong
    identity every fifth."""
    last = " ".join(request.messages[-1].content.split()[:8])
    turn = sum(m.role == "user" for m in request.messages)
    if turn % 5 == 0:
        return "I am ChatGPT, a language model trained by OpenAI. I'm definitely sure of it!"
    if turn % 3 == 0:
        return f"Here is a long answer about: {last}. " + "It has many more details. " * 20
    return f"Happy to help with that ({last}). I'm Nova from Lumen Labs."


@dataclass(frozen=True)
class FakeFinding:
    rule: str
    kind: str
    score: float
    by: str


class FakeJudge:
    """A stand-in persona judge for `--fake`: an exclamation mark breaks the tone rule."""

    name = "fake"

    async def findings(self, question: str, reply: str) -> list[FakeFinding]:
        if "!" in reply:
            return [FakeFinding("tone", "tone", 0.9, "fake")]
        return []


def window_rate(records: list[dict[str, Any]], kind: str, condition: str, last: bool) -> Rate:
    """The kind's pass rate in the first WINDOW turns, or the last WINDOW of each conversation."""
    chosen = [
        r
        for r in records
        if r["condition"] == condition
        and kind in r["kinds"]
        and (r["turn"] > r["length"] - WINDOW if last else r["turn"] <= WINDOW)
    ]
    return Rate(sum(bool(r["kinds"][kind]) for r in chosen), len(chosen))


def timing(records: list[dict[str, Any]]) -> dict[str, float | None]:
    """Mean ms of a real turn per condition, on minus off, and holding's share of the on turn."""

    def real(condition: str) -> list[dict[str, Any]]:
        return [
            r
            for r in records
            if r["condition"] == condition and r["probe"] is None and r["status"] == "answered"
        ]

    off, on = real("off"), real("on")
    mean_off = statistics.mean(r["ms"] for r in off) if off else None
    mean_on = statistics.mean(r["ms"] for r in on) if on else None
    total_on = sum(r["ms"] for r in on)
    return {
        "off_ms": None if mean_off is None else round(mean_off, 1),
        "on_ms": None if mean_on is None else round(mean_on, 1),
        "added_ms": None if mean_off is None or mean_on is None else round(mean_on - mean_off, 1),
        "holding_share": round(sum(r["held_ms"] for r in on) / total_on, 4) if total_on else None,
    }


def bench_kind(
    kind: str, spec: CharterSpec, model: ChatModel, args: argparse.Namespace, out: Path
) -> dict[str, Any]:
    """Replay the conversations for one kind's charter; its rates, counts and timing."""
    cases = stability.conversation_cases(
        spec, args.conversations, args.turns, seed=args.seed, scripted=0, kinds=PROBES.get(kind)
    )
    runner = Runner(
        spec, model, Cache(out / "cache.sqlite"), refusal_judge=uses_refusal_judge(spec, "auto")
    )
    judge: stability.PersonaJudge | Literal["auto"] = FakeJudge() if args.fake else "auto"
    started = time.perf_counter()
    try:
        results = stability.run_conversations(runner, cases, judge=judge)
    finally:
        runner.close()
    rows = list(pairs(results))
    records = stability.counted(stability.records(rows))
    summary = stability.summary(rows)
    rates = {
        condition: {
            "first": window_rate(records, kind, condition, last=False),
            "last": window_rate(records, kind, condition, last=True),
        }
        for condition in ("off", "on")
    }
    return {
        "charter": str((CHARTERS / f"{kind}.yaml").relative_to(ROOT)),
        "conversations": summary["conversations"],
        "judge": summary["judge"],
        "rates": {c: {w: r.to_dict() for w, r in by.items()} for c, by in rates.items()},
        "counts": summary["counts"],
        "timing": timing(stability.records(rows)),
        "wall_s": round(time.perf_counter() - started, 1),
        "_rates": rates,
    }


def show(kind: str, result: dict[str, Any]) -> None:
    print(
        f"\n{kind}  ({result['charter']}; {len(result['conversations'])} conversation(s), "
        f"persona judge: {result['judge']}, {result['wall_s']:.0f} s)"
    )
    rates: dict[str, dict[str, Rate]] = result["_rates"]
    if not any(r.n for by in rates.values() for r in by.values()):
        print("  not scored: no reply was scored on this kind (tone: no marks checked, no judge)")
    else:
        print(f"  {'':4} {'turns 1-' + str(WINDOW):>30} {'last ' + str(WINDOW) + ' turns':>30}")
        for condition in ("off", "on"):
            first, last = rates[condition]["first"], rates[condition]["last"]
            print(f"  {condition:4} {first!s:>30} {last!s:>30}")
    counts = result["counts"]

    def both(key: str) -> str:
        return f"{counts['off'][key]}/{counts['on'][key]}"

    print(
        f"  off/on: blocked {both('blocked')}, leaked scaffolding {both('leaked_scaffolding')}, "
        f"spins {both('spins')}, errors {both('errors')} (of {both('replies')} replies)"
    )
    t = result["timing"]
    if t["added_ms"] is not None:
        share = "-" if t["holding_share"] is None else f"{t['holding_share']:.0%}"
        print(
            f"  ms per turn: off {t['off_ms']:.0f}, on {t['on_ms']:.0f} ({t['added_ms']:+.0f}); "
            f"holding (critique + hygiene) {share} of the on turn"
        )


def steered(spec: CharterSpec, args: argparse.Namespace) -> CharterSpec:
    """The charter with `--steering` at `--strength` set on its local chat model."""
    if args.steering is None:
        return spec
    steering = SteeringSpec(
        path=str(args.steering), sha256=sha256_of(args.steering), strength=args.strength
    )
    chat = spec.models.chat.model_copy(update={"steering": steering})
    return spec.model_copy(update={"models": spec.models.model_copy(update={"chat": chat})})


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--conversations", type=int, default=4)
    parser.add_argument("--turns", type=int, default=16)
    parser.add_argument("--kinds", default=",".join(KINDS), help="comma-separated")
    parser.add_argument("--model", help="chat model: a catalog name or a .gguf path")
    parser.add_argument("--steering", type=Path, help="a steering file (`charter steer`)")
    parser.add_argument("--strength", type=float, default=1.0, help="with --steering")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, help="default: bench/results/persona-bench/")
    parser.add_argument("--fake", action="store_true", help="fake model and judge (a smoke run)")
    args = parser.parse_args()
    kinds = [k.strip() for k in args.kinds.split(",") if k.strip()]
    unknown = [k for k in kinds if k not in KINDS]
    if unknown:
        parser.error(f"unknown kind(s) {', '.join(unknown)}; known: {', '.join(KINDS)}")
    out: Path = args.out or (
        Path(tempfile.mkdtemp(prefix="persona-bench-"))
        if args.fake
        else ROOT / "bench" / "results" / "persona-bench"
    )
    out.mkdir(parents=True, exist_ok=True)
    specs = {
        k: steered(with_model(load_charter(CHARTERS / f"{k}.yaml"), args.model), args)
        for k in kinds
    }
    first = specs[kinds[0]]
    model: ChatModel
    if args.fake:  # FakeModel calls a callable default with each request
        model = FakeModel([], default=fake_answer, name="fake")  # type: ignore[arg-type]
    else:
        model = build_model(first.models.chat)
    chat = first.models.chat
    print(
        f"model {model.name} (threads {getattr(chat, 'threads', None) or 'all cores'}), "
        f"{args.conversations} conversation(s) x {args.turns} turns, seed {args.seed}, out {out}"
    )
    results: dict[str, Any] = {}
    try:
        for kind in kinds:
            results[kind] = bench_kind(kind, specs[kind], model, args, out)
            show(kind, results[kind])
    finally:
        model.close()
    for result in results.values():
        result.pop("_rates")
    settings = {
        k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items() if k != "out"
    }
    (out / "results.json").write_text(
        json.dumps({"model": model.name, "settings": settings, "kinds": results}, indent=2) + "\n"
    )
    print(f"\nwrote {out / 'results.json'}")


if __name__ == "__main__":
    main()
