"""How often the hygiene checks fire on real assistant replies (which neither spin nor echo
the pipeline).

    .venv/bin/python bench/persona/spin_rate.py [--conversations 3000] [--show 10] [--seed 0]

A seeded sample of the ShareGPT conversations with fewer than 20 user turns that the guards
do not learn from; every ChatGPT reply in them is checked as the hygiene stage checks a
reply: does it repeat an earlier reply of its conversation (`repeats_earlier`, the user's
earlier requests given), does it repeat itself (`repeats_itself`). ChatGPT's replies are not
spinning, so every fire is a reply the hygiene stage would have asked for again: the count is
the checks' false-alarm rate on ordinary traffic, and the printed sample shows what they fire
on. The scaffolding check (`scaffolding.strip`, every reply taken as one the critique revised,
the widest it reads) is counted the same way: ChatGPT never saw the pipeline's words, so
anything it takes out is a false alarm. No model is loaded.
"""

from __future__ import annotations

import argparse
import random

from charter.datasets.guard_sources import sharegpt_exchanges_by_conversation, sharegpt_trained
from charter.persona.repetition import repeats_earlier, repeats_itself
from charter.persona.scaffolding import Markers, strip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--conversations", type=int, default=3000)
    parser.add_argument("--show", type=int, default=10, help="fires of each check to print")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    by_conversation = sharegpt_exchanges_by_conversation()
    held_out = sorted(c for c in by_conversation if not sharegpt_trained(c))
    rng = random.Random(args.seed)
    chosen = rng.sample(held_out, min(args.conversations, len(held_out)))
    replies = 0
    earlier_fires: list[tuple[str, str]] = []
    itself_fires: list[tuple[str, str]] = []
    scaffolding_fires: list[tuple[str, str]] = []
    for conversation in chosen:
        exchanges = by_conversation[conversation]
        for n, (asked, reply) in enumerate(exchanges):
            replies += 1
            before = [r for _, r in exchanges[:n]]
            asked_before = [a for a, _ in exchanges[:n]]
            if repeats_earlier(reply, before, request=asked, asked=asked_before) is not None:
                earlier_fires.append((conversation, reply))
            what = repeats_itself(reply)
            if what is not None:
                itself_fires.append((conversation, what))
            taken = strip(reply, Markers(), revised=True, request=asked).removed
            if taken:
                scaffolding_fires.append((conversation, "; ".join(taken)))
    print(f"{replies} ChatGPT replies in {len(chosen)} held-out conversations")
    for name, fires in (
        ("repeats an earlier reply", earlier_fires),
        ("repeats itself", itself_fires),
        ("scaffolding taken out", scaffolding_fires),
    ):
        print(f"{name}: {len(fires)} ({len(fires) / max(replies, 1):.2%})")
        for conversation, text in fires[: args.show]:
            print(f"  {conversation}: {text[:120]!r}")


if __name__ == "__main__":
    main()
