"""Grounding: the figures in a reply must come from somewhere the assistant was given.

When a turn retrieved knowledge, every number in the draft (amounts, percentages, times,
limits, phone numbers) must appear in the retrieved passages, the persona's facts, or the
conversation's user messages. An unsupported figure is the typical invented answer ("your
daily limit is 3,000 EUR"): the critique stage asks for a revision that uses only the
given figures, and if the revision still invents one, the reply is replaced by an honest
"I don't know" (with the persona's hand-off), and the turn counts it.

Numbers are compared normalised ("1,000" = "1000", "9:00" = "9:00"); citation markers
("[1]") and list numbering ("1.") are not figures.
"""

from __future__ import annotations

import re

from charter.persona.checks import PersonaCheck
from charter.spec.models import CharterSpec

_NUMBER = re.compile(r"(?<![\w\[])(\d+(?:[.,:]\d+)*)(?![\w\]])")
_LIST_ITEM = re.compile(r"^\s*\d+[.)]\s", re.MULTILINE)
_CITATION = re.compile(r"\[\d{1,2}\]")


def figures(text: str) -> set[str]:
    """The numbers in `text`, normalised (thousands separators dropped, trailing .0 kept)."""
    cleaned = _CITATION.sub(" ", _LIST_ITEM.sub(" ", text))
    out = set()
    for raw in _NUMBER.findall(cleaned):
        value = re.sub(r"(?<=\d),(?=\d{3}\b)", "", raw).rstrip(".,:")
        if value:
            out.add(value)
    return out


def unsupported(reply: str, sources: list[str]) -> list[str]:
    known: set[str] = set()
    for source in sources:
        known |= figures(source)
    # "9:00" supports "9" ("we open at 9"), "15.00" supports "15".
    known |= {part.lstrip("0") or "0" for value in known for part in re.split(r"[:.]", value)}
    return sorted(f for f in figures(reply) if f not in known and f.lstrip("0") not in known)


def grounding_check(sources: list[str]) -> PersonaCheck:
    return PersonaCheck(
        "grounded.figures",
        "use only figures (amounts, limits, times, numbers) that appear in the knowledge "
        "passages given for this reply; if they do not cover the question, say you don't know",
        lambda text: not unsupported(text, sources),
    )


def dont_know(charter: CharterSpec) -> str:
    persona = charter.persona
    text = "I'm not sure about that, and I'd rather not guess."
    escalation = persona.escalation
    if escalation is not None:
        contact = escalation.contact[:1].upper() + escalation.contact[1:]
        text += f" {contact} can help" + (f": {escalation.how}." if escalation.how else ".")
    return text
