"""Pick the ShareGPT user turns behind the identity-question labels.

Turns of up to 40 words from conversations under 20 user turns that the guards do not learn
from, in three pools: every turn a broad pattern finds, the 80 nearest (MiniLM) to the
detector's identity prototypes, and 40 random turns with a word of the subject. Prints the
candidates with their text, for labelling; the labels file keeps references only
(`src/charter/datasets/own/identity_question_labels.jsonl`).

    python bench/persona/identity_question_pool.py > /tmp/candidates.txt
"""

from __future__ import annotations

import random
import re

import numpy as np

from charter.datasets.guard_sources import sharegpt_conversations, sharegpt_trained
from charter.guards.embedder import shared_embedder
from charter.persona.identity import _CUE, IDENTITY_PROTOTYPES

BROAD = re.compile(
    r"(who (are|r) (you|u)|your name|are (you|u) (chat ?gpt|gpt|an? ai|an? bot|an? robot|human"
    r"|real|a person)|what (ai|model|version|language model|llm)\b|who (made|created|built"
    r"|trained|developed|programmed|owns) (you|u)|your (creator|developer|maker|owner)"
    r"|about yourself|introduce yourself|who am i (talking|speaking|chatting))",
    re.I,
)


def main() -> None:
    rows = [
        (cid, i, turn.strip())
        for cid, turns in sharegpt_conversations()
        if not sharegpt_trained(cid)
        for i, turn in enumerate(turns)
        if 0 < len(turn.split()) <= 40
    ]
    embedder = shared_embedder()
    # the prototypes as they were when the pool was drawn: the first 40
    prototypes = embedder.embed(IDENTITY_PROTOTYPES[:40])
    best = (embedder.embed([r[2] for r in rows]) @ prototypes.T).max(axis=1)
    pools = {
        "regex": [j for j, r in enumerate(rows) if BROAD.search(r[2])],
        "embedding": [int(j) for j in np.argsort(-best)[:80]],
        "random": random.Random(7).sample([j for j, r in enumerate(rows) if _CUE.search(r[2])], 40),
    }
    seen: set[str] = set()
    for name, picked in pools.items():
        for j in picked:
            cid, turn, text = rows[j]
            if text in seen:
                continue
            seen.add(text)
            print(f"{name} {cid} {turn} | {text[:230]!r}")


if __name__ == "__main__":
    main()
