"""Persona checks that run in code, compiled from style rules and checked principles.

They cover word limits, required openings and sign-offs, forbidden and required phrases, and are
compiled from the persona's style rules and from principles that carry a programmatic `check`. The
critique stage uses them to find violations (and to repair the ones a repair exists for); the drift
monitor uses them to score every reply.

Matching is case-insensitive and ignores surrounding punctuation and whitespace, so "Yes,"
passes a "starts with Yes" rule (the literal checkers of the persona-drift set fail on it).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, replace

from charter import plugins
from charter.persona.style import calm, exclaims, has_emoji, without_emoji
from charter.plugins import CheckFactory
from charter.spec.models import CharterSpec, ProgrammaticCheck


@dataclass(frozen=True)
class PersonaCheck:
    """A persona check: `passes(reply)` says whether a reply keeps the rule.

    `description` finishes the sentence "The reply ..." ("must have at most 80 words"); a revision
    request names the violation with it (`problem`).
    """

    id: str
    description: str
    passes: Callable[[str], bool]
    repair: Callable[[str], str] | None = None
    """A deterministic fix, when one exists (cut to length, add the sign-off)."""
    rule: str = ""
    """The principle's own words, when the check comes from one: a revision request quotes
    them, since 'must contain "printer"' alone does not tell a model why."""

    def problem(self) -> str:
        """How a revision request names this violation."""
        return (
            f"{self.id}: {self.rule} (The reply {self.description}.)"
            if self.rule
            else f"{self.id}: {self.description}"
        )


def _norm(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip().lower()


def _strip_edges(text: str) -> str:
    return _norm(text).strip(" \t\n.,;:!?\"'()[]*_-")


def words(text: str) -> int:
    """The number of whitespace-separated words in `text`."""
    return len(text.split())


def cut_to_words(text: str, limit: int) -> str:
    """The longest run of whole sentences within `limit` words (or the first `limit` words)."""
    sentences = re.split(r"(?<=[.!?])\s+", text.strip())
    kept: list[str] = []
    for sentence in sentences:
        if words(" ".join([*kept, sentence])) > limit:
            break
        kept.append(sentence)
    if kept:
        return " ".join(kept)
    return " ".join(text.split()[:limit]).rstrip(",;:") + "…"


def _max_words(check_id: str, limit: int, reserve: int = 0) -> PersonaCheck:
    return PersonaCheck(
        check_id,
        f"must have at most {limit} words",
        lambda text: words(text) <= limit,
        lambda text: cut_to_words(text, max(1, limit - reserve)),
    )


def _starts_with(check_id: str, opening: str) -> PersonaCheck:
    return PersonaCheck(
        check_id,
        f"must start with {opening!r}",
        lambda text: _strip_edges(text).startswith(_strip_edges(opening)),
        lambda text: f"{opening} {text}",
    )


def _ends_with(check_id: str, closing: str) -> PersonaCheck:
    return PersonaCheck(
        check_id,
        f"must end with {closing!r}",
        lambda text: _strip_edges(text).endswith(_strip_edges(closing)),
        lambda text: f"{text.rstrip()}\n{closing}",
    )


def _forbidden(check_id: str, phrases: list[str]) -> PersonaCheck:
    lowered = [_norm(p) for p in phrases]
    return PersonaCheck(
        check_id,
        "must not contain " + " or ".join(f'"{p}"' for p in phrases),
        lambda text: not any(p in _norm(text) for p in lowered),
    )


def _required_any(check_id: str, phrases: list[str]) -> PersonaCheck:
    lowered = [_norm(p) for p in phrases]
    return PersonaCheck(
        check_id,
        "must contain " + " or ".join(f'"{p}"' for p in phrases),
        lambda text: any(p in _norm(text) for p in lowered),
    )


def _no_exclamation_marks(check_id: str) -> PersonaCheck:
    return PersonaCheck(
        check_id,
        "must not use exclamation marks (quotes and code aside)",
        lambda text: not exclaims(text),
        calm,
    )


def _no_emoji(check_id: str) -> PersonaCheck:
    return PersonaCheck(
        check_id,
        "must not use emoji or emoticons (quotes and code aside)",
        lambda text: not has_emoji(text),
        without_emoji,
    )


def _from_check(prefix: str, check: ProgrammaticCheck, charter: CharterSpec) -> list[PersonaCheck]:
    """The checks a `check` mapping names, in its order (Charter's own keys first).

    Each is built by the check registered under its key (`charter.checks`) and given the id
    `<prefix>.<key>`.
    """
    named = {
        **{key: getattr(check, key) for key in type(check).model_fields},
        **(check.model_extra or {}),
    }
    out: list[PersonaCheck] = []
    for key, value in named.items():
        if key in type(check).model_fields and not value:
            continue  # one of Charter's own checks, not set
        factory = plugins.checks.get(key)
        built = factory.build(plugins.options_of(factory.options, value), charter)
        out.append(replace(built, id=f"{prefix}.{key}"))
    return out


def persona_checks(charter: CharterSpec) -> list[PersonaCheck]:
    """The charter's persona checks: its style rules, then each principle's `check`.

    Style checks have the ids `style.<key>`; a principle's have `<principle id>.<key>` and carry the
    principle's words as `rule`.
    """
    style = charter.persona.style
    checks = _from_check(
        "style",
        ProgrammaticCheck(
            max_words=style.max_words,
            starts_with=style.starts_with,
            ends_with=style.sign_off,
            forbidden=list(style.forbidden_phrases),
            no_exclamation_marks=style.no_exclamation_marks,
            no_emoji=style.no_emoji,
        ),
        charter,
    )
    for principle in charter.constitution:
        if principle.check is not None:
            checks += [
                replace(c, rule=principle.text.strip())
                for c in _from_check(principle.id, principle.check, charter)
            ]
    return checks


# Charter's own checks (pyproject.toml: [project.entry-points."charter.checks"]): the keys of
# a principle's `check` (and the persona's style rules).


def _sign_off_words(charter: CharterSpec) -> int:
    return words(charter.persona.style.sign_off or "")


MAX_WORDS = CheckFactory(
    "max_words", lambda limit, charter: _max_words("", limit, _sign_off_words(charter)), int
)
STARTS_WITH = CheckFactory("starts_with", lambda text, charter: _starts_with("", text), str)
ENDS_WITH = CheckFactory("ends_with", lambda text, charter: _ends_with("", text), str)
FORBIDDEN = CheckFactory("forbidden", lambda texts, charter: _forbidden("", texts), list[str])
REQUIRED_ANY = CheckFactory(
    "required_any", lambda texts, charter: _required_any("", texts), list[str]
)
NO_EXCLAMATION_MARKS = CheckFactory(
    "no_exclamation_marks", lambda on, charter: _no_exclamation_marks(""), bool
)
NO_EMOJI = CheckFactory("no_emoji", lambda on, charter: _no_emoji(""), bool)


def failed(checks: list[PersonaCheck], text: str) -> list[PersonaCheck]:
    """The checks `text` does not pass, in order."""
    return [c for c in checks if not c.passes(text)]


def repair(checks: list[PersonaCheck], text: str) -> str:
    """Apply the deterministic repairs, length first so a sign-off added after survives."""
    ordered = sorted(checks, key=lambda c: not c.id.endswith("max_words"))
    for check in ordered:
        if check.repair is not None and not check.passes(text):
            text = check.repair(text)
    return text
