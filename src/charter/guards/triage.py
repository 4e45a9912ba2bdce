"""Which windows of a long text the injection classifier embeds: a bag-of-words triage.

A MiniLM window of 128 tokens costs ~20 ms on this 2-core machine, so a pasted document of
four windows cost 60-100 ms, every time, for benign text. The triage is a linear model over
word unigrams and bigrams (~0.05 ms a window), trained on the same windows and labels as
the classifier. It reads every window of the text; the classifier then embeds the first
window and, only if that does not already block, the window the triage finds most suspicious
if it reaches the triage's floor, then up to two more that the triage itself scores as
attacks (>= 0.5), one at a time until one blocks. The floor is calibrated on the
validation split: the score that 99% of validation attack windows reach.

Reading every window also closes a gap: without the triage only the first three windows and
the last were scored, so an instruction in the middle of a long document went unread.
"""

from __future__ import annotations

import itertools
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from charter.extras import requires_extra

_TOKEN = re.compile(r"[a-z0-9']+")


def features(text: str) -> set[str]:
    """Lower-cased word unigrams and bigrams (a bigram is two words joined by a space)."""
    words = _TOKEN.findall(text.lower())
    return {*words, *(f"{a} {b}" for a, b in itertools.pairwise(words))}


@dataclass(frozen=True)
class WindowTriage:
    """The triage's linear model over word features; `score` is a window's attack probability."""

    weights: dict[str, float]
    intercept: float
    floor: float
    """Windows scoring below this are never embedded."""
    meta: dict[str, Any] = field(default_factory=dict)

    def score(self, window: str) -> float:
        logit = self.intercept + sum(self.weights.get(f, 0.0) for f in features(window))
        return 1.0 / (1.0 + math.exp(-max(-50.0, min(50.0, logit))))

    def pick(self, candidates: Sequence[str], budget: int = 3) -> list[str]:
        """The windows worth embedding, most suspicious first.

        They are the top one if it reaches the floor, then, up to `budget` in all, those the
        triage itself calls attacks (score >= 0.5).
        """
        scored = sorted(
            ((self.score(c), i) for i, c in enumerate(candidates)), key=lambda p: (-p[0], p[1])
        )
        return [
            candidates[i]
            for rank, (s, i) in enumerate(scored[:budget])
            if s >= (self.floor if rank == 0 else max(self.floor, 0.5))
        ]

    def to_dict(self) -> dict[str, Any]:
        return {
            "intercept": round(self.intercept, 6),
            "floor": round(self.floor, 6),
            "meta": self.meta,
            "weights": {k: round(v, 4) for k, v in sorted(self.weights.items())},
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> WindowTriage:
        return cls(
            weights={str(k): float(v) for k, v in data["weights"].items()},
            intercept=float(data["intercept"]),
            floor=float(data["floor"]),
            meta=dict(data.get("meta", {})),
        )


def fit_triage(
    windows: Sequence[str], labels: Sequence[int], *, c: float = 0.3, keep: int = 3000
) -> WindowTriage:
    """Fit on training windows (scikit-learn, training time only).

    Only the `keep` largest weights are kept; the floor is set later by `calibrate_floor`.
    """
    with requires_extra("retraining the injection classifier's triage", "train"):
        import numpy as np
        from sklearn.feature_extraction.text import CountVectorizer
        from sklearn.linear_model import LogisticRegression

    vectorizer = CountVectorizer(analyzer=lambda t: sorted(features(t)), min_df=3, binary=True)
    matrix = vectorizer.fit_transform(list(windows))
    model = LogisticRegression(C=c, max_iter=3000, class_weight="balanced")
    model.fit(matrix, np.asarray(labels))
    names = vectorizer.get_feature_names_out()
    coef = model.coef_[0]
    kept = np.argsort(-np.abs(coef), kind="stable")[:keep]
    return WindowTriage(
        weights={str(names[i]): float(coef[i]) for i in kept},
        intercept=float(model.intercept_[0]),
        floor=0.0,
        meta={"C": c, "features": f"word 1-2 grams, min_df 3, {keep} largest weights kept"},
    )


def calibrate_floor(
    triage: WindowTriage, attack_windows: Sequence[str], recall: float = 0.99
) -> WindowTriage:
    """The floor that `recall` of the given (validation) attack windows reach."""
    scores = sorted(triage.score(w) for w in attack_windows)
    if not scores:
        return triage
    index = min(len(scores) - 1, max(0, math.floor((1 - recall) * len(scores))))
    meta = {**triage.meta, "floor": f"{recall:.0%} of {len(scores)} validation attack windows"}
    return WindowTriage(triage.weights, triage.intercept, scores[index], meta)
