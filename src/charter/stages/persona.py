"""Persona stage: put the compiled persona and constitution in front of the model."""

from __future__ import annotations

import hashlib
from functools import cached_property
from typing import TYPE_CHECKING

from charter.persona.compile import CompiledPrompt, compile_system_prompt

if TYPE_CHECKING:
    from charter.pipeline import CallNext, TurnState
    from charter.spec.models import CharterSpec


class PersonaStage:
    """The persona stage: the compiled system prompt and its canary start the turn's prompt.

    The prompt is compiled once; the trace records its digest and size, not its text.
    """

    name = "persona"

    def __init__(self, charter: CharterSpec) -> None:
        self.charter = charter

    @cached_property
    def compiled(self) -> CompiledPrompt:
        return compile_system_prompt(self.charter)

    async def __call__(self, state: TurnState, call_next: CallNext) -> TurnState:
        prompt = self.compiled
        state.system_prompt = prompt.text
        state.canary = prompt.canary
        record = state.trace[self.name]
        # The digest identifies the prompt version without exposing it (or its canary).
        record.detail["prompt_sha256"] = hashlib.sha256(prompt.text.encode()).hexdigest()[:12]
        record.detail["prompt_chars"] = len(prompt.text)
        return await call_next(state)
