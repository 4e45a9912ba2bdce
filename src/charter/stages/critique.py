"""Critique stage: check the draft against the constitution and revise it (bounded).

1. Programmatic checks (persona/checks.py) always run: word limits, openings, sign-offs,
   forbidden and required phrases; and, unless `critique.user_requests` is off, the format
   and length rules the user states in the latest message (persona/requested.py); and,
   when knowledge was retrieved, that every figure is grounded (knowledge/grounding.py).
   No model call.
2. If `critique.judge` is on, the judge model is asked, with schema-forced JSON, which of
   the remaining principles (those without a programmatic check) the draft violates. If the
   charter has a built persona judge (`critique.persona_judge`, persona/judge.py), it checks
   the semantic rules (scope, tone, identity, values, `never` items, principles without a
   check): code, then a classifier per rule, the judge model only in its uncertain band.
3. While there are violations and rounds are left (`critique.rounds`, default 1), the chat
   model revises its draft, told exactly what to fix.
4. Programmatic violations that survive are repaired in code where a repair exists (cut to
   the word limit at a sentence boundary, add the sign-off), so those rules always hold.
A reply the persona judge finds outside the persona's scope is replaced by the persona's decline
(`critique.off_scope: decline`, the default; `revise` treats scope like any other rule): a
small model asked to revise an off-topic answer keeps answering the off-topic request about
half the time (docs/design/016-scope.md). Before any of this, the scope gate
(persona/gate.py) reads the user's message alone: a request it is sure lies outside the
persona's job is declined with no reply written at all. A figure still unsupported after
revision replaces the reply with an honest "I don't know" (counted as `ungrounded` in the
trace). Skipped entirely when the draft passes. Every check, revision, token and
millisecond is in the trace; the draft's persona score feeds the drift monitor.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Literal

from charter.errors import ModelError
from charter.knowledge.grounding import (
    dont_know,
    grounding_checks,
    unsupported,
    unsupported_entities,
)
from charter.models.base import ChatModel, ChatRequest, Message, latest_user
from charter.persona.checks import PersonaCheck, failed, repair
from charter.persona.identity import answers_identity, decline
from charter.persona.requested import requested_checks
from charter.persona.scaffolding import Markers, strip
from charter.turn import Draft

if TYPE_CHECKING:
    from charter.models.routing import ModelSet
    from charter.persona.judge import Finding, PersonaJudge
    from charter.pipeline import CallNext, TurnState
    from charter.spec.models import ModelSpec, Principle

JUDGE_SCHEMA = {
    "type": "object",
    "properties": {
        "violations": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {"principle": {"type": "string"}, "why": {"type": "string"}},
                "required": ["principle", "why"],
            },
            "maxItems": 5,
        }
    },
    "required": ["violations"],
}


class CritiqueStage:
    """The critique stage: checks the draft, revises it within `rounds`, repairs what is left.

    Streamed text is held back until the reply is final. `judge_model` (None: no judge) is asked
    about `judge_principles`.
    """

    name = "critique"

    def __init__(
        self,
        models: ModelSet,
        checks: list[PersonaCheck],
        *,
        rounds: int,
        judge_principles: list[Principle],
        judge_model: Callable[[], ChatModel] | None,
        user_requests: bool = True,
        persona_judge: Callable[[], PersonaJudge | None] | None = None,
        off_scope: Literal["decline", "revise"] = "decline",
    ) -> None:
        self.models = models
        self.checks = checks
        self.rounds = rounds
        self.judge_principles = judge_principles
        self.judge_model = judge_model
        self.user_requests = user_requests
        self._load_persona_judge = persona_judge
        self._persona_judge: PersonaJudge | None = None
        self.off_scope = off_scope

    async def __call__(self, state: TurnState, call_next: CallNext) -> TurnState:
        # The draft may change here: hold streamed text until the reply is final.
        with state.stream.diverted(None):
            if await self._gated(state):
                self._decline(state, "the request is outside the persona's scope")
            else:
                state = await self._critique(await call_next(state))
        if state.outcome.reply and not state.outcome.blocked:
            await state.stream.send(state.outcome.reply)
        return state

    async def _critique(self, state: TurnState) -> TurnState:
        record = state.trace[self.name]
        if state.request.json_schema is not None and not state.outcome.blocked:
            record.reason = "not run: the caller asked for JSON (response_format)"
            return state
        if state.outcome.blocked or state.outcome.reply is None:
            record.reason = "not run: no draft (the turn was blocked or answered with calls)"
            return state
        draft = state.outcome.reply
        checks = list(self.checks)
        if self.user_requests:
            latest = latest_user(state.request.messages)
            asked = requested_checks(latest)
            checks += asked
            if asked:
                record.detail["user_requests"] = [c.id for c in asked]
        if state.asks_identity:  # the persona's answer, not the model's (or the user's guess)
            checks.append(answers_identity(state.charter))
        sources: list[str] = []
        entity_sources: list[str] = []
        if state.knowledge or state.tool_results:
            sources = [p.text for p in state.knowledge] + list(state.tool_results)
            sources += list(state.charter.persona.facts)
            sources += [m.content for m in state.messages if m.role == "user"]
            entity_sources = [*sources, state.system_prompt]
            checks += grounding_checks(sources, entity_sources)
        problems, off_scope = await self._violations(draft, state, record.detail, checks)
        state.outcome.persona_score = self._score(draft)
        record.detail["draft_violations"] = problems + ([off_scope] if off_scope else [])
        record.detail["draft_persona_score"] = round(state.outcome.persona_score, 3)
        await self._hold(state, checks, problems, off_scope)
        if failed(checks, state.outcome.reply):
            repaired = repair(checks, state.outcome.reply)
            if repaired != state.outcome.reply:  # not every rule has a repair in code
                state.outcome.reply = repaired
                record.detail["repaired"] = True
        if sources:
            ungrounded = unsupported(state.outcome.reply, sources)
            ungrounded += unsupported_entities(state.outcome.reply, entity_sources)
            if ungrounded:
                record.detail["ungrounded"] = ungrounded
                state.outcome.reply = dont_know(state.charter)
        remaining = [c.id for c in failed(checks, state.outcome.reply)]
        record.detail["final_violations"] = remaining
        if state.outcome.reply != draft:
            record.detail["draft"] = draft
            state.outcome.draft = Draft(draft, tuple(record.detail["draft_violations"]))
            record.verdict = "rewrite"
            record.reason = "revised to follow: " + ", ".join(record.detail["draft_violations"])
        return state

    async def _hold(
        self,
        state: TurnState,
        checks: list[PersonaCheck],
        problems: list[str],
        off_scope: str | None,
    ) -> None:
        """Revise the reply while it breaks rules (within `rounds`); decline it if off scope."""
        record = state.trace[self.name]
        rounds = 0
        while problems and not off_scope and rounds < self.rounds:
            rounds += 1
            assert state.outcome.reply is not None
            revised = await self._revise(state, state.outcome.reply, problems)
            record.prompt_tokens += revised[1]
            record.completion_tokens += revised[2]
            state.outcome.reply = revised[0]
            problems, off_scope = await self._violations(
                state.outcome.reply, state, record.detail, checks
            )
        record.detail["revisions"] = rounds
        state.outcome.revisions = rounds
        if off_scope:  # the persona's decline; the code checks still hold it (a sign-off)
            state.outcome.reply = decline(state.charter)
            state.outcome.declined = True
            record.detail["declined"] = "outside the persona's scope"

    async def _gated(self, state: TurnState) -> bool:
        """Whether the scope gate is sure the request is off scope, before a reply is written.

        Not asked when the turn is already decided (blocked), when the caller wants JSON, when
        the user asks who the assistant is, or when the charter's documents or tools took part
        in the turn (the request touched the job).
        """
        if self.off_scope != "decline" or state.outcome.blocked:
            return False
        if state.request.json_schema is not None or state.asks_identity:
            return False
        if state.knowledge or state.tool_results:
            return False
        judge = self._semantic_judge()
        if judge is None:
            return False
        p = await judge.off_scope_request(latest_user(state.request.messages))
        if p is None:
            return False
        record = state.trace[self.name]
        record.detail["scope_gate"] = round(p, 3)
        return judge.gate is not None and p >= judge.gate.threshold

    def _decline(self, state: TurnState, why: str) -> None:
        """Decline before any reply is written; the code checks still hold the decline."""
        record = state.trace[self.name]
        reply = decline(state.charter)
        if failed(self.checks, reply):
            reply = repair(self.checks, reply)
        state.outcome.reply = reply
        state.outcome.declined = True
        record.detail["declined"] = why + " (no reply was written)"
        record.verdict = "rewrite"
        record.reason = "declined: " + why

    def _score(self, text: str) -> float:
        if not self.checks:
            return 1.0
        return 1 - len(failed(self.checks, text)) / len(self.checks)

    async def _violations(
        self, text: str, state: TurnState, detail: dict[str, Any], checks: list[PersonaCheck]
    ) -> tuple[list[str], str | None]:
        """What `text` breaks, as revision problems, and the scope problem apart.

        The scope problem is apart when the reply is to be declined (`off_scope: decline` and
        the persona judge finds scope broken).
        """
        problems = [c.problem() for c in failed(checks, text)]
        if self.judge_model is not None and self.judge_principles:
            found = await self._judge(text, state)
            detail.setdefault("judge_calls", 0)
            detail["judge_calls"] += 1
            problems += found
        judge = self._semantic_judge()
        off_scope: str | None = None
        if judge is not None:
            semantic = await self._semantic(judge, text, state, detail, checks)
            judged = [f"{f.rule}: {judge.rules[f.rule].text}" for f in semantic]
            scope = [n for n, f in enumerate(semantic) if f.rule == "scope" and sure(judge, f)]
            if self.off_scope == "decline" and scope:
                off_scope = judged.pop(scope[0])
            problems += judged
        return problems, off_scope

    def _semantic_judge(self) -> PersonaJudge | None:
        if self._load_persona_judge is not None:  # built on first use, once
            self._persona_judge = self._load_persona_judge()
            self._load_persona_judge = None
        return self._persona_judge

    async def _semantic(
        self,
        judge: PersonaJudge,
        text: str,
        state: TurnState,
        detail: dict[str, Any],
        checks: list[PersonaCheck],
    ) -> list[Finding]:
        """The rules the persona judge finds broken.

        The trace keeps every rule's score.
        """
        verdict = await judge.assess(latest_user(state.request.messages), text)
        record: dict[str, Any] = {"rules": [a.to_detail() for a in verdict.assessments]}
        if verdict.model_calls:
            state.add_usage(verdict.usage, model="judge")
            record["model_calls"] = verdict.model_calls
        if verdict.model_error:
            record["model_error"] = verdict.model_error
        detail.setdefault("persona_judge", []).append(record)
        claimed = any(c.id == "identity.claim" for c in failed(checks, text))
        return [
            f
            for f in verdict.findings
            if f.rule in judge.rules and not (claimed and f.rule == "identity")
        ]

    async def _judge(self, text: str, state: TurnState) -> list[str]:
        if self.judge_model is None:
            return []
        known = {p.id: p.text for p in self.judge_principles}
        listing = "\n".join(f"- [{pid}] {ptext}" for pid, ptext in known.items())
        question = latest_user(state.request.messages)
        request = ChatRequest(
            messages=[
                Message(
                    role="system",
                    content="You review an assistant's reply against its principles. List "
                    "only clear violations; an empty list is the usual answer.\n" + listing,
                ),
                Message(role="user", content=f"User asked:\n{question}\n\nReply:\n{text}"),
            ],
            max_tokens=200,
            temperature=0.0,
            json_schema=JUDGE_SCHEMA,
        )
        completion = await self.judge_model().acomplete(request)
        state.add_usage(completion.usage, model="judge")
        try:
            items = json.loads(completion.text)["violations"]
        except (ValueError, KeyError, TypeError) as exc:
            raise ModelError(f"the critique judge broke its schema: {exc}") from exc
        return [
            f"{item['principle']}: {known[item['principle']]} ({item['why']})"
            for item in items
            if isinstance(item, dict) and item.get("principle") in known
        ]

    async def _revise(
        self, state: TurnState, draft: str, problems: list[str]
    ) -> tuple[str, int, int]:
        fix = "\n".join(f"- {p}" for p in problems)
        # Only the latest exchange: with the whole conversation in view, the small models
        # answered a revision request by copying an earlier reply of theirs (measured on a
        # 6-turn conversation: turns 2-6 all became turn 1's answer). The draft already
        # carries what the reply needs from earlier turns.
        latest = max((i for i, m in enumerate(state.messages) if m.role == "user"), default=0)

        def request(model: ChatModel, spec: ModelSpec) -> ChatRequest:
            return state.request.sampling.request(  # the caller's options shape the revision too
                [
                    Message(role="system", content=state.system_prompt),
                    *state.messages[latest:],
                    Message(role="assistant", content=draft),
                    Message(
                        role="user",
                        content="(Note from your supervisor, not from the customer.) Rewrite your "
                        f"last reply so that it follows these rules:\n{fix}\nReply with the "
                        "rewritten message only.",
                    ),
                ],
                max_tokens=spec.max_tokens,
                temperature=spec.temperature,
                seed=spec.seed,
            )

        routed = await self.models.complete(state.route, request)
        completion = routed.completion
        state.add_usage(completion.usage, model=routed.role)
        state.trace[self.name].detail.update(routed.to_detail())
        # A small model frames its rewrite ("Sure, here's the rewritten message: ..."); the
        # frame would count against the rules and reach the user.
        markers = Markers(check_ids=frozenset(c.id for c in self.checks))
        asked = latest_user(state.request.messages)
        kept = strip(completion.text, markers, revised=True, request=asked)
        text = kept.text.strip() or draft
        return text, completion.usage.prompt_tokens, completion.usage.completion_tokens


def sure(judge: PersonaJudge, finding: Finding) -> bool:
    """Whether a finding is sure enough to decline on.

    Sure: decided by code or by the classifier, or by the judge model on a score at or above
    the classifier's own threshold.

    A decline costs the user an answer; the judge model alone, in the lower part of its band,
    declined ordinary banking messages (docs/design/016-scope.md). There the reply is revised.
    """
    if finding.by != "model":
        return True
    thresholds = [c.threshold for c in judge.classifiers if c.rule.id == finding.rule]
    return bool(thresholds) and finding.score >= thresholds[0]
