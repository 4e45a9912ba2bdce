"""PII redaction of exported text, by the charter's own PII guard (presidio).

The export redacts what the guard redacts in replies (the charter's `guards.pii_entities`, or
its identifiers by default: emails, phone numbers, card and bank numbers, ...) and people's
names too: a reply may leave a name in, a training set should not. The charter's own details
stay: its facts and escalation line (the guard allows them), and the persona's name,
organisation and escalation contact.
"""

from __future__ import annotations

from collections.abc import Sequence

from charter.errors import CharterError
from charter.spec.models import CharterSpec

NAMES = "PERSON"
"""presidio's entity for people's names (found by spaCy's named-entity model)."""
CACHED = 50_000
"""Redacted texts kept for reuse at most."""


class RedactionUnavailableError(CharterError):
    """The PII guard cannot be built, so nothing can be exported redacted."""


class Redactor:
    """Replaces each PII span of a text by `[ENTITY]`, as the charter's PII guard does.

    Raises RedactionUnavailableError when the guard cannot be built (the `pii` extra or its
    spaCy model is missing).
    """

    def __init__(self, spec: CharterSpec, entities: Sequence[str] | None = None) -> None:
        """Build the guard for `spec`, finding `entities` (default: the guard's own and names)."""
        try:
            from charter.guards.pii import DEFAULT_ENTITIES, PIIGuard

            if entities is None:
                entities = [*(spec.guards.pii_entities or DEFAULT_ENTITIES), NAMES]
            self._guard = PIIGuard(spec, tuple(dict.fromkeys(entities)))
        except (CharterError, ImportError, OSError, ValueError) as exc:
            raise RedactionUnavailableError(
                f"cannot redact PII, so nothing was written: the PII guard did not build ({exc}). "
                "Install the pii extra (pip install 'charter[pii]'), or pass --no-redact to "
                "write the text as it was said"
            ) from exc
        persona = spec.persona
        own = [persona.name, persona.organisation or ""]
        if persona.escalation is not None:
            own.append(persona.escalation.contact)
        self._own = " ".join(own).casefold()
        self._done: dict[str, str] = {}
        """Texts already redacted: a conversation's history comes back with each of its turns."""

    def _is_own(self, value: str) -> bool:
        """Whether `value` is (part of) the persona's own name, organisation or contact."""
        value = value.strip().casefold()
        return bool(value) and value in self._own

    def __call__(self, text: str) -> str:
        if not text.strip():
            return text
        if text not in self._done:
            if len(self._done) >= CACHED:
                self._done.clear()
            self._done[text] = self._redacted(text)
        return self._done[text]

    def _redacted(self, text: str) -> str:
        spans = [s for s in self._guard.find(text) if not self._is_own(text[s[0] : s[1]])]
        for start, end, entity, _score in reversed(spans):
            text = text[:start] + f"[{entity}]" + text[end:]
        return text
