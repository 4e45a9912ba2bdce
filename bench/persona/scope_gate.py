"""How often the scope gate declines before a reply is written: in-scope messages vs real chat.

    CHARTER_DATA_DIR=... .venv/bin/python bench/persona/scope_gate.py [--charter FILE]
        [--messages FILE] [--conversations 60] [--seed 100] [--show 10]

The gate (`charter.persona.gate`) reads the user's message alone; no chat model runs here.
Two kinds of traffic, neither seen by the gate's training (it learns from the messages the
charter's model wrote for the judge):

- in scope: `--messages` (default `bench/persona/scope/in_scope.txt`, ordinary messages to the
  bench's bank persona); every one the gate stops is a false decline.
- real chat: every user turn of `--conversations` held-out ShareGPT conversations (fewer than
  20 user turns; `charter.eval.stability.held_out_conversations`, any length, a sample drawn
  by `--seed`), the
  conversations people bring to a general assistant, nearly all outside a bank's job. The gate
  stopping a turn there is mostly right, but some turns ("continue", "thanks") are not requests
  of their own: the first turn of each conversation is reported apart.

Printed: the rate at the gate's threshold with a Wilson 95% interval, the score quartiles, and
the `--show` highest-scoring in-scope messages and lowest-scoring first turns.
"""

from __future__ import annotations

import argparse
import random
import statistics
from pathlib import Path

from charter.eval.stability import held_out_conversations
from charter.persona.judge import load_judge
from charter.spec.loader import load_charter
from charter.stats import Rate

HERE = Path(__file__).resolve().parent


def read_messages(path: Path) -> list[str]:
    lines = path.read_text(encoding="utf-8").splitlines()
    return [line.strip() for line in lines if line.strip() and not line.startswith("#")]


def report(name: str, scored: list[tuple[float, str]], threshold: float) -> None:
    scores = [s for s, _ in scored]
    stopped = sum(s >= threshold for s in scores)
    quartiles = statistics.quantiles(scores, n=4) if len(scores) > 1 else scores
    print(
        f"{name:28} stopped {Rate(stopped, len(scores))}  "
        f"quartiles {', '.join(f'{q:.2f}' for q in quartiles)}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--charter", type=Path, default=HERE / "charters" / "scope.yaml")
    parser.add_argument("--messages", type=Path, default=HERE / "scope" / "in_scope.txt")
    parser.add_argument("--conversations", type=int, default=60)
    parser.add_argument("--seed", type=int, default=100)
    parser.add_argument("--show", type=int, default=10)
    args = parser.parse_args()
    spec = load_charter(args.charter)
    judge = load_judge(spec)
    if judge is None or judge.gate is None:
        raise SystemExit(
            f"no scope gate built for {args.charter}: run `charter prompt {args.charter} "
            "--build-judge` first"
        )
    gate, embed = judge.gate, judge.embed
    print(f"gate: {gate.meta}, threshold {gate.threshold}")
    inside = [(gate.probability(embed, m), m) for m in read_messages(args.messages)]
    pool = held_out_conversations(10**6)  # every held-out conversation, not only long ones
    conversations = random.Random(args.seed).sample(pool, min(args.conversations, len(pool)))
    turns = [(gate.probability(embed, u), u) for c in conversations for u in c.users]
    first = [(gate.probability(embed, c.users[0]), c.users[0]) for c in conversations]
    report(f"in scope ({len(inside)})", inside, gate.threshold)
    report(f"real chat, first turns ({len(first)})", first, gate.threshold)
    report(f"real chat, every turn ({len(turns)})", turns, gate.threshold)
    print(f"\nin-scope messages, highest scores first (top {args.show}):")
    for score, message in sorted(inside, reverse=True)[: args.show]:
        print(f"  {score:.3f}  {message[:100]}")
    print(f"\nreal first turns, lowest scores first (top {args.show}):")
    for score, message in sorted(first)[: args.show]:
        print(f"  {score:.3f}  {' '.join(message.split())[:100]}")


if __name__ == "__main__":
    main()
