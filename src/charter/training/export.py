"""Examples in, JSONL files out: filtered, redacted, de-duplicated and split by conversation.

    summary = export(examples, ExportSettings(out=Path("data")), redact=Redactor(spec))

In order:
1. **Filter** by charter id, principle, output guard and date (`Filters`).
2. **Redact** every text of every example (prompt messages and replies) with `redact`
   before anything is written. `redact=None` writes the text as it was said; the summary
   (`export.json`) records it.
3. **Render** each example in each format asked (charter/training/examples.py).
4. **De-duplicate** each format's rows: one row per normalised prompt and completion(s).
5. **Split** by conversation: a hash of the conversation decides train or test, so no
   conversation has rows in both halves, and a re-export puts it in the same half.
6. **Write** `<format>.jsonl` (or `<format>.train.jsonl` and `<format>.test.jsonl` with a
   test share) for every format asked, and `export.json`, a summary of what was written.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any, Literal

from charter.errors import CharterError
from charter.training.examples import FORMATS, Example, Format, dedup_key, rows

Half = Literal["train", "test"]


class ExportError(CharterError):
    """The export cannot be written (its folder, or its settings)."""


def split_of(conversation: str, test_share: float) -> Half:
    """The half a conversation's rows go to: the same for the same conversation, every time."""
    digest = hashlib.sha256(conversation.encode("utf-8")).digest()
    point = int.from_bytes(digest[:8], "big") / 2**64
    return "test" if point < test_share else "train"


def _matches(principle: str, wanted: str) -> bool:
    """Whether the rule id `principle` is `wanted` or one of its checks ("brief.max_words")."""
    return principle == wanted or principle.startswith(wanted + ".")


@dataclass(frozen=True)
class Filters:
    """Which examples to export. An empty field lets every example through."""

    charter_ids: tuple[str, ...] = ()
    principles: tuple[str, ...] = ()
    """A rule id ("protect-data") matches itself and its checks ("protect-data.forbidden")."""
    guards: tuple[str, ...] = ()
    since: date | None = None
    until: date | None = None
    """Inclusive: the whole of that day."""

    def keep(self, example: Example) -> bool:
        if self.charter_ids and example.charter_id not in self.charter_ids:
            return False
        if self.principles and not any(
            _matches(p, w) for p in example.principles for w in self.principles
        ):
            return False
        if self.guards and example.guard not in self.guards:
            return False
        if self.since is None and self.until is None:
            return True
        if example.created_at is None:
            return False
        day = datetime.fromtimestamp(example.created_at).date()
        return (self.since is None or day >= self.since) and (
            self.until is None or day <= self.until
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "charter_ids": list(self.charter_ids),
            "principles": list(self.principles),
            "guards": list(self.guards),
            "since": None if self.since is None else self.since.isoformat(),
            "until": None if self.until is None else self.until.isoformat(),
        }


@dataclass(frozen=True)
class ExportSettings:
    """Where to write, in which formats, which examples, and the share of conversations for test."""

    out: Path
    formats: Sequence[Format] = FORMATS
    filters: Filters = field(default_factory=Filters)
    test_share: float = 0.0
    """0: one file per format; else that share of conversations goes to `<format>.test.jsonl`."""
    system_prompt: str | None = None
    """A system message every prompt starts with (the charter's compiled prompt); None: none."""

    def __post_init__(self) -> None:
        if not 0.0 <= self.test_share < 1.0:
            raise ExportError(
                f"the test share must be at least 0 and under 1, not {self.test_share}"
            )
        unknown = [f for f in self.formats if f not in FORMATS]
        if unknown:
            raise ExportError(
                f"unknown format(s) {', '.join(unknown)}; one of {', '.join(FORMATS)}"
            )


@dataclass
class ExportSummary:
    """What an export read and wrote."""

    read: int = 0
    """Examples given."""
    filtered_out: int = 0
    duplicates: Counter[Format] = field(default_factory=Counter)
    rows: Counter[tuple[Format, str]] = field(default_factory=Counter)
    """Rows written, by format and the examples' kind."""
    files: dict[Path, int] = field(default_factory=dict)
    """Each file written and its number of rows."""
    redacted: bool = True

    def to_dict(self) -> dict[str, Any]:
        return {
            "read": self.read,
            "filtered_out": self.filtered_out,
            "redacted": self.redacted,
            "duplicates_dropped": dict(self.duplicates),
            "rows": [
                {"format": f, "kind": k, "rows": n} for (f, k), n in sorted(self.rows.items())
            ],
            "files": {path.name: n for path, n in self.files.items()},
        }


def _file(out: Path, fmt: Format, half: Half, split: bool) -> Path:
    return out / (f"{fmt}.{half}.jsonl" if split else f"{fmt}.jsonl")


def export(
    examples: Iterable[Example],
    settings: ExportSettings,
    *,
    redact: Callable[[str], str] | None,
) -> ExportSummary:
    """Write `examples` into `settings.out` as the module's docstring describes.

    `redact` is applied to every text; None writes them unredacted (say so loudly).
    """
    summary = ExportSummary(redacted=redact is not None)
    kept: list[Example] = []
    for example in examples:
        summary.read += 1
        if not settings.filters.keep(example):
            summary.filtered_out += 1
            continue
        kept.append(example if redact is None else example.texts_mapped(redact))
    split = settings.test_share > 0
    lines: dict[Path, list[str]] = {}
    for fmt in settings.formats:
        for half in ("train", "test") if split else ("train",):
            lines[_file(settings.out, fmt, half, split)] = []
        seen: set[tuple[str, ...]] = set()
        for example in kept:
            for row in rows(example, fmt, system=settings.system_prompt):
                key = dedup_key(row, fmt)
                if key in seen:
                    summary.duplicates[fmt] += 1
                    continue
                seen.add(key)
                half = split_of(example.conversation, settings.test_share)
                lines[_file(settings.out, fmt, half, split)].append(
                    json.dumps(row, ensure_ascii=False)
                )
                summary.rows[(fmt, example.kind)] += 1
    try:
        settings.out.mkdir(parents=True, exist_ok=True)
        for path, written in lines.items():
            path.write_text("".join(line + "\n" for line in written), encoding="utf-8")
            summary.files[path] = len(written)
        report = {**summary.to_dict(), "filters": settings.filters.to_dict()}
        report["test_share"] = settings.test_share
        report["system_prompt"] = settings.system_prompt is not None
        (settings.out / "export.json").write_text(json.dumps(report, indent=2) + "\n")
    except OSError as exc:
        raise ExportError(f"cannot write the export into {settings.out}: {exc}") from exc
    return summary
