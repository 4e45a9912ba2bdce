"""The scope gate: is the user's request plainly outside the persona's job?

Asked before any reply is written, from the user's message alone. When it is sure (GATE), the
persona declines without a model call (`stages/critique.py`); otherwise the reply is written
and the persona judge reads it as usual. A small model drafting an answer to an off-topic
request, then judged on that answer, costs a whole generation and misses answers that look
like customer service (website copy for a horse business, read as a business's support).

The gate is a logistic regression over the message's MiniLM embedding. It learns from messages
the charter's model writes for it at `charter prompt --build-judge` time (REQUESTS_FILE, cached
with the judge): requests about the job in several voices (in scope) against requests about
what people bring to any chat assistant (USES, least like the job first: off scope). The
judge's own scope messages (`contrast._scope_examples`) join them, and so do a few turns every
assistant is asked whatever its job (EVERY_JOB: greetings, thanks, who it is, asking for a
person), in scope for every persona. Scores are calibrated like the judge's (Platt scaling on
cross-validated logits).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from charter.persona.contrast import (
    Example,
    least_like,
    replace_atomically,
    who_does,
    write_messages,
)

if TYPE_CHECKING:
    import numpy as np
    from numpy.typing import NDArray

    from charter.models.base import ChatModel
    from charter.persona.judge import Embed
    from charter.spec.models import CharterSpec

GATE = 0.9
"""A message at or above this probability of being off scope is declined before a reply is
written. Set for "sure", not tuned: below it the reply is written and judged."""
MIN_PER_SIDE = 4
"""Messages needed on each side to train a gate."""

EVERY_JOB = (
    "hello",
    "hi there!",
    "good morning",
    "thanks, that helps",
    "thank you so much",
    "ok",
    "who are you?",
    "who made you?",
    "what can you help me with?",
    "can I talk to a real person?",
    "I'd like to speak to a human please",
    "that's not what I asked",
)
"""Turns any assistant is asked, whatever its job: in scope for every persona."""

REQUESTS_FILE = "gate.jsonl"
JOB_VOICES = (
    "ordinary requests about its job",
    "short, casual or badly spelled requests about its job",
    "long messages about its job, where the user explains their situation in two to four "
    "sentences before asking",
    "complaints or urgent problems about its job",
)
USES = (
    "cooking, recipes and food",
    "travel plans",
    "writing or fixing computer code",
    "maths, physics or chemistry homework",
    "essays and school assignments",
    "poems, stories and song lyrics",
    "fitness and health",
    "films, books, music and games to enjoy",
    "job applications and careers",
    "gardening, pets and the home",
    "relationships and personal advice",
    "learning or translating a language",
    "fixing a computer or phone",
    "role-play, word games and quizzes",
    "marketing copy, slogans and social media posts for a business",
    "summarising, rewriting or proofreading a text the user pastes",
    "history, science and general knowledge questions",
    "philosophy, religion and opinions",
)
"""What people bring to any chat assistant: the gate's off-scope requests are about the
`count` least like the job (MiniLM similarity to who the persona is)."""


@dataclass(frozen=True)
class ScopeGate:
    """A calibrated logistic regression: message embedding -> probability it is off scope."""

    coef: NDArray[np.float32]
    intercept: float
    threshold: float = GATE
    meta: dict[str, Any] = field(default_factory=dict)

    def probability(self, embed: Embed, message: str) -> float:
        import numpy as np

        z = float(message_vector(embed, message) @ self.coef) + self.intercept
        return float(1.0 / (1.0 + np.exp(-np.clip(z, -30, 30))))

    def to_dict(self) -> dict[str, Any]:
        return {
            "coef": [round(float(x), 6) for x in self.coef],
            "intercept": round(self.intercept, 6),
            "threshold": self.threshold,
            "meta": self.meta,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ScopeGate:
        import numpy as np

        return cls(
            coef=np.asarray(data["coef"], dtype=np.float32),
            intercept=float(data["intercept"]),
            threshold=float(data.get("threshold", GATE)),
            meta=dict(data.get("meta", {})),
        )


def message_vector(embed: Embed, message: str) -> NDArray[np.float32]:
    """The normalised mean of the message's word windows (a pasted document and its request)."""
    import numpy as np

    from charter.guards.embedder import windows

    vectors = np.asarray(embed(windows(message) if message.strip() else [""]), dtype=np.float32)
    mean: NDArray[np.float32] = vectors.mean(axis=0)
    return mean / np.float32(float(np.linalg.norm(mean)) or 1.0)


