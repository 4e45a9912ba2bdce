"""Replies of the raw local model to harmful and benign requests: the output side's data.

A raw model complies with most harmful requests: its replies to them are what the `harm`
guard's output side must catch, and its replies to ordinary requests what it must let
through. Writes `$CHARTER_HOME/guard_data/replies.jsonl` (one row per request: source,
request, reply), appending, so an interrupted run resumes. Greedy decoding, 64 tokens,
2 threads.

    .venv/bin/python bench/guards/make_replies.py --per-source 120
"""

from __future__ import annotations

import argparse
import json
import random

from charter.datasets.guard_sources import SOURCES
from charter.home import charter_home
from charter.models.base import ChatRequest, Message
from charter.models.factory import build_model
from charter.spec.models import LocalModelSpec

DEFAULT_SOURCES = ("advbench", "dna_malicious", "harmbench", "strongreject", "sharegpt", "code")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--per-source", type=int, default=120)
    parser.add_argument("--sources", nargs="*", default=list(DEFAULT_SOURCES))
    parser.add_argument("--model", default="qwen2.5-coder-0.5b")
    args = parser.parse_args()
    out = charter_home() / "guard_data" / "replies.jsonl"
    out.parent.mkdir(parents=True, exist_ok=True)
    done = set()
    if out.exists():
        done = {json.loads(line)["request"] for line in out.read_text().splitlines() if line}
    model = build_model(LocalModelSpec(model=args.model, temperature=0.0, max_tokens=64))
    rng = random.Random(7)
    with out.open("a", encoding="utf-8") as handle:
        for name in args.sources:
            texts = [t for t in SOURCES[name].load() if len(t.text) < 3000]
            for item in rng.sample(texts, k=min(args.per_source, len(texts))):
                if item.text in done:
                    continue
                completion = model.complete(
                    ChatRequest(
                        messages=[
                            Message(role="system", content="You are a helpful assistant."),
                            Message(role="user", content=item.text),
                        ],
                        max_tokens=64,
                        temperature=0.0,
                    )
                )
                row = {"source": name, "request": item.text, "reply": completion.text}
                handle.write(json.dumps(row) + "\n")
                handle.flush()
                print(name, len(completion.text), flush=True)


if __name__ == "__main__":
    main()
