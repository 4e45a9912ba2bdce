"""How the persona is held over a conversation: critique, drift, memory.

Critique of each draft (`critique`), drift monitoring (`drift`), and notes on what no longer
fits the context (`memory`).
"""

from __future__ import annotations

from typing import Literal

from pydantic import (
    Field,
)

from charter.spec.base import (
    StrictModel,
)


class Critique(StrictModel):
    """Constitutional self-critique of each draft reply."""

    enabled: bool = True
    rounds: int = Field(default=1, ge=0, le=3, description="Revisions at most per turn.")
    judge: bool = Field(
        default=False,
        description="Also ask the judge model about the principles without a programmatic "
        "check (one more model call per turn).",
    )
    user_requests: bool = Field(
        default=True,
        description="Also check the format and length rules the user states in the message "
        "('under 50 words', 'no commas', 'end with ...'), revise and repair like the "
        "constitution's programmatic checks.",
    )
    persona_judge: bool = Field(
        default=True,
        description="Also check the reply's scope, tone, identity, values, `never` items and "
        "unchecked principles with the persona judge built for this charter by `charter "
        "prompt FILE --build-judge` (classifiers on MiniLM; the judge model only when one is "
        "unsure). No effect until it is built.",
    )
    off_scope: Literal["decline", "revise"] = Field(
        default="decline",
        description="A reply the persona judge finds outside the persona's scope: `decline` "
        "replaces it with the persona's decline (`persona.decline`, no model call); `revise` "
        "asks the model to rewrite it, like any other broken rule.",
    )


class Drift(StrictModel):
    """Persona drift monitoring: each reply is scored by the persona's checks."""

    enabled: bool = True
    threshold: float = Field(
        default=1.0, ge=0.0, le=1.0, description="Re-anchor the next turn below this score."
    )


class Memory(StrictModel):
    """Notes on the messages that no longer fit the model's context window."""

    enabled: bool = Field(
        default=True,
        description="When old messages no longer fit, the cheap model takes notes on them "
        "(facts the user gave, decisions, open tasks), pinned after the persona; off: they "
        "are left out and only the user's first request is kept.",
    )
    notes: bool = Field(
        default=True,
        description="Take notes on the left-out messages with the cheap model; off: they are "
        "left out without notes, and only `recall` brings back what bears on the latest "
        "message (no model call for memory).",
    )
    max_tokens: int = Field(
        default=256,
        ge=32,
        le=4096,
        description="The most the notes take of the prompt (and at most a quarter of the "
        "model's context window); past it the oldest notes go, facts last.",
    )
    recall: int = Field(
        default=2,
        ge=0,
        le=8,
        description="Each turn, pin at most this many passages of the left-out user messages "
        "that are most like the latest one (embedded with the `guards` extra's MiniLM); 0: "
        "notes only.",
    )
    recall_min_similarity: float = Field(
        default=0.3,
        ge=-1.0,
        le=1.0,
        description="A passage is recalled only when its cosine similarity to the latest "
        "message is at least this.",
    )
