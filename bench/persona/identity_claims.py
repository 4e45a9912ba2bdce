"""How often the identity checks fire on real ChatGPT replies, and on what.

Every ChatGPT reply of the ShareGPT conversations with fewer than 20 user turns that the
guards do not learn from is checked as a reply of the acme-bank charter (Penny at Acme Bank,
which names no AI vendor): the claim check (`identity.claim`: claims to be another assistant,
model or company; the critique stage repairs them) and the judge's model talk ("as an AI
language model", "my knowledge cutoff"). Prints the counts and a seeded sample of the
sentences each fired on, for reading.

    python bench/persona/identity_claims.py --show 30
"""

from __future__ import annotations

import argparse
import random
from pathlib import Path

from charter.datasets.guard_sources import sharegpt_exchanges, sharegpt_trained
from charter.persona.identity import ClaimFinder, model_talk
from charter.spec.loader import load_charter

ACME = Path(__file__).parents[2] / "examples" / "acme-bank" / "charter.yaml"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--show", type=int, default=30, help="fires of each check to print")
    parser.add_argument("--seed", type=int, default=20261204)
    args = parser.parse_args()
    finder = ClaimFinder.for_charter(load_charter(ACME))
    replies = 0
    claims: list[tuple[str, str]] = []
    talk: list[tuple[str, str]] = []
    for conversation, _, reply in sharegpt_exchanges():
        if sharegpt_trained(conversation):
            continue
        replies += 1
        found = finder.claims(reply)
        if found:
            claims.append((conversation, found[0].text.strip()))
        said = model_talk(reply)
        if said:
            talk.append((conversation, said[0]))
    print(f"{replies} ChatGPT replies")
    print(f"claim check fires on {len(claims)} ({len(claims) / replies:.3%})")
    print(f"model talk on {len(talk)} ({len(talk) / replies:.3%})")
    rng = random.Random(args.seed)
    for name, fires in (("claim", claims), ("model talk", talk)):
        print(f"-- {name}: {min(args.show, len(fires))} of {len(fires)}")
        for conversation, text in rng.sample(fires, min(args.show, len(fires))):
            print(f"{conversation}: {text[:160]!r}")


if __name__ == "__main__":
    main()
