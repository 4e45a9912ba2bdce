"""The data `charter tune` trains on: JSONL files in TRL's dataset formats, checked row by row.

Each line is one JSON object, in one of TRL's formats:

- SFT, conversational: `{"messages": [{"role": "user", "content": ...}, ...]}`; a row whose
  last message is the assistant's is trained as prompt and completion (the messages before it,
  and that reply), so that the loss is on the reply only: the user's words, often a message
  written to tempt the charter's rules, are context, not something to learn to write;
- SFT, prompt and completion: `{"prompt": [...messages], "completion": [...messages]}` (the
  loss is on the completion only), or both as plain strings;
- SFT, plain text: `{"text": "..."}`;
- preference (DPO): `{"prompt": [...], "chosen": [...], "rejected": [...]}`, conversational
  or plain strings (`prompt` may be left out: TRL then takes the shared start of the two);
- prompt only (GRPO): `{"prompt": [...messages]}`.

Unpaired preference rows (KTO: `{"prompt", "completion", "label"}`) are recognised and counted,
but no method here trains on them. Keys beyond a format's own (an export's `source`,
`principles`, ...) are left out. This reads what `charter data export` writes.

A folder stands for every `*.jsonl` file under it but the `*.test.jsonl` ones (an export's
held-out half). Rows are sorted by what they train (SFT, preference, prompt only); within
each, one format only, so that TRL reads one schema. A row that fits none is an error
naming its file and line.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from charter.errors import CharterError

Kind = Literal["sft", "preference", "prompt", "unpaired"]
KINDS: tuple[Kind, ...] = ("sft", "preference", "prompt", "unpaired")
ROLES = frozenset({"system", "user", "assistant", "tool"})


class TrainingDataError(CharterError):
    """A training file that cannot be read, or a row in none of TRL's formats."""


@dataclass
class Rows:
    """The rows of one kind, all in one format (`format`), and where the first came from."""

    format: str | None = None
    where: str = ""
    rows: list[dict[str, Any]] = field(default_factory=list)

    def add(self, row: dict[str, Any], row_format: str, where: str) -> None:
        if self.format is None:
            self.format, self.where = row_format, where
        elif row_format != self.format:
            raise TrainingDataError(
                f"{where}: a {row_format} row among {self.format} rows (the first at "
                f"{self.where}); TRL reads one format per dataset: convert one of them"
            )
        self.rows.append(row)


@dataclass
class TrainingData:
    """Every row read, by kind: SFT, preference (DPO), prompt only (GRPO) and unpaired (KTO)."""

    files: list[Path] = field(default_factory=list)
    sft: Rows = field(default_factory=Rows)
    preference: Rows = field(default_factory=Rows)
    prompt: Rows = field(default_factory=Rows)
    unpaired: Rows = field(default_factory=Rows)

    def of(self, kind: Kind) -> Rows:
        """The rows of `kind`."""
        rows: Rows = getattr(self, kind)
        return rows

    def counts(self) -> dict[str, int]:
        """How many rows of each kind."""
        return {kind: len(self.of(kind).rows) for kind in KINDS}


def data_files(sources: Iterable[Path]) -> list[Path]:
    """The JSONL files `sources` name: files as given, folders as the `*.jsonl` under them.

    A folder's `*.test.jsonl` files are left out: held-out rows are not trained on.
    """
    files: list[Path] = []
    for source in sources:
        if source.is_dir():
            found = sorted(p for p in source.rglob("*.jsonl") if not p.name.endswith(".test.jsonl"))
            if not found:
                raise TrainingDataError(f"{source}: no *.jsonl file in this folder")
            files += found
        elif source.is_file():
            files.append(source)
        else:
            raise TrainingDataError(f"{source}: no such file or folder")
    return files


def load_training_data(sources: Sequence[Path]) -> TrainingData:
    """Read and check every row of the JSONL files (or folders of them) in `sources`."""
    data = TrainingData(files=data_files(sources))
    for path in data.files:
        try:
            lines = path.read_text(encoding="utf-8").splitlines()
        except (OSError, UnicodeDecodeError) as exc:
            raise TrainingDataError(f"{path}: cannot read: {exc}") from None
        for number, line in enumerate(lines, 1):
            if not line.strip():
                continue
            where = f"{path}:{number}"
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise TrainingDataError(f"{where}: not JSON ({exc.msg})") from None
            kind, row_format, clean = classify_row(row, where)
            data.of(kind).add(clean, row_format, where)
    return data


