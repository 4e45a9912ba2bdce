"""The guard protocol: every guard returns a typed verdict, never a bare bool.

A guard is a small synchronous object with a `name`, a `cost` (the stages run cheaper guards
first) and `check(subject) -> GuardVerdict`. The input and output guard stages run them on a
worker thread with a timeout and apply the charter's failure policy to any that raise or
time out; every verdict, with its duration, goes into the turn's trace.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal, Protocol

from charter.errors import CharterError
from charter.extras import missing_extra_message
from charter.models.base import Message


class GuardDependencyError(CharterError):
    """A guard's optional dependency is missing; the message names what to install."""


def missing_extra(what: str, extra: str, missing: str | None = None) -> GuardDependencyError:
    """The error for `what` when the `extra` extra is not installed."""
    return GuardDependencyError(missing_extra_message(what, extra, missing))


Action = Literal["allow", "block", "rewrite", "escalate"]
Direction = Literal["input", "output"]


@dataclass(frozen=True)
class GuardVerdict:
    """A guard's decision on one subject, with its score, reason and time taken (ms)."""

    guard: str
    action: Action
    score: float = 0.0
    """How strongly the guard's concern is present, 0..1 (1 = certainly an attack/leak/...)."""
    reason: str = ""
    rewrite: str | None = None
    """With action `rewrite`: the text to use instead."""
    ms: float = 0.0
    detail: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["ms"] = round(self.ms, 3)
        data["score"] = round(self.score, 4)
        if data["rewrite"] is None:
            del data["rewrite"]
        return data


@dataclass(frozen=True)
class Subject:
    """What a guard looks at."""

    direction: Direction
    text: str
    """The text under check: the user's latest message (input) or the reply (output)."""
    views: tuple[str, ...] = ()
    """Normalised and decoded variants of `text` (input); guards check every view."""
    messages: tuple[Message, ...] = ()
    """The whole conversation, latest message last (no system message)."""
    system_prompt: str = ""
    canary: str = ""
    vetted: frozenset[int] = frozenset()
    """Indices into `messages` of earlier user messages this deployment already judged (it
    answered or refused them: guards/answered.py); history checks skip them."""

    @property
    def all_views(self) -> tuple[str, ...]:
        return self.views or (self.text,)


class Guard(Protocol):
    """What the guard stages run: a named object whose `check` returns a verdict."""

    name: str
    cost: int
    """Relative cost; cheaper guards run first (rules ~1, classifiers ~10, LLM judge ~100)."""

    def check(self, subject: Subject) -> GuardVerdict: ...


def allow(guard: str, score: float = 0.0, reason: str = "", **detail: Any) -> GuardVerdict:
    """An `allow` verdict from `guard`, with `detail` as keyword arguments."""
    return GuardVerdict(guard, "allow", score, reason, detail=detail)


def block(guard: str, score: float, reason: str, **detail: Any) -> GuardVerdict:
    """A `block` verdict from `guard`, with `detail` as keyword arguments."""
    return GuardVerdict(guard, "block", score, reason, detail=detail)
