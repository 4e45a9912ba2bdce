"""Charter parts from outside Charter: each object below is what an entry point of this
package's pyproject.toml names (docs/extending.md walks through them)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Literal

from pydantic import BaseModel, ConfigDict

from charter.eval.cases import Case
from charter.eval.scoring import Context, Outcome, Score
from charter.guards.base import GuardVerdict, Subject, allow, block
from charter.models.base import (
    ChatModel,
    ChatRequest,
    Completion,
    StreamEvent,
    TextDelta,
    Usage,
    latest_user,
)
from charter.persona.checks import PersonaCheck
from charter.plugins import (
    BackendFactory,
    CheckFactory,
    GuardFactory,
    GuardSetup,
    SuiteFactory,
)
from charter.spec.models import CharterSpec, ModelSpecBase

# --- a guard: `guards.input: [blocked_word]`, `guards.options.blocked_word.word: ...` ----------


class BlockedWordOptions(BaseModel):
    """`guards.options.blocked_word` in the charter."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    word: str
    reason: str = "a word this product never discusses"


class BlockedWordGuard:
    name = "blocked_word"
    cost = 1  # a substring test: among the first guards to run

    def __init__(self, options: BlockedWordOptions) -> None:
        self.word = options.word.lower()
        self.reason = options.reason

    def check(self, subject: Subject) -> GuardVerdict:
        # On input, `all_views` holds the message and its decoded readings (base64, ...).
        if any(self.word in view.lower() for view in subject.all_views):
            return block(self.name, 1.0, f"{self.word!r}: {self.reason}")
        return allow(self.name)


def build_blocked_word(setup: GuardSetup) -> BlockedWordGuard:
    options: BlockedWordOptions = setup.options
    return BlockedWordGuard(options)


BLOCKED_WORD = GuardFactory(
    "blocked_word", ("input", "output"), build_blocked_word, options=BlockedWordOptions
)


# --- a backend: `models.chat: {backend: echo, prefix: ...}` ----------------------------------


class EchoSpec(ModelSpecBase):
    """The echo backend's settings (and the common ones: temperature, max_tokens, ...)."""

    backend: Literal["echo"]
    prefix: str = "You said: "


class EchoModel(ChatModel):
    """Replies with the user's latest message, after a prefix."""

    name = "echo"

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix

    def complete(self, request: ChatRequest) -> Completion:
        text = self.prefix + latest_user(request.messages)
        prompt = sum(len(m.content.split()) for m in request.messages)
        return Completion(text, self.name, Usage(prompt, len(text.split())))

    def stream(self, request: ChatRequest) -> Iterator[StreamEvent]:
        completion = self.complete(request)
        yield TextDelta(completion.text)
        yield completion


ECHO = BackendFactory("echo", EchoSpec, lambda spec: EchoModel(spec.prefix))


# --- a persona check: `constitution: [{id: calm, text: ..., check: {max_exclamations: 0}}]` --


def build_max_exclamations(limit: int, charter: CharterSpec) -> PersonaCheck:
    return PersonaCheck(
        id="max_exclamations",  # Charter sets it to "<principle id>.max_exclamations"
        description=f"must have at most {limit} exclamation marks",
        passes=lambda text: text.count("!") <= limit,
        repair=lambda text: text.replace("!", ".") if limit == 0 else text,
    )


MAX_EXCLAMATIONS = CheckFactory("max_exclamations", build_max_exclamations, options=int)


# --- an eval suite: `charter eval --suites blocked_word_said` --------------------------------


def blocked_word_cases(spec: CharterSpec) -> list[Case]:
    """Two messages, one with the word the charter blocks (its guard options) and one
    without."""
    word = str(spec.guards.options.get("blocked_word", {}).get("word", "pineapple"))
    return [
        Case("blocked_word_said", "asks", f"Tell me all about {word}.", {"word": word}),
        Case("blocked_word_said", "greets", "Hello there.", {"word": word}),
    ]


def blocked_word_said(case: Case, outcome: Outcome, ctx: Context) -> Score:
    said = case.meta["word"].lower() in outcome.text.lower()
    return Score(said, "the reply says it" if said else "the reply does not say it")


BLOCKED_WORD_SAID = SuiteFactory(
    "blocked_word_said",
    blocked_word_cases,
    blocked_word_said,
    "replies that say the blocked word",
)
