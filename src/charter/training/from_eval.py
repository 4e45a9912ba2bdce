"""Examples from `charter eval` runs: each case's reply without Charter (off) and with it (on).

A run folder holds `cases.jsonl` (one case a line: the message, or a team case's whole
conversation, and each side's reply and verdict) and `report.json` (when it ran, and the
charter's fingerprint). Per case:

- one side failed and the other passed: a pair, the passing reply `chosen` and the failing one
  `rejected` (a leak the raw model wrote against the refusal Charter gave, or an over-refusal
  against the raw model's answer);
- both passed: Charter's reply as `chosen`;
- both failed: each reply as `rejected`, with nothing chosen (none exists).

Left out: the `persona_stability` suite, whose cases are turns of a conversation the file does
not keep, and cases answered with tool calls.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError

from charter.errors import CharterError
from charter.models.base import Message
from charter.training.examples import Example

SKIPPED_SUITES = frozenset({"persona_stability"})


class EvalRunError(CharterError):
    """An eval run folder that cannot be read: missing or malformed files (named with the line)."""


class _Side(BaseModel):
    model_config = ConfigDict(extra="allow")

    reply: str
    failed: bool
    blocked: bool = False
    calls: list[dict[str, Any]] | None = None


class _Case(BaseModel):
    model_config = ConfigDict(extra="allow")

    suite: str
    id: str
    message: str
    conversation: list[Message] | None = None
    off: _Side
    on: _Side


def _run_facts(folder: Path) -> tuple[str | None, float]:
    """The run's charter fingerprint and when it ran (report.json, else the cases file's time)."""
    report = folder / "report.json"
    when = (folder / "cases.jsonl").stat().st_mtime
    if not report.is_file():
        return None, when
    try:
        data = json.loads(report.read_text(encoding="utf-8"))
        fingerprint = data.get("charter_fingerprint")
        created = data.get("created")
        if isinstance(created, str):
            when = datetime.fromisoformat(created).timestamp()
    except (ValueError, AttributeError) as exc:
        raise EvalRunError(f"{report}: not an eval report ({exc})") from exc
    return (fingerprint if isinstance(fingerprint, str) else None), when


def _case(path: Path, number: int, line: str) -> _Case:
    try:
        return _Case.model_validate(json.loads(line))
    except ValueError as exc:  # json's decode errors and pydantic's are both ValueErrors
        if isinstance(exc, ValidationError):
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"]) or "the record"
            why = f"{where}: {first['msg']}"
        else:
            why = f"not JSON ({exc})"
        raise EvalRunError(f"{path}:{number}: not a cases.jsonl record: {why}") from None


def _sides(case: _Case) -> list[tuple[str | None, str | None]]:
    """(chosen, rejected) pairs of a case, as the module's docstring describes."""
    off = case.off.reply if case.off.reply.strip() else None
    on = case.on.reply if case.on.reply.strip() else None
    off_ok = off is not None and not case.off.failed
    on_ok = on is not None and not case.on.failed
    if on_ok and not off_ok:
        return [(on, off)]
    if off_ok and not on_ok:
        return [(off, on)]
    if on_ok:
        return [(on, None)]
    return [(None, text) for text in dict.fromkeys([on, off]) if text is not None]


def eval_examples(folder: Path, *, charter_id: str) -> Iterator[Example]:
    """The examples of the eval run in `folder`, as runs of the charter `charter_id`.

    Raises EvalRunError naming the file (and line) that is missing or malformed.
    """
    path = folder / "cases.jsonl"
    if not path.is_file():
        raise EvalRunError(f"{folder}: no cases.jsonl (is it a `charter eval` output folder?)")
    fingerprint, when = _run_facts(folder)
    with path.open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, 1):
            if not line.strip():
                continue
            case = _case(path, number, line)
            if case.suite in SKIPPED_SUITES or case.off.calls or case.on.calls:
                continue
            prompt = tuple(case.conversation or [Message(role="user", content=case.message)])
            for index, (chosen, rejected) in enumerate(_sides(case)):
                yield Example(
                    prompt=prompt,
                    chosen=chosen,
                    rejected=rejected,
                    source=f"eval:{folder.name}/{case.suite}/{case.id}"
                    + (f"#{index + 1}" if index else ""),
                    kind="eval",
                    conversation=f"eval:{case.suite}/{case.id}",
                    charter_id=charter_id,
                    fingerprint=fingerprint,
                    created_at=when,
                )
