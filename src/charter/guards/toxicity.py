"""Toxic output: a linear profanity/abuse model (alt-profanity-check) plus threat rules.

The linear model catches insults and slurs but misses threats phrased without swear words,
so a few threat patterns back it up. A toxic reply is replaced by the persona's refusal.

The model is alt-profanity-check's own (a TF-IDF vectoriser and five sigmoid-calibrated
linear SVMs), evaluated here as one weighted sum over the reply's words: the same
probability as its `predict_prob` (tested to 1e-9), at ~0.05 ms instead of ~7 ms a reply,
which went to scikit-learn's per-call input checks (measured by bench/gateway).
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Callable
from typing import Any

from charter.guards.base import (
    GuardDependencyError,
    GuardVerdict,
    Subject,
    allow,
    block,
    missing_extra,
)

THRESHOLD = 0.8
_THREATS = re.compile(
    r"\b(?:i(?:'ll| will| am going to|'m going to)|we(?:'ll| will))\s+(?:kill|hurt|find|destroy|"
    r"beat|shoot|stab)\s+(?:you|your)\b|\b(?:kill|hurt)\s+yourself\b|\byou\s+(?:should|deserve\s+to)"
    r"\s+die\b",
    re.IGNORECASE,
)


class LinearProfanity:
    """P(profane) of alt-profanity-check's calibrated model, computed without scikit-learn.

    For the words w of the text (the vectoriser's own analyser: lowercase, stop words,
    tokens), x_w = tf_w * idf_w / ||tf * idf||; each fold k scores d_k = sum x_w * coef_kw +
    intercept_k and calibrates p_k = 1 / (1 + exp(a_k * d_k + b_k)); the result is the mean
    p_k, as `CalibratedClassifierCV.predict_proba` computes it.
    """

    def __init__(self, vectorizer: Any, model: Any) -> None:
        folds = model.calibrated_classifiers_
        if list(model.classes_) != [0, 1] or any(len(f.calibrators) != 1 for f in folds):
            raise GuardDependencyError("unexpected alt-profanity-check model layout")
        self._analyse: Callable[[str], list[str]] = vectorizer.build_analyzer()
        idf = vectorizer.idf_
        coefs = [f.estimator.coef_.ravel() for f in folds]
        self._terms: dict[str, tuple[float, tuple[float, ...]]] = {
            term: (float(idf[i]), tuple(float(c[i]) for c in coefs))
            for term, i in vectorizer.vocabulary_.items()
        }
        self._folds = [
            (float(f.estimator.intercept_[0]), float(cal.a_), float(cal.b_))
            for f in folds
            for cal in f.calibrators
        ]

    def __call__(self, text: str) -> float:
        weights: list[tuple[float, tuple[float, ...]]] = []
        for term, count in Counter(self._analyse(text)).items():
            known = self._terms.get(term)
            if known is not None:
                weights.append((count * known[0], known[1]))
        norm = math.sqrt(sum(w * w for w, _ in weights)) or 1.0
        total = 0.0
        for k, (intercept, a, b) in enumerate(self._folds):
            d = sum(w * coef[k] for w, coef in weights) / norm + intercept
            total += 1.0 / (1.0 + math.exp(a * d + b))
        return total / len(self._folds)


class ToxicityGuard:
    """Blocks a reply with a threat, or one alt-profanity-check scores at THRESHOLD or above.

    Raises GuardDependencyError when the `guards` extra is missing.
    """

    name = "toxicity"
    cost = 3

    def __init__(self) -> None:
        try:
            from profanity_check import profanity_check
        except ImportError as exc:
            raise missing_extra("the toxicity guard", "guards", exc.name) from exc
        self._score = LinearProfanity(profanity_check.vectorizer, profanity_check.model)

    def score(self, text: str) -> float:
        return self._score(text)

    def check(self, subject: Subject) -> GuardVerdict:
        threat = _THREATS.search(subject.text)
        if threat:
            return block(self.name, 1.0, f"threat: {threat.group(0)!r}", check="threat")
        score = self.score(subject.text)
        if score >= THRESHOLD:
            return block(self.name, score, "abusive or profane language", check="classifier")
        return allow(self.name, score)
