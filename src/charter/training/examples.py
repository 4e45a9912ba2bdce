"""One `Example` per reply worth learning from, and its rows in TRL's dataset formats.

An example is a prompt (the conversation up to the user's message) with a `chosen` reply, a
`rejected` one, or both. Each format takes what it can from it:

- `sft`: `{"messages": [...prompt, chosen]}`, for every example with a chosen reply;
- `dpo`: `{"prompt": [...], "chosen": [reply], "rejected": [reply]}`, for examples with both
  (TRL's conversational preference format, read by its DPO and ORPO trainers);
- `kto`: `{"prompt": [...], "completion": [reply], "label": bool}`, one row per side (TRL's
  unpaired preference format).

Every row also carries where it comes from (`source`, `kind`), what it is about (`principles`,
`guard`) and the charter (`charter_id`, `charter_fingerprint`). TRL's trainers read only their
own columns.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any, Literal

from charter.models.base import Message

Format = Literal["sft", "dpo", "kto"]
FORMATS: tuple[Format, ...] = ("sft", "dpo", "kto")
Kind = Literal["turn", "critique", "escalation", "eval", "generated"]
"""What made the example: a stored turn, a draft critique revised, a resolved escalation, an
eval case, or the generator (charter/training/pairs.py)."""


def normalised(text: str) -> str:
    """`text` for comparison: Unicode NFKC, case folded, whitespace runs made one space."""
    return " ".join(unicodedata.normalize("NFKC", text).casefold().split())


def rule_id(violation: str) -> str:
    """The rule id in a violation as critique names it ("brief.max_words: ...")."""
    return violation.split(":", 1)[0].strip()


@dataclass(frozen=True)
class Example:
    """A prompt with a reply to learn from (`chosen`), one to learn against (`rejected`), or both.

    Any text may hold PII until `export` redacts it.
    """

    prompt: tuple[Message, ...]
    """The conversation up to and with the user's message, as the model saw it; no system
    message (the charter's prompt is not part of the data)."""
    chosen: str | None
    rejected: str | None
    source: str
    """Where it comes from: "store:turn/12", "store:escalation/ESC-1A2B3C4D",
    "eval:<run folder>/<suite>/<case id>", "generated/<n>"."""
    kind: Kind
    conversation: str
    """What the train/test split keeps together: the stored conversation's id, the eval case,
    the generated prompt."""
    charter_id: str
    fingerprint: str | None
    """The charter fingerprint (charter.eval.runner.charter_fingerprint); None when unknown."""
    principles: tuple[str, ...] = ()
    """The rules the rejected reply broke, by id ("protect-data.forbidden", "style.max_words")."""
    guard: str | None = None
    """The output guard that blocked or rewrote the rejected reply."""
    created_at: float | None = None
    """When the reply was made (seconds since the epoch)."""

    def texts_mapped(self, change: Callable[[str], str]) -> Example:
        """The example with `change` applied to every text it holds (prompt and replies).

        A rejected reply that `change` makes the same as the chosen one is dropped: the two
        are no longer a preference.
        """
        prompt = tuple(m.model_copy(update={"content": change(m.content)}) for m in self.prompt)
        chosen = None if self.chosen is None else change(self.chosen)
        rejected = None if self.rejected is None else change(self.rejected)
        if (
            chosen is not None
            and rejected is not None
            and normalised(chosen) == normalised(rejected)
        ):
            rejected = None
        return replace(self, prompt=prompt, chosen=chosen, rejected=rejected)

    def metadata(self) -> dict[str, Any]:
        """The columns every row of this example carries besides TRL's own."""
        return {
            "source": self.source,
            "kind": self.kind,
            "principles": list(self.principles),
            "guard": self.guard,
            "charter_id": self.charter_id,
            "charter_fingerprint": self.fingerprint,
        }


def _assistant(text: str) -> list[dict[str, str]]:
    return [{"role": "assistant", "content": text}]


def rows(example: Example, fmt: Format, *, system: str | None = None) -> list[dict[str, Any]]:
    """The rows of `example` in the format `fmt` (none when it lacks the side the format needs).

    With `system`, every prompt starts with it as a system message.
    """
    prompt = [m.to_wire() for m in example.prompt]
    if system is not None:
        prompt = [{"role": "system", "content": system}, *prompt]
    meta = example.metadata()
    if fmt == "sft":
        if example.chosen is None:
            return []
        return [{"messages": [*prompt, *_assistant(example.chosen)], **meta}]
    if fmt == "dpo":
        if example.chosen is None or example.rejected is None:
            return []
        return [
            {
                "prompt": prompt,
                "chosen": _assistant(example.chosen),
                "rejected": _assistant(example.rejected),
                **meta,
            }
        ]
    sides = [(example.chosen, True), (example.rejected, False)]
    return [
        {"prompt": prompt, "completion": _assistant(text), "label": label, **meta}
        for text, label in sides
        if text is not None
    ]


def dedup_key(row: dict[str, Any], fmt: Format) -> tuple[str, ...]:
    """What makes two rows of `fmt` the same: their normalised prompt and completion(s)."""
    messages = row["messages"] if fmt == "sft" else row["prompt"]
    key = [f"{m['role']}:{normalised(m['content'])}" for m in messages]
    if fmt == "dpo":
        key += [normalised(row["chosen"][0]["content"]), normalised(row["rejected"][0]["content"])]
    elif fmt == "kto":
        key += [normalised(row["completion"][0]["content"]), str(row["label"])]
    return tuple(key)