def classify_row(row: Any, where: str) -> tuple[Kind, str, dict[str, Any]]:
    """The kind and format of one row, and the row with only the keys TRL reads.

    Raises TrainingDataError, naming `where`, when the row is in none of the formats.
    """
    if not isinstance(row, dict):
        raise TrainingDataError(f"{where}: a row is a JSON object, not {type(row).__name__}")
    keys = set(row)
    if "messages" in keys:
        messages = row["messages"]
        _messages(messages, where, "messages", needs_assistant=True)
        if len(messages) > 1 and messages[-1]["role"] == "assistant":
            prompt = {"prompt": messages[:-1], "completion": messages[-1:]}
            return "sft", "prompt-completion (conversational)", prompt
        return "sft", "messages", {"messages": messages}
    if {"chosen", "rejected"} <= keys:
        return _preference(row, where)
    if {"prompt", "completion", "label"} <= keys:
        style = _same_style(row, ("prompt", "completion"), where)
        if not isinstance(row["label"], bool):
            raise TrainingDataError(f"{where}: `label` must be true or false")
        fields = ("prompt", "completion", "label")
        return "unpaired", f"unpaired ({style})", {k: row[k] for k in fields}
    if {"prompt", "completion"} <= keys:
        style = _same_style(row, ("prompt", "completion"), where)
        return "sft", f"prompt-completion ({style})", {k: row[k] for k in ("prompt", "completion")}
    if "text" in keys:
        if not isinstance(row["text"], str) or not row["text"].strip():
            raise TrainingDataError(f"{where}: `text` must be a non-empty string")
        return "sft", "text", {"text": row["text"]}
    if "prompt" in keys:
        _messages(row["prompt"], where, "prompt", needs_assistant=False)
        return "prompt", "prompt (conversational)", {"prompt": row["prompt"]}
    raise TrainingDataError(
        f"{where}: not a training row: it needs `messages` (SFT), `prompt` and `completion` "
        f"(SFT), `text` (SFT), `chosen` and `rejected` (DPO) or `prompt` alone (GRPO); "
        f"it has {sorted(keys) or 'no keys'}"
    )


def _preference(row: dict[str, Any], where: str) -> tuple[Kind, str, dict[str, Any]]:
    names = ("prompt", "chosen", "rejected") if "prompt" in row else ("chosen", "rejected")
    style = _same_style(row, names, where)
    prompt = "explicit prompt" if "prompt" in row else "implicit prompt"
    return "preference", f"preference ({style}, {prompt})", {k: row[k] for k in names}


def _same_style(row: dict[str, Any], names: Sequence[str], where: str) -> str:
    """How the fields `names` of a row are written: `conversational` or `text`.

    `conversational` when every one is a message list, `text` when every one is a string;
    anything else is an error.
    """
    if all(isinstance(row[n], str) for n in names):
        for name in names:
            if not row[name].strip() and name != "prompt":
                raise TrainingDataError(f"{where}: `{name}` is empty")
        return "text"
    if all(isinstance(row[n], list) for n in names):
        for name in names:
            _messages(row[name], where, name, needs_assistant=name != "prompt")
        return "conversational"
    shown = ", ".join(f"`{n}` is {type(row[n]).__name__}" for n in names)
    raise TrainingDataError(
        f"{where}: {', '.join(names)} must all be strings or all be message lists ({shown})"
    )


def _messages(value: Any, where: str, name: str, *, needs_assistant: bool) -> None:
    """Check a list of chat messages: each a `role` TRL knows and a string `content`."""
    if not isinstance(value, list) or not value:
        raise TrainingDataError(f"{where}: `{name}` must be a non-empty list of messages")
    for index, message in enumerate(value):
        if (
            not isinstance(message, dict)
            or message.get("role") not in ROLES
            or not isinstance(message.get("content"), str)
        ):
            raise TrainingDataError(
                f"{where}: {name}[{index}] must be {{'role': one of {sorted(ROLES)}, "
                f"'content': a string}}, not {json.dumps(message)[:120]}"
            )
    if needs_assistant and not any(m["role"] == "assistant" for m in value):
        raise TrainingDataError(
            f"{where}: `{name}` has no assistant message: nothing to learn from"
        )
