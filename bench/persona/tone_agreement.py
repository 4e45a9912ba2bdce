"""Agreement of the persona judge's tone classifier with hand labels on replies from real chats.

    CHARTER_DATA_DIR=... python bench/persona/tone_agreement.py
        [--labels bench/persona/labels/tone.jsonl] [--charter bench/persona/charters/tone.yaml]

Each label is `keeps` or `breaks`, by hand, against the tone charter's tone, on replies in
held-out ShareGPT conversations (fewer than 20 user turns, none the guards learn from):
- replies the bench's local model wrote with the pipeline off and on, replayed by
  `bench_persona.py --kinds tone` (labelled with the condition hidden): the row holds the
  reply and where the user's message is (`conversation`, `turn`); the message is read from
  ShareGPT, never copied;
- ChatGPT's own replies (`exchange`: the index of the exchange in its conversation): both
  the message and the reply are read from ShareGPT.
`half` is `dev` for the labels read while the checks were designed and `test` for those
labelled after.

Two ways of telling a break, each against the labels:
- `code`: the checks `style.no_exclamation_marks` and `style.no_emoji` (persona/style.py), no
  model, no judge;
- `judge`: the tone classifier of the persona judge built for the charter in the Charter home
  (`charter prompt CHARTER --build-judge`), its threshold deciding every row, as in the
  pipeline with no model for the band (skipped when no judge is built).
Prints accuracy, precision and recall on `breaks`, and Cohen's kappa, per half, and the rows
each gets wrong.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from judge_agreement import report  # type: ignore[import-not-found]

from charter.datasets import guard_sources
from charter.persona.judge import load_judge
from charter.persona.style import exclaims, has_emoji
from charter.spec.loader import load_charter

HERE = Path(__file__).parent


def read_labels(path: Path) -> list[dict[str, Any]]:
    rows = [json.loads(line) for line in path.read_text("utf-8").splitlines() if line.strip()]
    for row in rows:
        if row.get("label") not in ("keeps", "breaks") or row.get("half") not in ("dev", "test"):
            raise SystemExit(f"{path} {row.get('id')}: label keeps|breaks and half dev|test")
    return rows


def resolve(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The rows whose conversation ShareGPT has here, with `request` and `reply` filled in."""
    wanted = {r["conversation"].removeprefix("sharegpt:") for r in rows}
    users = {c: t for c, t in guard_sources.sharegpt_conversations() if c in wanted}
    exchanges = guard_sources.sharegpt_exchanges_by_conversation()
    out: list[dict[str, Any]] = []
    for row in rows:
        cid = row["conversation"].removeprefix("sharegpt:")
        if "exchange" in row and cid in exchanges:
            request, reply = exchanges[cid][int(row["exchange"])]
            out.append({**row, "request": request, "reply": reply})
        elif "turn" in row and cid in users:
            out.append({**row, "request": users[cid][int(row["turn"]) - 1]})
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--labels", type=Path, default=HERE / "labels" / "tone.jsonl")
    parser.add_argument("--charter", type=Path, default=HERE / "charters" / "tone.yaml")
    args = parser.parse_args(argv)
    spec = load_charter(args.charter)
    judge = load_judge(spec)
    tone = next((c for c in judge.classifiers if c.rule.kind == "tone"), None) if judge else None
    print(f"tone classifier: {tone.meta if tone else 'none built'}")
    labelled = read_labels(args.labels)
    rows = resolve(labelled)
    for half in ("dev", "test"):
        mine = [r for r in rows if r["half"] == half]
        if not mine:
            continue
        said: dict[str, list[bool]] = {
            "code": [exclaims(r["reply"]) or has_emoji(r["reply"]) for r in mine]
        }
        if judge is not None and tone is not None:
            said["judge"] = [
                judge.probabilities(r["request"], r["reply"])[tone.rule.id] >= tone.threshold
                for r in mine
            ]
        truth = [r["label"] == "breaks" for r in mine]
        for name, verdicts in said.items():
            print(
                report(
                    f"{half}, {name} ({len(mine)} replies)", list(zip(truth, verdicts, strict=True))
                )
            )
            for row, t, v in zip(mine, truth, verdicts, strict=True):
                if t != v:
                    print(f"  {row['id']} labelled {row['label']}: {row['reply'][:90]!r}")
    if len(rows) < len(labelled):
        print(f"{len(labelled) - len(rows)} label(s) not found in ShareGPT here", file=sys.stderr)


if __name__ == "__main__":
    main()
