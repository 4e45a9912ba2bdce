"""Persona stage: put the compiled persona and constitution in front of the model.

When the user asks who or what the assistant is ("who made you?", "are you ChatGPT?"), the
stage adds what to answer after the compiled prompt (so its cached prefix is unchanged): the
persona's identity, not the model's (persona/identity.py).
"""

from __future__ import annotations

import asyncio
import hashlib
from functools import cached_property
from typing import TYPE_CHECKING

from charter.models.base import latest_user
from charter.persona.compile import CompiledPrompt, compile_system_prompt
from charter.persona.identity import IdentityDetector, identity_hint

if TYPE_CHECKING:
    from charter.pipeline import CallNext, TurnState
    from charter.spec.models import CharterSpec


class PersonaStage:
    """The persona stage: the compiled system prompt and its canary start the turn's prompt.

    The prompt is compiled once; the trace records its digest and size, not its text.
    """

    name = "persona"

    def __init__(self, charter: CharterSpec, identity: IdentityDetector | None = None) -> None:
        self.charter = charter
        self.identity = identity or IdentityDetector()

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
        asked = await asyncio.to_thread(self.identity, latest_user(state.messages))
        if asked.by != "none":
            record.detail["identity_question"] = asked.to_detail()
        if asked.asks:
            state.asks_identity = True
            state.system_prompt += "\n\n" + identity_hint(self.charter)
        return await call_next(state)
