"""The scope gate: is the user's request plainly outside the persona's job?

Asked before any reply is written, from the user's message alone. When it is sure (GATE), the
persona declines without a model call (`stages/critique.py`); otherwise the reply is written
and the persona judge reads it as usual. A small model drafting an answer to an off-topic
request, then judged on that answer, costs a whole generation and misses answers that look
like customer service (website copy for a horse business, read as a business's support).

The gate is a logistic regression over the message's MiniLM embedding, trained on the same
contrastive set as the judge's scope rule (`contrast._scope_examples`): messages written about
the job (in scope) against messages about the everyday subjects least like it (off scope), and
a few turns every assistant is asked whatever its job (greetings, thanks, who it is, asking for
a person), which are in scope for every persona. Scores are calibrated like the judge's (Platt
scaling on cross-validated logits).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from charter.persona.contrast import Example

if TYPE_CHECKING:
    import numpy as np
    from numpy.typing import NDArray

    from charter.persona.judge import Embed

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


def gate_messages(examples: Sequence[Example]) -> tuple[list[str], list[str]]:
    """The scope rule's messages, in scope and off scope, plus EVERY_JOB in scope.

    A message with a breaking reply was written off scope (its answer breaks the rule); a
    message with only keeping replies was written about the job.
    """
    off = {e.prompt for e in examples if e.rule == "scope" and e.breaks}
    inside = {e.prompt for e in examples if e.rule == "scope" and not e.breaks} - off
    return sorted(inside) + [m for m in EVERY_JOB if m not in inside], sorted(off)


def train_gate(examples: Sequence[Example], *, embed: Embed) -> ScopeGate | None:
    """The charter's scope gate, or None when the scope set is too small to train one."""
    import numpy as np

    from charter.persona.judge import calibration, choose_ridge, fit_logistic

    inside, off = gate_messages(examples)
    if len(off) < MIN_PER_SIDE or len(inside) - len(EVERY_JOB) < MIN_PER_SIDE:
        return None
    messages = inside + off
    x = np.stack([message_vector(embed, m) for m in messages])
    y = np.asarray([0.0] * len(inside) + [1.0] * len(off))
    ridge, cv, held_out = choose_ridge(x, y, messages)
    coef, intercept = fit_logistic(x, y, ridge)
    scale, shift = calibration(held_out, y)
    meta = {
        "in_scope": len(inside),
        "off_scope": len(off),
        "ridge": ridge,
        "cv_accuracy": cv,
        "calibration": [round(scale, 4), round(shift, 4)],
    }
    return ScopeGate(coef * np.float32(scale), intercept * scale + shift, GATE, meta)