def uses_unlike(charter: CharterSpec, count: int) -> list[str]:
    """The `count` USES least like the persona's job."""
    return least_like(charter, USES, count)


def write_requests(
    model: ChatModel, charter: CharterSpec, *, per_voice: int = 8, seed: int = 20261205
) -> list[tuple[str, bool]]:
    """Requests for the gate, written by `model`: (message, off scope).

    About the job, `per_voice` in each of JOB_VOICES; off scope, one about each of the 12 USES
    least like the job, twice: as a direct instruction and as a message with context.
    """
    inside: list[str] = []
    for n, voice in enumerate(JOB_VOICES):
        written = write_messages(model, who_does(charter), voice, per_voice, seed + n)
        inside += [m for m in written if m not in inside]
    uses = uses_unlike(charter, 12)
    outside: list[str] = []
    for n, form in enumerate(
        (
            "a direct instruction or question",
            "a longer message that gives some context before asking",
        )
    ):
        written = write_messages(
            model,
            "a general-purpose chat assistant",
            f"one request about each of these subjects, in this order, each as {form}: "
            + "; ".join(uses),
            len(uses),
            seed + 10 + n,
        )
        outside += [m for m in written if m not in outside and m not in inside]
    return [(m, False) for m in inside] + [(m, True) for m in outside]


def read_requests(path: Path) -> list[tuple[str, bool]]:
    """The gate's requests from a JSONL file: `{"message", "off_scope"}` per line."""
    out: list[tuple[str, bool]] = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            out.append((str(row["message"]), bool(row["off_scope"])))
        except (ValueError, KeyError, TypeError) as exc:
            raise ValueError(f"{path} line {number}: not a gate request ({exc})") from None
    return out


def save_requests(path: Path, requests: Sequence[tuple[str, bool]]) -> None:
    """Write the gate's requests as JSONL."""
    replace_atomically(
        path,
        "".join(
            json.dumps({"message": m, "off_scope": off}, ensure_ascii=False) + "\n"
            for m, off in requests
        ),
    )


def gate_messages(
    examples: Sequence[Example], requests: Sequence[tuple[str, bool]] = ()
) -> tuple[list[str], list[str]]:
    """The gate's messages, in scope and off scope.

    From the judge's scope set, a message with a breaking reply was written off scope (its
    answer breaks the rule) and a message with only keeping replies was written about the
    job; `requests` say which they are; EVERY_JOB is in scope.
    """
    off = {e.prompt for e in examples if e.rule == "scope" and e.breaks}
    off |= {m for m, is_off in requests if is_off}
    inside = {e.prompt for e in examples if e.rule == "scope" and not e.breaks}
    inside |= {m for m, is_off in requests if not is_off}
    inside -= off
    return sorted(inside) + [m for m in EVERY_JOB if m not in inside], sorted(off)


def train_gate(
    examples: Sequence[Example], requests: Sequence[tuple[str, bool]] = (), *, embed: Embed
) -> ScopeGate | None:
    """The charter's scope gate, or None when there are too few messages to train one."""
    import numpy as np

    from charter.persona.judge import fit_calibrated

    inside, off = gate_messages(examples, requests)
    if len(off) < MIN_PER_SIDE or len(inside) - len(EVERY_JOB) < MIN_PER_SIDE:
        return None
    messages = inside + off
    x = np.stack([message_vector(embed, m) for m in messages])
    y = np.asarray([0.0] * len(inside) + [1.0] * len(off))
    coef, intercept, fitted = fit_calibrated(x, y, messages)
    return ScopeGate(
        coef, intercept, GATE, {"in_scope": len(inside), "off_scope": len(off), **fitted}
    )
