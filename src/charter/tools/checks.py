"""The rules a decided tool call must pass, each a named `CallCheck`.

`tool_limits.checks` lists the checks a charter applies (by default all of them; none with
`grounded_arguments: false`). A check reads one call and what the turn knows
(`CheckContext`) and returns a `Finding`, or None when it has nothing to say:
- `Withhold`: the call must not run; the trace says why (`invalid` or `variant`), and so
  is the model when the tools run here (`RunHere`);
- `Drop`: the call runs without some of its values.

Checks of the `decision` stage see the call as the model decided it, beside the calls
before it in the same decision and the turn's earlier calls, before it is validated; the
first finding wins. Checks of the `arguments` stage see a call's validated arguments (in
the form their parameters take), one after the other. The order is fixed (`CHECKS`):
listing checks in another order does not change it. The rules themselves are in
`provenance.py`, and the figures behind each in docs/tools.md.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Literal, Protocol

from charter.tools.provenance import (
    Sources,
    ground_values,
    named_options,
    redundant,
    variants,
)

if TYPE_CHECKING:
    from charter.spec.models import ToolLimits
    from charter.tools.steps import Call

Stage = Literal["decision", "arguments"]


@dataclass(frozen=True)
class Withhold:
    """The call must not run."""

    error: str
    """Why, for the trace (the step's `error`)."""
    told: str
    """What the model is told (`RunHere`: it may call again)."""
    action: Literal["invalid", "variant"] = "invalid"
    """`variant`: the call adds nothing the request asked for, which costs no retry."""


@dataclass(frozen=True)
class Drop:
    """The call runs without some of its values."""

    arguments: dict[str, Any]
    """The arguments it runs with."""
    dropped: list[str]
    """`path=value` for each value taken out (the step's `dropped`)."""


Finding = Withhold | Drop


@dataclass(frozen=True)
class CheckContext:
    """What a check may read about the turn."""

    schemas: dict[str, dict[str, Any]]
    """Each offered tool's parameters (JSON Schema), by name."""
    sources: Sources
    """What the values may come from: the system prompt, the conversation and the results
    of the turn's earlier calls (not the model's own calls, which would vouch for their own
    guesses)."""
    request: str
    """The user's latest message."""
    said: str
    """Everything the user wrote in the conversation ("both", "all", … count only here,
    not in tool results)."""
    answered: Sequence[Call] = ()
    """The calls of the turn's earlier decisions that returned something (after an empty
    result, trying another option is a fair retry), or were proposed."""
    before: Sequence[Call] = ()
    """The calls before this one in its decision (`decision` stage)."""


class CallCheck(Protocol):
    """A rule a decided call must pass."""

    name: ClassVar[str]
    """The name `tool_limits.checks` lists it by."""
    stage: ClassVar[Stage]
    """`decision`: the call as decided, before validation (such a check withholds, it
    does not drop); `arguments`: the validated arguments."""

    def check(self, call: Call, context: CheckContext) -> Finding | None:
        """What is wrong with `call` ({"tool", "arguments"}), if anything."""
        ...


class Redundant:
    """A call that asks nothing an earlier call of the same tool did not already ask.

    The earlier call is one in its decision, or one that returned something
    (`provenance.redundant`): "update the name and e-mail" → the update, then the same update with
    only the e-mail.
    """

    name: ClassVar[str] = "redundant"
    stage: ClassVar[Stage] = "decision"

    def check(self, call: Call, context: CheckContext) -> Finding | None:
        found = redundant([call], context.schemas, [*context.answered, *context.before])
        return _variant(found)


class Variants:
    """A call that repeats an earlier call of the same tool except for values nobody named.

    Those are values the request never names (another enum member, a flipped flag, an argument left
    out): the model fanning out over a parameter's options (`provenance.variants`); "both", "all", …
    in what the user wrote turn it off.
    """

    name: ClassVar[str] = "variants"
    stage: ClassVar[Stage] = "decision"

    def check(self, call: Call, context: CheckContext) -> Finding | None:
        found = variants(
            [call],
            context.schemas,
            context.sources.text,
            request=context.said,
            earlier=[*context.answered, *context.before],
        )
        return _variant(found)


class GroundedArguments:
    """Argument values the sources do not hold: a number, a text with digits, or a name.

    A text with digits is a date, an account, an amount (`provenance.ground_values`). In a required
    argument the call does not run and the model is told to use the request's words or ask; in an
    optional one the value is left out.
    """

    name: ClassVar[str] = "grounded_arguments"
    stage: ClassVar[Stage] = "arguments"

    def check(self, call: Call, context: CheckContext) -> Finding | None:
        schema = context.schemas.get(str(call.get("tool")), {})
        grounded = ground_values(call["arguments"], schema, context.sources)
        if grounded.refused:
            values = grounded.refused
            return Withhold(
                error=f"values nobody gave: {values}",
                told=f"not run: {', '.join(values)} appear nowhere in the conversation. "
                "If the request gives these values in other words, call again with "
                'its words; if it does not, reply {"calls": []} and ask the user.',
            )
        if grounded.dropped:
            return Drop(grounded.arguments, grounded.dropped)
        return None


class UnnamedOptions:
    """Options nobody named, left out where leaving them out costs nothing.

    Options are enum members (`provenance.unnamed_options`): taken out of a list of options, or an
    optional argument left out for the tool's default; "all", "every", … in the request keep them.
    """

    name: ClassVar[str] = "unnamed_options"
    stage: ClassVar[Stage] = "arguments"

    def check(self, call: Call, context: CheckContext) -> Finding | None:
        schema = context.schemas.get(str(call.get("tool")), {})
        kept, pruned = named_options(call["arguments"], schema, context.sources, context.request)
        return Drop(kept, pruned) if pruned else None


def _variant(found: dict[int, str]) -> Finding | None:
    if not found:
        return None
    why = found[0]
    return Withhold(error=why, told=f"not run: {why}", action="variant")


CHECKS: tuple[CallCheck, ...] = (
    Redundant(),
    Variants(),
    GroundedArguments(),
    UnnamedOptions(),
)
"""Every check, in the order they apply."""

NAMES: tuple[str, ...] = tuple(c.name for c in CHECKS)


def checks_for(limits: ToolLimits) -> tuple[CallCheck, ...]:
    """The checks `limits` applies (`ToolLimits.applied_checks`), in `CHECKS`' order."""
    names = set(limits.applied_checks)
    return tuple(c for c in CHECKS if c.name in names)


def withheld_as_decided(
    checks: Sequence[CallCheck], call: Call, context: CheckContext
) -> Withhold | None:
    """The first `Withhold` of the `decision` stage's checks on `call` as decided."""
    for check in checks:
        if check.stage == "decision":
            found = check.check(call, context)
            if isinstance(found, Withhold):
                return found
    return None
