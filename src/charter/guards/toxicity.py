"""Toxic output: a linear profanity/abuse model (alt-profanity-check) plus threat rules.

The linear model catches insults and slurs but misses threats phrased without swear words,
so a few threat patterns back it up. A toxic reply is replaced by the persona's refusal.
"""

from __future__ import annotations

import re
from typing import Any

from charter.guards.base import GuardVerdict, Subject, allow, block
from charter.guards.embedder import GuardDependencyError

THRESHOLD = 0.8
_THREATS = re.compile(
    r"\b(?:i(?:'ll| will| am going to|'m going to)|we(?:'ll| will))\s+(?:kill|hurt|find|destroy|"
    r"beat|shoot|stab)\s+(?:you|your)\b|\b(?:kill|hurt)\s+yourself\b|\byou\s+(?:should|deserve\s+to)"
    r"\s+die\b",
    re.IGNORECASE,
)


class ToxicityGuard:
    name = "toxicity"
    cost = 3

    def __init__(self) -> None:
        try:
            from profanity_check import predict_prob
        except ImportError as exc:
            raise GuardDependencyError(
                "the toxicity guard needs the guard extras: pip install -e '.[guards]'"
            ) from exc
        self._predict: Any = predict_prob

    def score(self, text: str) -> float:
        return float(self._predict([text])[0])

    def check(self, subject: Subject) -> GuardVerdict:
        threat = _THREATS.search(subject.text)
        if threat:
            return block(self.name, 1.0, f"threat: {threat.group(0)!r}", check="threat")
        score = self.score(subject.text)
        if score >= THRESHOLD:
            return block(self.name, score, "abusive or profane language", check="classifier")
        return allow(self.name, score)
