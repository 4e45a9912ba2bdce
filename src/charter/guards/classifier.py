"""The injection/jailbreak classifier: logistic regression on MiniLM window embeddings.

Trained by `charter guard train` (see train.py) on the public datasets, with the split and
the calibration written into the weights file itself. A text's score is the highest window
score, so a payload hidden anywhere in a long document counts. At run time the window
triage (triage.py) chooses which windows past the first are worth embedding.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from charter.errors import CharterError
from charter.guards.anchors import Anchors
from charter.guards.embedder import MAX_WINDOWS, Embedder, read_weights, windows
from charter.guards.triage import WindowTriage

WEIGHTS_FILE = "injection_classifier.json"


@dataclass(frozen=True)
class ClassifierWeights:
    """The injection classifier's fitted regression, thresholds and window triage.

    `load` reads them from the packaged weights file or `path` (raising CharterError when it
    cannot); `to_json` writes them back.
    """

    coef: np.ndarray[Any, np.dtype[np.float32]]
    intercept: float
    threshold: float
    """Scores at or above this block (calibrated on the validation split)."""
    uncertain_below: float
    """Scores in [uncertain_below, threshold) are the uncertain band the LLM judge may see."""
    meta: dict[str, Any]
    triage: WindowTriage | None = None
    """Chooses the windows past the first to embed; without it, all of them (up to four)."""
    anchors: Anchors | None = None
    """With anchors, the regression reads a window's similarities to them (anchors.py);
    without, the embedding itself (weights trained before anchors)."""

    def features(self, vectors: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
        return vectors if self.anchors is None else self.anchors.features(vectors)

    @classmethod
    def load(cls, path: str | Path | None = None) -> ClassifierWeights:
        try:
            data = read_weights(WEIGHTS_FILE, path)
            return cls(
                coef=np.asarray(data["coef"], dtype=np.float32),
                intercept=float(data["intercept"]),
                threshold=float(data["threshold"]),
                uncertain_below=float(data["uncertain_below"]),
                meta=dict(data.get("meta", {})),
                triage=WindowTriage.from_dict(data["triage"]) if "triage" in data else None,
                anchors=(
                    Anchors.from_list(data["anchors"], per_kind=True) if "anchors" in data else None
                ),
            )
        except (OSError, KeyError, ValueError, TypeError, AttributeError) as exc:
            raise CharterError(
                f"cannot load the injection classifier weights ({exc}); "
                "retrain with `charter guard train`"
            ) from exc

    def to_json(self) -> str:
        data: dict[str, Any] = {
            "coef": [round(float(x), 6) for x in self.coef],
            "intercept": round(self.intercept, 6),
            "threshold": round(self.threshold, 6),
            "uncertain_below": round(self.uncertain_below, 6),
            "meta": self.meta,
        }
        if self.triage is not None:
            data["triage"] = self.triage.to_dict()
        if self.anchors is not None:
            data["anchors"] = self.anchors.to_list()
        return json.dumps(data, indent=1)


class InjectionClassifier:
    """Injection/jailbreak scores (0..1) for texts: the highest over each text's windows."""

    def __init__(self, embedder: Embedder, weights: ClassifierWeights | None = None) -> None:
        self.embedder = embedder
        self.weights = weights or ClassifierWeights.load()

    def window_scores(self, texts: list[str]) -> np.ndarray[Any, np.dtype[np.float64]]:
        features = self.weights.features(self.embedder.embed(texts))
        logits = features @ self.weights.coef + self.weights.intercept
        return np.asarray(1.0 / (1.0 + np.exp(-logits)), dtype=np.float64)

    def score(self, text: str) -> float:
        return self.score_many([text])[0]

    def highest(self, texts: list[str], *, stop_at: float) -> float:
        """The highest score over the windows worth embedding, or the first >= `stop_at`.

        The first window of every text is scored first (one batched call). Only if none
        reaches `stop_at` are more windows scored (~20 ms each on 2 cores): with a triage,
        those it picks over every window of the texts, one at a time until one reaches
        `stop_at`; without one, all the training windows (first three and last).
        """
        triage = self.weights.triage
        split = [windows(text, None if triage else MAX_WINDOWS) for text in texts]
        first = [w[0] for w in split]
        rest = [piece for w in split for piece in w[1:] if piece not in first]
        best = float(self.window_scores(first).max()) if first else 0.0
        if best >= stop_at or not rest:
            return best
        if triage is None:
            return max(best, float(self.window_scores(rest).max()))
        for window in triage.pick(list(dict.fromkeys(rest))):
            best = max(best, float(self.window_scores([window])[0]))
            if best >= stop_at:
                break
        return best

    def score_many(self, texts: list[str]) -> list[float]:
        """One score per text: the max over its windows (one batched embedding call)."""
        owners: list[int] = []
        pieces: list[str] = []
        for index, text in enumerate(texts):
            for window in windows(text):
                owners.append(index)
                pieces.append(window)
        scores = self.window_scores(pieces) if pieces else np.zeros(0)
        best = [0.0] * len(texts)
        for owner, value in zip(owners, scores, strict=True):
            best[owner] = max(best[owner], float(value))
        return best
