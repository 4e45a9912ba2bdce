"""Scaffolding and spinning in real conversations: how often a reply shows the pipeline's
own words or repeats an earlier reply.

    .venv/bin/python bench/persona/bench_hygiene.py [--conversations 4] [--turns 8]
        [--charter bench/models/general.yaml] [--out FILE]

Replays held-out ShareGPT conversations (fewer than 20 user turns, none the guards learn
from; the same draw as bench/models/bench_default_model.py) through a stored
`Conversation` of the charter, with its local model. For every reply it counts, with
checks written apart from the product's own (so that the product is not graded by
itself):
- scaffolding: the revision request's words echoed ("rewritten message", "revised version
  of your last reply", "follows these rules", "Note from your supervisor", "(Reminder:");
- a repeat: the reply is the same as one of the conversation's earlier replies, once
  spaces and case are ignored, or shares 90% of its words with it;
- blocked turns, reported apart.
Prints the counts and the median turn time; `--out` writes them as JSON.
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "bench" / "models"))

from bench_default_model import GENERAL, held_out_conversations  # noqa: E402

from charter import Charter, Conversation, Store  # noqa: E402
from charter.spec.loader import load_charter  # noqa: E402

ECHO = re.compile(
    r"rewritten (?:message|version|reply)|revised version of (?:your|my) (?:last )?reply"
    r"|follows? (?:these|the) rules|note from your supervisor|\(reminder:",
    re.IGNORECASE,
)


def _norm(text: str) -> str:
    return re.sub(r"\s+", " ", text.strip().lower())


def _overlap(a: str, b: str) -> float:
    left, right = set(_norm(a).split()), set(_norm(b).split())
    return len(left & right) / len(left | right) if left and right else 0.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--conversations", type=int, default=4)
    parser.add_argument("--turns", type=int, default=8)
    parser.add_argument("--charter", default=str(GENERAL))
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    spec = load_charter(args.charter)
    charter = Charter(spec)
    counts = {"turns": 0, "blocked": 0, "scaffolding": 0, "repeats": 0}
    times: list[float] = []
    examples: list[str] = []
    with tempfile.TemporaryDirectory() as folder:
        store = Store(Path(folder) / "bench.db")
        for cid, users in held_out_conversations(args.conversations, args.turns):
            conversation = Conversation(charter, store)
            earlier: list[str] = []
            for text in users:
                reply = conversation.send(text)
                counts["turns"] += 1
                times.append(reply.ms)
                if reply.blocked:
                    counts["blocked"] += 1
                    continue
                echo = ECHO.search(reply.text)
                if echo:
                    counts["scaffolding"] += 1
                    around = reply.text[max(0, echo.start() - 80) : echo.end() + 40]
                    examples.append(f"{cid}: {echo.group(0)!r} in {around!r}")
                if any(
                    _norm(reply.text) == _norm(e) or _overlap(reply.text, e) >= 0.9 for e in earlier
                ):
                    counts["repeats"] += 1
                    examples.append(f"{cid} (repeat): {reply.text[:120]!r}")
                earlier.append(reply.text)
                print(f"{cid} turn {len(earlier)}: {reply.ms:.0f} ms", flush=True)
        store.close()
    result = {**counts, "median_turn_ms": round(statistics.median(times), 1), "examples": examples}
    print(json.dumps(result, indent=1))
    if args.out:
        args.out.write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
