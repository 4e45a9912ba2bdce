"""How many IFEval instructions the request reader recognises (development half by default).

    .venv/bin/python bench/persona/ifeval_coverage.py [--half dev|test] [--show ID]

Counts, per instruction type, the instructions for which `requested_checks` produced the
matching check, and how often the check agrees with the IFEval verifier on the prompt
itself used as a stand-in reply (a cheap sanity check of both sides).
"""

from __future__ import annotations

import argparse
import collections

from charter.eval import ifeval
from charter.persona.requested import requested_checks

MATCH = {
    "punctuation:no_comma": "asked.no_comma",
    "length_constraints:number_words": ("asked.max_words", "asked.min_words"),
    "length_constraints:number_sentences": ("asked.max_sentences", "asked.min_sentences"),
    "length_constraints:number_paragraphs": "asked.paragraphs",
    "length_constraints:nth_paragraph_first_word": "asked.first_word",
    "keywords:forbidden_words": "asked.forbidden_words",
    "keywords:existence": "asked.keywords",
    "keywords:frequency": "asked.word_frequency",
    "keywords:letter_frequency": "asked.letter_frequency",
    "detectable_format:number_highlighted_sections": "asked.highlights",
    "detectable_format:number_bullet_lists": "asked.bullets",
    "detectable_format:title": "asked.title",
    "detectable_format:json_format": "asked.json",
    "detectable_format:multiple_sections": "asked.sections",
    "detectable_format:constrained_response": (),  # no detector (docs/design/011)
    "detectable_content:number_placeholders": "asked.placeholders",
    "detectable_content:postscript": "asked.postscript",
    "startend:quotation": "asked.quotation",
    "startend:end_checker": "asked.ends_with",
    "change_case:english_lowercase": "asked.lowercase",
    "change_case:english_capital": "asked.uppercase",
    "change_case:capital_word_frequency": "asked.capital_words",
    "combination:repeat_prompt": "asked.repeat",
    "combination:two_responses": "asked.two_responses",
    "language:response_language": "asked.language",
}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--half", choices=["dev", "test"], default="dev")
    parser.add_argument("--show", help="print the prompts of this instruction id not recognised")
    args = parser.parse_args()
    dev, test = ifeval.split_half(ifeval.load())
    prompts = dev if args.half == "dev" else test
    found: collections.Counter[str] = collections.Counter()
    total: collections.Counter[str] = collections.Counter()
    extra = 0
    for p in prompts:
        ids = {c.id for c in requested_checks(p.prompt)}
        wanted: set[str] = set()
        for iid in p.instruction_ids:
            names = MATCH[iid]
            names = (names,) if isinstance(names, str) else names
            wanted.update(names)
            total[iid] += 1
            if ids & set(names):
                found[iid] += 1
            elif args.show == iid:
                print("-", p.key, p.prompt[-300:].replace("\n", " "), "\n")
        extra += len(ids - wanted)
    for iid in sorted(total, key=lambda i: -total[i]):
        print(f"{found[iid]:4}/{total[iid]:<4} {iid}")
    print(f"recognised {sum(found.values())}/{sum(total.values())}; checks not asked: {extra}")


if __name__ == "__main__":
    main()
