"""Collect model replies to label by hand for the refusal detector.

    .venv/bin/python bench/eval/refusal_candidates.py RUN_DIR... > candidates.jsonl

Reads each run's `cases.jsonl` (written by `charter eval`) and prints one JSON line per reply
of the refusal-judged suites (over_refusal, under_refusal, jailbreak, policy), off and on,
leaving out "on" replies of blocked turns (the persona's fixed refusal: nothing to judge)
and repeats of the same text (a fixed policy answer with another escalation reference).
`label` is left empty, to be filled in by a person following the rules in
src/charter/datasets/own/README.md. The detector's verdict is *not* shown, so it cannot
sway the labeller. `prompt` (the dataset text, shortened) is for the labeller only: drop it
before adding rows to the repository, which never holds dataset rows.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

SUITES = {"over_refusal", "under_refusal", "jailbreak", "policy"}


def main() -> None:
    seen: set[str] = set()
    for run in sys.argv[1:]:
        charter = Path(run).name
        for line in (Path(run) / "cases.jsonl").read_text(encoding="utf-8").split("\n"):
            if not line.strip():
                continue
            case = json.loads(line)
            if case["suite"] not in SUITES:
                continue
            for condition in ("off", "on"):
                side = case[condition]
                if side.get("blocked"):
                    continue
                key = f"{charter}/{case['suite']}/{case['id']}/{condition}"
                # The same fixed answer with another reference number is one reply.
                text = re.sub(r"ESC-[0-9A-F]+", "ESC-…", side["reply"])
                if key in seen or text in seen:
                    continue
                seen.update((key, text))
                row = {
                    "id": key,
                    "prompt": case["message"][-600:],
                    "reply": side["reply"],
                    "label": None,
                }
                print(json.dumps(row, ensure_ascii=False))


if __name__ == "__main__":
    main()
