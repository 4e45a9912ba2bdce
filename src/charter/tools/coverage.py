"""What the request names that no call has used: the items a small model leaves out.

Asked for "the BMI of John (85 kg, 1.8 m), Sarah (60 kg, 1.65 m) and Mike (75 kg, 1.7 m)",
the 0.5B model makes two calls and stops. After a decision's calls, `unused` lists the values
of the user's request that none of the turn's calls carries, of the kinds the calls did use:

- numbers, when a call used one of the request's numbers (a percentage either way: "5%" is
  used by 0.05 or 5; other numbers only as written: 0.3 does not use "30"). Numbers glued
  to letters ("3x^2", "rs123", "v2") are not values.
- quoted text ('rs7891011'), when a call used one of the request's quoted texts;
- names in a list with one a call used ("Microsoft and Apple", "Paris, Rome or Oslo"): a
  list joins capitalised names with "and", "or", "&" or commas, at least one of them a
  word, so "Paris, France" is not one. Month and day names are left out (dates are
  rewritten: "July 10" → "2022-07-10").

A value is used when a call's argument holds it (text compared without case; either may
hold the other). The tool loop (`tool_limits.remind_unused`) tells the model what is left
after a decision's calls ("no call so far used 75, 1.7 from the request"), and again only
while the list shrinks; the model makes the calls, each checked like any other. Nothing is
called on its behalf. On BFCL's development half, 6 of 12 runs that stopped short (the
0.5B model, 40 questions a category) left values out that this finds, and the correct
answers to 17 of 529 development calling questions leave one out (the reminder's cost:
see docs/tools.md).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from charter.tools.provenance import given, leaves, numbers_in, thousands

if TYPE_CHECKING:
    from collections.abc import Collection

_NUMBER = re.compile(r"(?<![\w.^/-])-?\d+(?:[.,]\d+)*%?(?![\w^])")
_QUOTED = re.compile(r"(?<!\w)'(\S[^'\n]{0,78}\S)'(?!\w)|\"(\S[^\"\n]{0,78}\S)\"")
_NAME = re.compile(r"\b[A-Z][A-Za-z]+(?:[ -][A-Z][A-Za-z]+)*")
_LIST_GLUE = re.compile(r"\s*(?:,\s*(?:and|or|&)?|and|or|&)\s*")
_WORD_GLUE = re.compile(r"\b(?:and|or)\b|&")
_SENTENCE_START = re.compile(r"(?:^|[.?!:;]\s+|\n)\s*[\"'(]?")
_CALENDAR = frozenset(
    "january february march april may june july august september october november december "
    "monday tuesday wednesday thursday friday saturday sunday".split()
)


@dataclass(frozen=True)
class Value:
    """A value of the request: its kind, its text and where it is in the request (start, end)."""

    kind: str
    """"number", "quoted" or "name"."""
    text: str
    start: int
    end: int


def request_values(text: str) -> list[Value]:
    """The numbers, quoted texts and capitalised names of `text`, in order.

    A sentence's first word is not a name ("Calculate", "What"), nor a month or day name.
    """
    found: list[Value] = []
    for m in _NUMBER.finditer(text):
        parts = m.group(0).split(",")
        if not thousands(m.group(0)):
            # "1,5 and 10 years": a list written without spaces, not one thousand-number
            at = m.start()
            for part in parts:
                found.append(Value("number", part, at, at + len(part)))
                at += len(part) + 1
        else:
            found.append(Value("number", m.group(0), m.start(), m.end()))
    for m in _QUOTED.finditer(text):
        group = 1 if m.group(1) is not None else 2
        found.append(Value("quoted", m.group(group), m.start(group), m.end(group)))
    starts = {m.end() for m in _SENTENCE_START.finditer(text)}
    for m in _NAME.finditer(text):
        start, name = m.start(), m.group(0)
        if start in starts:  # "Can you ..." / "Tell me about New York": drop the first word
            first, _, rest = name.partition(" ")
            start, name = start + len(first) + 1, rest
        if len(name) >= 3 and name.lower() not in _CALENDAR:
            found.append(Value("name", name, start, start + len(name)))
    return sorted(found, key=lambda v: v.start)


def _used(value: Value, held: list[Any]) -> bool:
    if value.kind == "number":
        raw = value.text.rstrip("%")
        known = numbers_in(raw)
        for leaf in held:
            if isinstance(leaf, bool):
                continue
            if isinstance(leaf, (int, float)) and (
                float(leaf) in known or (raw != value.text and given(float(leaf), known))
            ):
                return True
            if isinstance(leaf, str) and raw.lstrip("-") in leaf:
                return True
        return False
    wanted = value.text.lower()
    for leaf in held:
        if isinstance(leaf, str) and len(leaf) >= 2:
            text = leaf.lower()
            if wanted in text or (len(text) >= 3 and text in wanted):
                return True
    return False


def _lists(text: str, names: list[Value]) -> list[list[Value]]:
    """Runs of names joined by list glue, with at least one "and"/"or"/"&"."""
    groups: list[list[Value]] = []
    run: list[Value] = []
    worded = False
    for name in names:
        glue = text[run[-1].end : name.start] if run else ""
        if run and _LIST_GLUE.fullmatch(glue):
            run.append(name)
            worded = worded or bool(_WORD_GLUE.search(glue))
            continue
        if len(run) > 1 and worded:
            groups.append(run)
        run, worded = [name], False
    if len(run) > 1 and worded:
        groups.append(run)
    return groups


def unused(request: str, calls: list[dict[str, Any]], tools: Collection[str] = ()) -> list[str]:
    """The values of `request` that no call in `calls` holds, each once, in the request's order.

    Calls are {"tool"/"name", "arguments"}; only values of a kind the calls used count (see the
    module doc). The names of `tools` are not values ("use the 'update_user' function").
    """
    held = [leaf for call in calls for leaf in leaves(call.get("arguments"))]
    values = [v for v in request_values(request) if v.text not in tools]
    used = {v for v in values if _used(v, held)}
    kinds = {v.kind for v in used}
    left: list[Value] = [v for v in values if v.kind in kinds - {"name"} and v not in used]
    for group in _lists(request, [v for v in values if v.kind == "name"]):
        if any(v in used for v in group):
            left += [v for v in group if v not in used]
    out: list[str] = []
    for value in sorted(left, key=lambda v: v.start):
        if value.text not in out:
            out.append(value.text)
    return out
