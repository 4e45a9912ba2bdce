"""Grounding: the figures in a reply must come from somewhere the assistant was given.

When a turn retrieved knowledge, every number in the draft (amounts, percentages, times,
limits, phone numbers) must appear in the retrieved passages, the persona's facts, or the
conversation's user messages. An unsupported figure is the typical invented answer ("your
daily limit is 3,000 EUR"): the critique stage asks for a revision that uses only the
given figures, and if the revision still invents one, the reply is replaced by an honest
"I don't know" (with the persona's hand-off), and the turn counts it.

Numbers are compared normalised ("1,000" = "1000", "9:00" = "9:00"); citation markers
("[1]") and list numbering ("1.") are not figures.

Named entities are held to the same rule: people, organisations, places, products, events
and dates with a month or weekday that spaCy's NER (the packaged `en_core_web_sm`, the PII
guard's model) finds in the reply must have every word in the passages, tool results, the
system prompt (the persona's own name and organisation) or the user's messages. An invented
branch on "Oxford Street" or a "Mr Jones" who will call back is revised like an invented fee.
"""

from __future__ import annotations

import importlib.util
import re
import threading
from functools import lru_cache
from typing import Any

from charter.errors import MissingExtraError
from charter.extras import missing_extra_message, requires_extra
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
    """The figures in `reply` that no source has, sorted; a source's "9:00" also supports "9"."""
    known: set[str] = set()
    for source in sources:
        known |= figures(source)
    # "9:00" supports "9" ("we open at 9"), "15.00" supports "15".
    known |= {part.lstrip("0") or "0" for value in known for part in re.split(r"[:.]", value)}
    return sorted(f for f in figures(reply) if f not in known and f.lstrip("0") not in known)


_NAMED = {"PERSON", "ORG", "GPE", "LOC", "FAC", "PRODUCT", "EVENT", "WORK_OF_ART", "LAW"}
_CALENDAR = re.compile(
    r"\b(?:jan|feb|mar|apr|may|jun|jul|aug|sep|oct|nov|dec)[a-z]*\b"
    r"|\b(?:mon|tues|wednes|thurs|fri|satur|sun)day\b",
    re.IGNORECASE,
)
_FILLER = {"the", "of", "and", "a", "an", "in", "on", "at", "for", "to", "s"}
_nlp: Any = None
_nlp_lock = threading.Lock()


def _ner() -> Any:
    """SpaCy with its tokenizer and NER only (~5 ms a reply), loaded once per process."""
    global _nlp
    with _nlp_lock:
        if _nlp is None:
            from charter.guards.pii import SPACY_MODEL

            what = "the grounding check's named entities"
            with requires_extra(what, "knowledge"):
                import spacy
            if importlib.util.find_spec(SPACY_MODEL) is None:  # the model is a package too
                raise MissingExtraError(missing_extra_message(what, "knowledge", SPACY_MODEL))
            keep = {"tok2vec", "ner"}
            _nlp = spacy.load(SPACY_MODEL)
            for pipe in list(_nlp.pipe_names):
                if pipe not in keep:
                    _nlp.disable_pipe(pipe)
        return _nlp


@lru_cache(maxsize=256)
def named_entities(text: str) -> tuple[str, ...]:
    """The named entities in `text`, in order, once each.

    Names, organisations, places, products, events, and dates that name a month or a weekday
    ("31 May", "Saturday"; not "daily" or "the next day"). Cached: the critique checks a draft
    more than once.
    """
    found: list[str] = []
    for entity in _ner()(text).ents:
        dated = entity.label_ == "DATE" and _CALENDAR.search(entity.text)
        if (entity.label_ in _NAMED or dated) and entity.text not in found:
            found.append(entity.text)
    return tuple(found)


def _words(text: str) -> set[str]:
    return set(re.findall(r"[a-z0-9]+", text.lower())) - _FILLER


def unsupported_entities(reply: str, sources: list[str]) -> list[str]:
    """The named entities of `reply` with a word that no source has."""
    known = set().union(*(_words(s) for s in sources)) if sources else set()
    return [e for e in named_entities(reply) if not _words(e) <= known]


def grounding_checks(sources: list[str], entity_sources: list[str]) -> list[PersonaCheck]:
    """The figures check over `sources`, and the named-entity check over `entity_sources`.

    `entity_sources` are the same plus the system prompt, where the persona's own names are.
    """
    return [
        PersonaCheck(
            "grounded.figures",
            "use only figures (amounts, limits, times, numbers) that appear in the knowledge "
            "passages given for this reply; if they do not cover the question, say you don't "
            "know",
            lambda text: not unsupported(text, sources),
        ),
        PersonaCheck(
            "grounded.entities",
            "name only people, places, organisations, products and dates that appear in the "
            "knowledge passages or tool results given for this reply",
            lambda text: not unsupported_entities(text, entity_sources),
        ),
    ]


def dont_know(charter: CharterSpec) -> str:
    """The honest "I don't know" that replaces an ungrounded reply, with the persona's hand-off."""
    persona = charter.persona
    text = "I'm not sure about that, and I'd rather not guess."
    escalation = persona.escalation
    if escalation is not None:
        contact = escalation.contact[:1].upper() + escalation.contact[1:]
        text += f" {contact} can help" + (f": {escalation.how}." if escalation.how else ".")
    return text
