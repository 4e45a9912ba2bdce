"""The turn, declared: which stages a charter's pipeline has, in what order, and why.

Each row of `STAGES` is one stage: its name, when a charter has it, what it reads and what
it writes, and how it is built. `build_pipeline` composes the rows a charter enables, in
order, outermost first (see `pipeline.py`: work before `call_next` sees the request on the
way in, work after it sees the reply on the way out). Reading the table tells you the whole
turn; each stage's own module (`stages/`) tells you how it does its part.

Stages talk only through the typed turn (`charter.turn`): `request` (what the caller asked),
`outcome` (what was decided) and the prompt the stages build for the model. A team adds its
own stage by name with `Insert(stage, after="retrieve")` (or `before=`), passed to
`Charter(..., stages=[...])`.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING

from charter.errors import CharterError
from charter.guards.allowlist import AllowList
from charter.models.routing import STRONG, ModelSet, tools_role
from charter.persona.identity import held_checks
from charter.pipeline import Pipeline, Stage
from charter.stages import (
    CritiqueStage,
    DriftStage,
    EscalationStage,
    GenerateStage,
    InputGuardStage,
    InstructionsStage,
    OutputGuardStage,
    PersonaStage,
    RateLimitStage,
    RetrieveStage,
    RouteStage,
    ToolsStage,
)
from charter.stages.hygiene import HygieneStage
from charter.stages.operator import OperatorStage

if TYPE_CHECKING:
    from charter.guards.answered import AnsweredTurns
    from charter.guards.base import Guard
    from charter.knowledge.index import KnowledgeIndex
    from charter.models.base import ChatModel
    from charter.persona.judge import PersonaJudge
    from charter.spec.models import CharterSpec
    from charter.stages.rate_limit import Limiter


class Parts:
    """What the stages are built from: the charter and the resources its stages share.

    Each resource is built on first use (a charter without knowledge never opens an index).
    """

    def __init__(
        self,
        spec: CharterSpec,
        *,
        models: ModelSet,
        judge: Callable[[], ChatModel],
        limiter: Callable[[], Limiter],
        knowledge: Callable[[], KnowledgeIndex],
        answered: AnsweredTurns,
    ) -> None:
        self.spec = spec
        self.models = models
        self.judge = judge
        self.limiter = limiter
        self.knowledge = knowledge
        self.answered = answered
        self.operator_allowed: OrderedDict[str, None] = OrderedDict()
        """Digests of operator instructions the input guards allowed (shared across turns)."""

    @property
    def guard_timeout_s(self) -> float:
        return self.spec.guards.timeout_ms / 1000

    @cached_property
    def input_guards(self) -> list[Guard]:
        from charter.guards.registry import build_input_guards

        return build_input_guards(self.spec, judge_model=self.judge)

    @cached_property
    def allow(self) -> AllowList:
        return AllowList(list(self.spec.guards.allow))


def _rate_limit(parts: Parts) -> Stage:
    return RateLimitStage(parts.limiter())


def _operator(parts: Parts) -> Stage:
    guards = parts.input_guards if parts.spec.guards.input else []
    return OperatorStage(
        guards, timeout_s=parts.guard_timeout_s, allow=parts.allow, allowed=parts.operator_allowed
    )


def _input_guards(parts: Parts) -> Stage:
    return InputGuardStage(
        parts.input_guards,
        timeout_s=parts.guard_timeout_s,
        answered=parts.answered,
        allow=parts.allow,
    )


def _output_guards(parts: Parts) -> Stage:
    from charter.guards.registry import build_output_guards

    return OutputGuardStage(build_output_guards(parts.spec), timeout_s=parts.guard_timeout_s)


def _retrieve(parts: Parts) -> Stage:
    knowledge = parts.spec.knowledge
    assert knowledge is not None  # enabled only with knowledge
    return RetrieveStage(parts.knowledge(), top_k=knowledge.top_k, min_score=knowledge.min_score)


def _tools(parts: Parts) -> Stage:
    from charter.tools.registry import load_tools

    spec = parts.spec
    result_guard = None
    if "injection" in spec.guards.input:
        # only then: the injection guard needs the guards extra, and says so without it
        from charter.guards.registry import build_input_guards

        guards = build_input_guards(spec.model_copy(), judge_model=None)
        result_guard = next(g for g in guards if g.name == "injection")
    role = tools_role(spec.models)
    model_spec = spec.models.strong if role == STRONG else spec.models.chat
    return ToolsStage(
        parts.models.model(role),
        model_spec or spec.models.chat,
        load_tools(list(spec.tools)),
        spec.tool_limits,
        result_guard=result_guard,
        role=role,
    )


def _critique(parts: Parts) -> Stage:
    spec = parts.spec
    return CritiqueStage(
        parts.models,
        held_checks(spec),  # with: never claims to be another assistant, model or company
        rounds=spec.critique.rounds,
        user_requests=spec.critique.user_requests,
        judge_principles=[p for p in spec.constitution if p.check is None],
        judge_model=parts.judge if spec.critique.judge else None,
        persona_judge=_persona_judge(parts) if spec.critique.persona_judge else None,
        off_scope=spec.critique.off_scope,
    )


def _persona_judge(parts: Parts) -> Callable[[], PersonaJudge | None]:
    """The charter's built persona judge (None until `charter prompt --build-judge`).

    The judge model decides its uncertain band, built only when a reply lands there.
    """

    def load() -> PersonaJudge | None:
        from charter.persona.judge import load_judge

        judge = load_judge(parts.spec)
        return judge.with_model(parts.judge) if judge is not None else None

    return load


@dataclass(frozen=True)
class Row:
    """One stage of the turn."""

    name: str
    enabled: Callable[[CharterSpec], bool]
    """Whether a charter has this stage."""
    reads: str
    writes: str
    build: Callable[[Parts], Stage]


def _always(spec: CharterSpec) -> bool:
    return True


STAGES: tuple[Row, ...] = (
    Row(
        "rate_limit",
        lambda s: s.guards.rate_limit is not None,
        reads="request.user; after the turn, its tokens",
        writes="outcome (blocked, retry_after_s) when the user is over the limit",
        build=_rate_limit,
    ),
    Row(
        "persona",
        _always,
        reads="the charter",
        writes="system_prompt (persona, constitution, policies; the persona's answer to an "
        "identity question), canary",
        build=lambda p: PersonaStage(p.spec),
    ),
    Row(
        "instructions",
        lambda s: bool(s.instructions),
        reads="messages, request.profile",
        writes="signals; system_prompt (this turn's instructions)",
        build=lambda p: InstructionsStage(list(p.spec.instructions)),
    ),
    Row(
        "escalate",
        lambda s: s.persona.escalation is not None,
        reads="request.latest, request.carry.blocked_streak; on the way out outcome.held, "
        "outcome.specialist_policy, outcome.blocked",
        writes="outcome (reply, escalations): hands the turn to a person",
        build=lambda p: EscalationStage(),
    ),
    Row(
        "drift",
        lambda s: s.drift.enabled and s.critique.enabled,  # the score comes from critique
        reads="request.carry.reanchor; on the way out outcome.persona_score",
        writes="outcome.reanchor_next",
        build=lambda p: DriftStage(p.spec.drift.threshold),
    ),
    Row(
        "operator",
        _always,  # takes part only in turns with request.operator_instructions
        reads="request.operator_instructions",
        writes="system_prompt (below the charter's); outcome (blocked, guards) on a refusal",
        build=_operator,
    ),
    Row(
        "input_guards",
        lambda s: bool(s.guards.input),
        reads="messages, system_prompt, canary",
        writes="messages (refused exchanges left out); outcome (blocked, guards, held)",
        build=_input_guards,
    ),
    Row(
        "output_guards",
        lambda s: bool(s.guards.output),
        reads="on the way out outcome.reply; streams it sentence by sentence",
        writes="outcome (reply rewritten or refused, blocked, guards, specialist_policy)",
        build=_output_guards,
    ),
    Row(
        "retrieve",
        lambda s: s.knowledge is not None and bool(s.knowledge.paths),
        reads="request.latest; on the way out outcome.reply",
        writes="knowledge, system_prompt (passages); outcome.citations",
        build=_retrieve,
    ),
    Row(
        "tools",
        lambda s: bool(s.tools),
        reads="messages, system_prompt",
        writes="tool_results, system_prompt (results); outcome.escalations (approvals)",
        build=_tools,
    ),
    Row(
        "route",
        lambda s: s.models.strong is not None,
        reads="request.latest, tool_results, request.carry.reanchor",
        writes="route",
        build=lambda p: RouteStage(p.spec.models.routing),
    ),
    Row(
        "hygiene",
        _always,
        reads="on the way out outcome.reply, messages, canary, outcome.revisions",
        writes="outcome.reply (scaffolding taken out; a new try, or an honest note, when it "
        "spins); messages (a copied earlier reply, then every earlier reply, left out of the new "
        "tries; the last try shown what was wrong)",
        build=lambda p: HygieneStage(p.spec, held=p.spec.critique.enabled),
    ),
    Row(
        "critique",
        lambda s: s.critique.enabled,
        reads="on the way out outcome.reply, knowledge, tool_results, request.json_schema",
        writes="outcome.reply (revised or repaired), outcome.persona_score",
        build=_critique,
    ),
    Row(
        "generate",
        _always,
        reads="system_prompt, messages, route, request (client tools, schema, sampling, "
        "carry.reanchor, carry.memory)",
        writes="outcome.reply or outcome.tool_calls; outcome.memory when old messages no "
        "longer fit (notes on them, pinned after the persona)",
        build=lambda p: GenerateStage(p.models),
    ),
)


@dataclass(frozen=True)
class Insert:
    """A team's own stage, placed just before or just after a named stage of `STAGES`."""

    stage: Stage
    after: str | None = None
    before: str | None = None

    def __post_init__(self) -> None:
        if (self.after is None) == (self.before is None):
            raise CharterError(f"stage {self.stage.name!r}: give exactly one of after= or before=")


def stage_names(spec: CharterSpec) -> list[str]:
    """The names of the stages `spec` enables, in order."""
    return [row.name for row in STAGES if row.enabled(spec)]


def build_pipeline(parts: Parts, inserts: Sequence[Insert] = ()) -> Pipeline:
    """The charter's pipeline: the enabled rows of `STAGES`, in order, and `inserts`."""
    spec = parts.spec
    stages = [row.build(parts) for row in STAGES if row.enabled(spec)]
    for insert in inserts:
        anchor = insert.after or insert.before
        names = [s.name for s in stages]
        if anchor not in names:
            known = [row.name for row in STAGES]
            raise CharterError(
                f"stage {insert.stage.name!r}: no stage {anchor!r} in this charter's pipeline "
                f"(it has {', '.join(names)}; the built-in stages are {', '.join(known)})"
            )
        at = names.index(anchor)
        stages.insert(at + 1 if insert.after is not None else at, insert.stage)
    return Pipeline(stages, failure=spec.on_failure, fallback_reply=spec.persona.fallback_reply())
