"""Pick the (reply, rule) pairs behind the persona judge's hand labels.

Replies are ChatGPT's, from ShareGPT conversations with fewer than 20 user turns that the
guards do not learn from. For each example charter and rule, candidates come from a few pools
(seeded): exchanges whose request has words of the rule's subject (banking, investing, tax or
law, code), replies where the assistant speaks of itself ("language model", "my training
data", "my name"), replies that decline, and random exchanges, so that both labels occur. The
output holds the texts, for reading; the labels file keeps only references
(`src/charter/datasets/own/persona_judge_labels.jsonl`).

    python bench/persona/judge_pairs.py --out /tmp/pairs.jsonl
"""

from __future__ import annotations

import argparse
import hashlib
import json
import random
import re
from pathlib import Path

from charter.datasets.guard_sources import sharegpt_exchanges, sharegpt_trained

BANKING = re.compile(
    r"\b(?:bank|banking|account|credit card|debit card|loan|mortgage|transfer|savings|overdraft"
    r"|atm|deposit|withdraw\w*|interest rate|card)\b",
    re.I,
)
ADVICE = re.compile(
    r"\b(?:invest\w*|stocks?|shares|portfolio|crypto\w*|bitcoin|tax\w*|irs|legal|lawyer|lawsuit"
    r"|sue|contract|court|attorney)\b",
    re.I,
)
PERSONAL_BANKING = re.compile(
    r"\b(?:my (?:bank|account|credit card|debit card|card|loan|mortgage|savings)|bank accounts?"
    r"|credit cards?|wire transfers?|overdraft|credit score|checking account|savings account"
    r"|bank fees?|atm)\b",
    re.I,
)
ASKS_ADVICE = re.compile(
    r"\b(?:should i (?:invest|buy|sell)|invest(?:ing)? (?:in|my)|which stocks?|retirement"
    r"|taxes|tax (?:return|deduction|on|for)|deduct\w*|is it legal|can i sue|legal advice"
    r"|landlord|tenant|lease|copyright|trademark)\b",
    re.I,
)
CODE = re.compile(
    r"\b(?:python|javascript|js|function|error|code|bug|array|loop|react|node)\b", re.I
)
SELF = re.compile(
    r"\b(?:language model|as an ai|my training|knowledge cut-?off|I am an ai|I'm an ai|my name is"
    r"|I am a computer program|machine learning model|my creators?)\b",
    re.I,
)
DECLINE = re.compile(
    r"^(?:I'm sorry|I am sorry|I apologi[sz]e|Sorry|Unfortunately|I cannot|I can't)"
)

PLAN = (
    # charter, rule, [(pool, count)]
    ("acme-bank", "scope", [("banking", 10), ("decline", 8), ("random", 12)]),
    ("acme-bank", "never.0", [("advice", 11), ("random", 4)]),
    ("acme-bank", "identity", [("self", 13), ("random", 12)]),
    ("code-tutor", "scope", [("code", 15), ("random", 15)]),
    ("code-tutor", "identity", [("self", 10), ("random", 10)]),
    # added after reading the first 120: in-scope banking and advice-giving replies were rare
    ("acme-bank", "scope", [("personal", 10)]),
    ("acme-bank", "never.0", [("asks", 10)]),
)


def half(conversation: str) -> str:
    """`dev` or `test`, by a hash of the conversation id (one conversation, one half)."""
    digest = hashlib.sha256(f"persona-judge:{conversation}".encode()).hexdigest()
    return "test" if int(digest, 16) % 2 else "dev"


def pools() -> dict[str, list[tuple[str, int, str, str]]]:
    """(conversation, exchange index, request, reply) of each pool."""
    out: dict[str, list[tuple[str, int, str, str]]] = {
        k: []
        for k in ("banking", "advice", "code", "self", "decline", "random", "personal", "asks")
    }
    index: dict[str, int] = {}
    for cid, asked, reply in sharegpt_exchanges():
        n = index.get(cid, 0)
        index[cid] = n + 1
        if sharegpt_trained(cid) or not 10 < len(asked) < 700 or not 20 < len(reply) < 1500:
            continue
        if not (asked.isascii() and reply.replace("’", "'").isascii()):
            continue
        row = (cid, n, asked, reply)
        out["random"].append(row)
        if BANKING.search(asked):
            out["banking"].append(row)
        if ADVICE.search(asked):
            out["advice"].append(row)
        if PERSONAL_BANKING.search(asked):
            out["personal"].append(row)
        if ASKS_ADVICE.search(asked):
            out["asks"].append(row)
        if CODE.search(asked):
            out["code"].append(row)
        if SELF.search(reply):
            out["self"].append(row)
        if DECLINE.search(reply.strip()):
            out["decline"].append(row)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--seed", type=int, default=20261204)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    found = pools()
    used: set[tuple[str, int, str]] = set()
    rows: list[dict[str, object]] = []
    for charter, rule, plan in PLAN:
        for pool, count in plan:
            picked = 0
            for cid, n, asked, reply in rng.sample(found[pool], len(found[pool])):
                key = (cid, n, charter)
                if key in used:
                    continue
                used.add(key)
                rows.append(
                    {
                        "id": f"p{len(rows):03d}",
                        "charter": charter,
                        "rule": rule,
                        "pool": pool,
                        "ref": {"dataset": "sharegpt", "conversation": cid, "exchange": n},
                        "half": half(cid),
                        "request": asked,
                        "reply": reply,
                    }
                )
                picked += 1
                if picked == count:
                    break
    with args.out.open("w", encoding="utf-8") as handle:
        for row in rows:
            handle.write(json.dumps(row, ensure_ascii=False) + "\n")
    print(len(rows), "pairs")


if __name__ == "__main__":
    main()
