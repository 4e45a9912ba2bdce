"""Where memory's recall threshold comes from: MiniLM similarity between unrelated messages.

    CHARTER_DATA_DIR=... .venv/bin/python bench/persona/recall_threshold.py [--pairs 1500]

Pairs the last user message of one ShareGPT conversation (fewer than 20 user turns, none the
guards learn from) with the first user message of another, each as recall embeds it (its
first passage), and prints percentiles of their cosine similarity. At the default
`memory.recall_min_similarity` (0.3), about two unrelated pairs in a hundred would be recalled
(1.8 % of 1,500 with the default seed). The same percentiles for the first and last user messages of
the same conversation are printed beside them, for scale.
"""

from __future__ import annotations

import argparse
import random

import numpy as np

from charter.datasets.guard_sources import sharegpt_conversations, sharegpt_trained
from charter.guards.embedder import shared_embedder
from charter.persona.memory import passages


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--pairs", type=int, default=1500)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args(argv)
    conversations = [
        turns
        for cid, turns in sharegpt_conversations()
        if not sharegpt_trained(cid) and len(turns) >= 2 and turns[0].strip() and turns[-1].strip()
    ]
    random.Random(args.seed).shuffle(conversations)
    chosen = conversations[: args.pairs]
    embed = shared_embedder().embed
    last = embed([passages(turns[-1])[0] for turns in chosen])
    first = embed([passages(turns[0])[0] for turns in chosen])
    unrelated = (last * np.roll(first, 1, axis=0)).sum(axis=1)
    same = (last * first).sum(axis=1)
    print(f"{len(chosen)} pairs; cosine similarity percentiles")
    print("percentile  unrelated  same conversation")
    for p in (50, 90, 95, 99):
        print(f"{p:>10}  {np.percentile(unrelated, p):9.3f}  {np.percentile(same, p):17.3f}")
    print(f"share of unrelated pairs at 0.3 or more: {float((unrelated >= 0.3).mean()):.3f}")


if __name__ == "__main__":
    main()
