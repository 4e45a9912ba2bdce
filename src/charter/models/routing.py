"""Which model answers a turn: the cheap chat model or the strong one, with fallback.

A charter may name a second, stronger model (`models.strong`). The route stage reads the
turn's task signals (`route_signals`) and picks `strong` when at least `routing.threshold`
of them are present (or always one model, with `routing.mode`). The generate and critique
stages then ask `ModelSet.complete`, which calls the chosen model and, when it fails (a
`ModelError`: timeout, 5xx, malformed answer) and `routing.fallback` is on, the other one.
Every try, failure and fallback goes into the trace; tokens are counted per model so that a
turn's cost uses each model's own price.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from charter.errors import ModelError

if TYPE_CHECKING:
    from charter.models.base import ChatModel, ChatRequest, Completion
    from charter.spec.models import Models, ModelSpec, Routing

CHEAP = "chat"
STRONG = "strong"

_REASONING = re.compile(
    r"\b(step[- ]by[- ]step|explain why|why does|compare|contrast|analy[sz]e|prove|derive|"
    r"calculate|estimate|trade-?offs?|pros and cons|debug|refactor|plan|strategy)\b",
    re.IGNORECASE,
)
_CODE = re.compile(r"```|\bdef \w+\(|\bclass \w+|\bfunction\s*\w*\(|=>|;\s*$|\bSELECT\b", re.M)


def route_signals(message: str, *, long_words: int, tool_results: int, reanchor: bool) -> list[str]:
    """The task signals of a turn that speak for the strong model, each as a short reason."""
    signals: list[str] = []
    words = len(message.split())
    if words > long_words:
        signals.append(f"long message ({words} words)")
    if _CODE.search(message):
        signals.append("code in the message")
    match = _REASONING.search(message)
    if match:
        signals.append(f"reasoning asked ({match.group(0).lower()!r})")
    if message.count("?") >= 2:
        signals.append(f"{message.count('?')} questions")
    if tool_results:
        signals.append(f"{tool_results} tool result(s) to report")
    if reanchor:
        signals.append("the persona slipped last turn")
    return signals


def tools_role(models: Models) -> str:
    """The role that makes tool decisions (the charter's tools and a gateway caller's).

    It is `models.routing.tools` when the charter names a strong model, else the chat model.
    """
    return STRONG if models.strong is not None and models.routing.tools == "strong" else CHEAP


def choose(signals: list[str], routing: Routing, *, has_strong: bool) -> str:
    """The role that answers the turn: "chat" or "strong".

    "chat" without a strong model; otherwise as `routing.mode` says, and in `auto` mode "strong"
    when at least `routing.threshold` of the `signals` are present.
    """
    if not has_strong or routing.mode == "cheap":
        return CHEAP
    if routing.mode == "strong":
        return STRONG
    return STRONG if len(signals) >= routing.threshold else CHEAP


@dataclass(frozen=True)
class Routed:
    """A completion and the model role that gave it."""

    completion: Completion
    role: str
    fallback: tuple[str, ...] = ()
    """The roles that failed first, with their errors."""

    def to_detail(self) -> dict[str, Any]:
        """What a stage's trace record says about the call."""
        detail: dict[str, Any] = {"model_role": self.role}
        if self.fallback:
            detail["fallback"] = list(self.fallback)
        return detail


@dataclass
class ModelSet:
    """The cheap model and, when the charter names one, the strong model, with their settings.

    Each model is built on first use.
    """

    chat: Callable[[], ChatModel]
    chat_spec: ModelSpec
    strong: Callable[[], ChatModel] | None = None
    strong_spec: ModelSpec | None = None
    fallback: bool = True

    def spec_for(self, role: str) -> ModelSpec:
        if role == STRONG and self.strong_spec is not None:
            return self.strong_spec
        return self.chat_spec

    def order(self, role: str) -> list[str]:
        """The roles to try, the chosen one first."""
        roles = [CHEAP] if self.strong is None else [role, STRONG if role == CHEAP else CHEAP]
        return roles if self.fallback else roles[:1]

    def model(self, role: str) -> ChatModel:
        if role == STRONG and self.strong is not None:
            return self.strong()
        return self.chat()

    async def complete(
        self,
        route: str,
        request_for: Callable[[ChatModel, ModelSpec], ChatRequest],
        send: Callable[[ChatModel, ChatRequest], Awaitable[Completion]] | None = None,
    ) -> Routed:
        """Complete with the `route`'s model, falling back to the other on a model error.

        Says which role answered (its tokens are counted under it) and which failed first. `send`
        replaces the plain `acomplete` (the generate stage streams); an error it raises that is not
        a `ModelError` is not retried on the other model.
        """
        failures: list[str] = []
        for role in self.order(route):
            model = self.model(role)
            request = request_for(model, self.spec_for(role))
            try:
                if send is None:
                    completion = await model.acomplete(request)
                else:
                    completion = await send(model, request)
            except ModelError as exc:
                failures.append(f"{role}: {exc}")
                continue
            return Routed(completion, role, tuple(failures))
        raise ModelError("; ".join(failures))
