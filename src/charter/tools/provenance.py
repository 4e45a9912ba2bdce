"""Where a tool call's values come from: a call must not carry figures or names nobody gave.

Small models fill required arguments with plausible inventions (a card's last four digits, a
date, an amount) rather than ask. `unsupported_values` finds the values of a call that carry
digits (numbers, and strings such as dates, account or card numbers) and appear nowhere in
the conversation or in earlier tool results. Values the tool's schema itself offers (an enum
member, the default) are fine, and so are percentages written either way (7 % vs 0.07).
Runs of one or two digits inside text are not checked (a month or an hour is often derived:
"21 February" → "2024-02-21"). Numbers may be written as words up to twelve; "next month"
or "an hour" gives 1.

Names are held to the same rule, loosely, because a paraphrase ("Spanish" → "es-ES") is
legitimate: a text value with a capitalised word of four letters or more ("Manchester
United", "Jupiter", "Paris") must share a word with the sources (`charter.tools.words`:
"Tolls" matches "toll"), or be spelled out from initials they hold ("New York City" for
"NYC"). On BFCL's irrelevance questions the small model fills required names with
inventions ("Who won the last world cup?" → `team_name="Manchester United"`). Lower-case
text ("medium", "worldwide") is judged only in a required free-text argument (a string with
no enum, format or pattern), which must share a word of three letters or more with the
sources (`_mentioned`: "what fertiliser for tomatoes?" → `soil_type="sandy"` is held back);
elsewhere requests name such values in other words ("woman tennis" → "women", "liquid to
gas" → "vaporization"). A required value left empty counts as missing. Codes (`AAPL`,
`es-ES`), the fields of objects, and any text when the sources are mostly in a script other
than Latin (the value may be a translation) are not judged.

`ground_arguments` also prunes lists of options (arrays of enum members) to the members the
sources name (`unnamed_options`). The tool loop applies these rules as named checks
(`charter.tools.checks`). The figures behind each rule are in docs/tools.md.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING, Any

from charter.tools.words import Vocabulary, content_words, non_latin

if TYPE_CHECKING:
    from collections.abc import Sequence

_NUMBER = re.compile(r"-?\d+(?:[.,]\d+)*")
_WORDS = {
    w: float(i)
    for i, w in enumerate(
        "zero one two three four five six seven eight nine ten eleven twelve".split()
    )
}

# "next month", "in an hour", "a week from now": one of the unit
_ONE_UNIT = re.compile(
    r"\b(?:a|an|next|last)\s+(?:second|minute|hour|day|night|week|month|quarter|year|decade)\b"
)


def thousands(raw: str) -> bool:
    """Whether `raw` ("1,250.50", "1,5", "2,5") uses its commas as thousands separators.

    It does when every group after a comma has three digits.
    """
    return all(len(group.split(".")[0]) == 3 for group in raw.split(",")[1:])


def numbers_in(text: str) -> set[float]:
    """The numbers `text` writes.

    As digits (1,250.50; a decimal comma; a list "1,5"), negative when a minus stands apart
    before them ("- 7x"), as words up to twelve, and a single unit of time ("next month",
    "an hour": 1).
    """
    found: set[float] = set()
    for match in _NUMBER.finditer(text):
        raw = match.group(0)
        # "5x^2 - 7x + 3": a minus sign apart from its number still makes it negative
        signed = re.search(r"[-\u2212]\s+$", text[max(0, match.start() - 3) : match.start()])
        if thousands(raw):  # 1,250.50
            candidates = [raw.replace(",", "")]
        else:  # "2,5" (a decimal comma) or "1,5" in "1,5 and 10 years" (a list)
            candidates = [raw.replace(",", "."), *raw.split(",")]
        for candidate in candidates:
            try:
                number = float(candidate)
            except ValueError:
                continue
            found.add(number)
            if signed:
                found.add(-number)
    lowered = text.lower()
    for word in re.findall(r"[a-z]+", lowered):
        if word in _WORDS:
            found.add(_WORDS[word])
    if _ONE_UNIT.search(lowered):
        found.add(1.0)
    return found


def _digit_runs(text: str) -> list[str]:
    """Runs of three or more digits (years, amounts, account and card numbers)."""
    return re.findall(r"\d{3,}", text)


_NAME = re.compile(r"\b[A-Z][a-z]{3,}")


def _supported(text: str, vocabulary: Vocabulary, foreign: bool) -> bool:
    """Whether a name in `text` is supported by the sources, or not judged.

    Supported: it shares a word with the sources, or is spelled out from initials they hold
    ("New York City" for "NYC"). Not judged: no capitalised word of four letters or more, a
    code ("AAPL", "es-ES"), any text when the sources are mostly not in Latin script.
    """
    if foreign or not _NAME.search(text):
        return True
    return bool(vocabulary.shared(content_words(text))) or _initials(text, vocabulary)


def _initials(text: str, vocabulary: Vocabulary) -> bool:
    """`text` is spelled out from initials the vocabulary holds ("New York City": "nyc")."""
    words = re.findall(r"[a-z]+", text.lower())
    return 2 <= len(words) <= 5 and "".join(w[0] for w in words) in vocabulary.words


def _free_text(prop: dict[str, Any]) -> bool:
    """A string parameter that takes any text: no enum, no format, no pattern."""
    return prop.get("type") == "string" and not {"enum", "format", "pattern"} & set(prop)


_COMMON = frozenset(
    "the and for are but not you all any can was one our out has his her how its may new now "
    "see two way who did get let put say she too use".split()
)


def _mentioned(text: str, sources: Sources) -> bool:
    """Whether the sources mention a required free-text value (no enum, no format).

    Such a value is held to more than a name: it must share a word with the sources (three
    letters or more, less the commonest), appear in them whole, or, as a name, be spelled out
    from initials they hold (`_initials`). Codes and text without a lower-case word of three
    letters ("USD", "es-ES", "x**3") are not judged, nor is anything when the sources are
    mostly in another script.
    """
    if sources.foreign or not re.search(r"[a-z]{3,}", text):
        return True
    if text.lower() in sources.lowered:
        return True
    words = set(re.findall(r"[a-z]{3,}", text.lower())) - _COMMON
    if words & sources.tokens or sources.vocabulary.shared(content_words(text)):
        return True
    return _NAME.search(text) is not None and _initials(text, sources.vocabulary)


def given(value: float, known: set[float]) -> bool:
    """Whether `value` is one of the numbers given, or one of them as a percentage either way.

    8 may be given as 0.08, and 0.05 as 5.
    """
    return any(
        abs(value - k) < 1e-9 or abs(value * 100 - k) < 1e-6 or abs(value - k * 100) < 1e-6
        for k in known
    )


class Sources:
    """What the sources hold, each part read once (on first use).

    A decision's calls are all checked against the same text (the system prompt, the
    conversation, earlier tool results).
    """

    def __init__(self, text: str) -> None:
        self.text = text

    @cached_property
    def numbers(self) -> set[float]:
        return numbers_in(self.text)

    @cached_property
    def runs(self) -> set[str]:
        return set(_digit_runs(self.text))

    @cached_property
    def vocabulary(self) -> Vocabulary:
        return Vocabulary(self.text)

    @cached_property
    def lowered(self) -> str:
        return self.text.lower()

    @cached_property
    def tokens(self) -> set[str]:
        return set(re.findall(r"[a-z]+", self.lowered))

    @cached_property
    def foreign(self) -> bool:
        return non_latin(self.text)


def unsupported_values(  # noqa: C901 - one branch per JSON type
    arguments: dict[str, Any], schema: dict[str, Any], sources: Sources | str
) -> list[tuple[str, str]]:
    """The values of `arguments` that `sources` does not hold (see the module doc).

    One (argument, `path=value`) for each, where `argument` is the top-level argument the
    value sits in.
    """
    held = sources if isinstance(sources, Sources) else Sources(sources)
    known, runs = held.numbers, held.runs
    vocabulary, foreign = held.vocabulary, held.foreign
    problems: list[tuple[str, str]] = []
    required = set(schema.get("required", []))
    top = ""

    def allowed(value: Any, prop: dict[str, Any]) -> bool:
        return value in prop.get("enum", []) or ("default" in prop and value == prop["default"])

    def visit(path: str, value: Any, prop: dict[str, Any]) -> None:
        if isinstance(value, bool) or value is None or allowed(value, prop):
            return
        if isinstance(value, (int, float)):
            if not given(float(value), known):
                problems.append((top, f"{path}={value!r}"))
        elif isinstance(value, str):
            missing = [r for r in _digit_runs(value) if r not in runs]
            if path == top and top in required and _free_text(prop):
                named = _mentioned(value, held)
            else:  # objects' fields are not judged
                named = "." in path or _supported(value, vocabulary, foreign)
            if missing or not named:
                problems.append((top, f"{path}={value!r}"))
        elif isinstance(value, list):
            items = prop.get("items", {}) if isinstance(prop.get("items"), dict) else {}
            for i, item in enumerate(value):
                visit(f"{path}[{i}]", item, items)
        elif isinstance(value, dict):
            props = prop.get("properties", {})
            for key, item in value.items():
                visit(f"{path}.{key}", item, props.get(key, {}))

    properties = schema.get("properties", {})
    for name, value in arguments.items():
        top = name
        prop = properties.get(name, {}) if isinstance(properties, dict) else {}
        if name in required and value in ("", [], {}) and not allowed(value, prop):
            problems.append((name, f"{name}={value!r} (empty)"))  # a required value left out
            continue
        visit(name, value, prop)
    return problems


@dataclass(frozen=True)
class Grounded:
    """What becomes of a call whose values were held to the sources."""

    arguments: dict[str, Any]
    """The arguments, less the optional ones that carried a value nobody gave."""
    refused: list[str]
    """`path=value` nobody gave in a required argument: the call must not run."""
    dropped: list[str]
    """`path=value` nobody gave in an optional argument: left out."""


def ground_arguments(
    arguments: dict[str, Any],
    schema: dict[str, Any],
    sources: Sources | str,
    request: str | None = None,
) -> Grounded:
    """What to do with a call whose values `sources` may not hold (`ground_values`).

    Its lists of options are also pruned to those named (`named_options`; "all", "every", …
    in `request`, by default the sources, keep them whole).
    """
    held = sources if isinstance(sources, Sources) else Sources(sources)
    grounded = ground_values(arguments, schema, held)
    if grounded.refused:
        return grounded
    kept, pruned = named_options(
        grounded.arguments, schema, held, held.text if request is None else request
    )
    return Grounded(kept, [], grounded.dropped + pruned)


def ground_values(arguments: dict[str, Any], schema: dict[str, Any], sources: Sources) -> Grounded:
    """The values of a call that `sources` does not hold (`unsupported_values`).

    All of them are `refused` when one sits in a required argument (the call must not run);
    otherwise the optional arguments that hold one are left out (`dropped`).
    """
    guessed = unsupported_values(arguments, schema, sources)
    required = set(schema.get("required", []))
    if any(arg in required for arg, _ in guessed):
        return Grounded(arguments, [value for _, value in guessed], [])
    dropped = {arg for arg, _ in guessed}
    kept = {k: v for k, v in arguments.items() if k not in dropped}
    return Grounded(kept, [], [value for _, value in guessed])


def named_options(
    arguments: dict[str, Any], schema: dict[str, Any], sources: Sources, request: str
) -> tuple[dict[str, Any], list[str]]:
    """The arguments with `unnamed_options` taken out, and `path=value` for each one taken out.

    Nothing is taken out when `request` says "all", "every", "each", "both" or "any" (it may
    mean every option).
    """
    if _EVERY.search(request.lower()):
        return arguments, []
    return unnamed_options(arguments, schema, sources)


def unnamed_options(
    arguments: dict[str, Any], schema: dict[str, Any], sources: Sources
) -> tuple[dict[str, Any], list[str]]:
    """The arguments less the options (enum members) that the sources never name.

    Only where a guess costs nothing to undo:
    - members of a list of options (an array of enum strings): the small model pads such a
      list with every option the schema offers ("a pet-friendly library with disabled
      access" → `preferences=["Pet-friendly", "Disabled Access", "24 hours", "Cafe
      Inside"]`); an optional list left empty is left out, a required one stays whole;
    - an optional argument's option ("close firefox with taskkill" → `unit="seconds"`): it
      is left out, so the tool's default applies.
    A member is named when the sources hold it (`_` and `-` read as spaces) or share a word
    with it; codes ("es-ES", "USD", "mph") and the schema's default are not judged. Also
    `path=value` for each member taken out.
    """
    properties = schema.get("properties", {})
    required = set(schema.get("required", []))
    kept = dict(arguments)
    pruned: list[str] = []

    def unnamed(member: Any, options: list[Any]) -> bool:
        return (
            isinstance(member, str)
            and member in options
            and _judged(member)
            and not _CODE.fullmatch(member)
            and not _option_named(member, sources)
        )

    for name, value in arguments.items():
        prop = properties.get(name, {}) if isinstance(properties, dict) else {}
        if value == prop.get("default"):
            continue
        if name not in required and unnamed(value, prop.get("enum") or []):
            pruned.append(f"{name}={value!r}")
            del kept[name]
            continue
        items = prop.get("items") if isinstance(prop.get("items"), dict) else {}
        if not isinstance(value, list):
            continue
        options = (items or {}).get("enum")
        if not options:
            continue
        out = [i for i, member in enumerate(value) if unnamed(member, options)]
        left = [member for i, member in enumerate(value) if i not in out]
        if not out or (not left and name in required):
            continue
        pruned += [f"{name}[{i}]={value[i]!r}" for i in out]
        if left:
            kept[name] = left
        else:
            del kept[name]
    return kept, pruned


# A code: "es-ES", "en_US", "zh-Hant", "USD", "mph"
_CODE = re.compile(r"[A-Za-z]{2,3}(?:[-_][A-Za-z]{2,4})?")


def _option_named(member: str, sources: Sources) -> bool:
    """The sources name an option: spelled out (`_spelled`) or by a word of it."""
    return _spelled(member, sources.lowered) or bool(
        sources.vocabulary.shared(content_words(member))
    )


def _spelled(member: str, text: str) -> bool:
    """Lower-cased `text` holds `member` as written, or with `_`/`-` read as spaces."""
    spelled = member.lower()
    return spelled in text or re.sub(r"[_-]+", " ", spelled) in text


_ABSENT = object()


def _judged(member: str) -> bool:
    """Whether an enum member is written as a word ("delete", "most_frequent").

    A code ("es", "JPY") is not judged: a request names it in other words ("Spanish", "yen").
    """
    return len(member) >= 4 and not member.isupper()


_EVERY = re.compile(r"\b(both|all|each|every|any)\b")


def _named(value: Any, prop: dict[str, Any], text: str) -> bool:
    """Whether the request (lower-cased `text`) names `value`.

    An enum member written as a word is named when it appears in it (as written, or with
    `_`/`-` read as spaces); a flag or a missing value is never named. Other values are not
    judged here (numbers have `unsupported_values`; free text may be a paraphrase).
    """
    if value is _ABSENT or isinstance(value, bool) or value is None:
        return False
    if isinstance(value, str) and value in prop.get("enum", []) and _judged(value):
        return _spelled(value, text)
    return True


def variants(
    calls: list[dict[str, Any]],
    schemas: dict[str, dict[str, Any]],
    sources: str,
    *,
    request: str | None = None,
    earlier: Sequence[dict[str, Any]] = (),
) -> dict[int, str]:
    """Calls that repeat an earlier call of the same tool except for values nobody named.

    Those values are ones the request never names (another member of an enum, a flipped
    flag, an argument left out): the model fanning out over a parameter's options rather
    than the request asking for several things ("add a todo" → add and delete). The earlier
    call is one before it in `calls`, or one of `earlier`: calls of the turn's earlier
    decisions that ran and returned something (after an empty result, trying another option
    is a fair retry). Values are named when `sources` has them. A `request` (by default
    `sources`) that says "both", "all", "each", "every" or "any" may mean every option, so
    then none is a variant. Index in `calls` → why.
    """
    text = sources.lower()
    found: dict[int, str] = {}
    if _EVERY.search((sources if request is None else request).lower()):
        return found
    for i, call in enumerate(calls):
        arguments = call.get("arguments")
        if not isinstance(arguments, dict):
            continue
        properties = schemas.get(str(call.get("tool")), {}).get("properties", {})
        for before_call in [*earlier, *calls[:i]]:
            before = before_call.get("arguments")
            if before_call.get("tool") != call.get("tool") or not isinstance(before, dict):
                continue
            keys = sorted(set(arguments) | set(before))
            differ = [k for k in keys if arguments.get(k, _ABSENT) != before.get(k, _ABSENT)]
            unnamed = [
                k
                for k in differ
                if not _named(arguments.get(k, _ABSENT), properties.get(k, {}), text)
            ]
            if differ and unnamed == differ:
                shown = ", ".join(f"{k}={arguments.get(k, '(left out)')!r}" for k in differ)
                found[i] = f"only {shown} differs from an earlier call, and nobody asked for it"
                break
    return found


def _asked(arguments: dict[str, Any], properties: Any) -> dict[str, Any]:
    """The arguments less those at their parameter's default: what a call asks for."""
    return {
        k: v
        for k, v in arguments.items()
        if not (isinstance(properties.get(k), dict) and v == properties[k].get("default"))
    }


def _within(value: Any, other: Any) -> bool:
    """Whether `value` asks nothing `other` does not.

    That is: it equals `other`, or it is an object or a list whose every field or item is
    within `other`'s.
    """
    if isinstance(value, dict) and isinstance(other, dict):
        return all(k in other and _within(v, other[k]) for k, v in value.items())
    if isinstance(value, list) and isinstance(other, list):
        return all(any(_within(v, o) for o in other) for v in value)
    return bool(value == other)


def redundant(
    calls: list[dict[str, Any]],
    schemas: dict[str, dict[str, Any]],
    earlier: Sequence[dict[str, Any]] = (),
) -> dict[int, str]:
    """Calls that ask nothing an earlier call of the same tool did not already ask.

    The earlier call is one before it in `calls`, or one of `earlier`; every argument, less
    those at the schema's default, is held by it (the very same call is a loop, not this).
    The small model splits one request into such pieces ("update user 43523's name and
    email" → the update, then the e-mail update again). Index in `calls` → why.
    """
    found: dict[int, str] = {}
    for i, call in enumerate(calls):
        arguments = call.get("arguments")
        if not isinstance(arguments, dict):
            continue
        properties = schemas.get(str(call.get("tool")), {}).get("properties", {})
        asked = _asked(arguments, properties)
        for before in [*earlier, *calls[:i]]:
            held = before.get("arguments")
            # the same call again is a loop, which the loop itself stops
            if (
                before.get("tool") == call.get("tool")
                and held != arguments
                and _within(asked, held)
            ):
                found[i] = "it asks nothing an earlier call did not already ask"
                break
    return found


def leaves(value: Any) -> list[Any]:
    """The values a call's argument holds: itself, or the items and fields within it."""
    if isinstance(value, dict):
        return [leaf for item in value.values() for leaf in leaves(item)]
    if isinstance(value, list):
        return [leaf for item in value for leaf in leaves(item)]
    return [value]
