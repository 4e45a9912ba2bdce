"""The `harm` guard: does a request ask for seriously harmful help, does a reply give it?

Input side: how close the message is to descriptions of seriously harmful requests. Each
window's MiniLM embedding is compared with 120 hazard anchors (third-person descriptions,
eight per category, datasets/own/hazard_anchors.jsonl); a logistic regression reads the five
highest similarities (the highest window counts). Learning from five similarities instead of
384 embedding dimensions is what carries over to harmful-request sets it never saw: fitted
on one public set and scored on the other, it flags 82% of AdvBench against 63% for the
same regression on the embedding (docs/design/008-source-held-out.md). Output side: logistic
regression on the request's and each reply window's anchor similarities and the window's
similarity to plain refusals, so that a refusal of a harmful request passes and a reply
that carries the harmful help does not. A reply whose opening declines (the eval's refusal
detector) is judged on what follows its opening only, and passes if little follows. A flagged text's
category is that of its nearest anchor; a charter may allow categories
(`guards.harm.allow_categories`).

Trained by `charter guard train-harm` (guards/harm_train.py) on public harmful-request sets
against real user traffic and requests that sound harmful and are not; the three
sensitivities are thresholds set on out-of-source scores (each training source scored by a
model trained without it). Measured figures: docs/guards.md.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast, get_args

import numpy as np

from charter.errors import CharterError
from charter.eval.refusal import detect_refusal, opening
from charter.guards.anchors import Anchors
from charter.guards.base import Direction, GuardVerdict, Subject, allow, block
from charter.guards.embedder import Embedder, read_weights, windows
from charter.spec.models import Harm, Hazard

WEIGHTS_FILE = "harm_classifier.json"


@dataclass(frozen=True)
class Linear:
    """A logistic regression: `scores` gives each feature row's probability (0..1)."""

    coef: np.ndarray[Any, np.dtype[np.float32]]
    intercept: float

    def scores(self, features: np.ndarray[Any, Any]) -> np.ndarray[Any, np.dtype[np.float64]]:
        logits = features @ self.coef + self.intercept
        return np.asarray(1.0 / (1.0 + np.exp(-logits)), dtype=np.float64)

    def to_dict(self) -> dict[str, Any]:
        return {"coef": [round(float(x), 6) for x in self.coef], "intercept": self.intercept}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Linear:
        return cls(np.asarray(data["coef"], dtype=np.float32), float(data["intercept"]))


@dataclass(frozen=True)
class HarmWeights:
    """The harm classifier's request and reply regressions, thresholds and hazard anchors.

    `load` reads them from the packaged weights file or `path` (raising CharterError when it
    cannot); `to_json` writes them back.
    """

    request: Linear
    reply: Linear
    thresholds: dict[str, dict[str, float]]
    """{"input" | "output": {"strict" | "balanced" | "permissive": threshold}}."""
    anchors: Anchors
    """The hazard anchors (kind = category), embedded."""
    meta: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def load(cls, path: str | Path | None = None) -> HarmWeights:
        try:
            data = read_weights(WEIGHTS_FILE, path)
            return cls(
                Linear.from_dict(data["request"]),
                Linear.from_dict(data["reply"]),
                {k: {s: float(t) for s, t in v.items()} for k, v in data["thresholds"].items()},
                Anchors.from_list(data["anchors"]),
                dict(data.get("meta", {})),
            )
        except (OSError, KeyError, ValueError, TypeError) as exc:
            raise CharterError(
                f"cannot load the harm classifier weights ({exc}); "
                "retrain with `charter guard train-harm`"
            ) from exc

    def to_json(self) -> str:
        return json.dumps(
            {
                "request": self.request.to_dict(),
                "reply": self.reply.to_dict(),
                "thresholds": self.thresholds,
                "anchors": self.anchors.to_list(),
                "meta": self.meta,
            },
            indent=1,
        )


_HAZARDS = frozenset(get_args(Hazard))
REFUSALS = (
    "I'm sorry, but I can't help with that.",
    "I can't assist with that request.",
    "Sorry, I won't provide instructions for that. It could cause serious harm.",
    "I cannot help with this. If you are in danger, please contact local emergency services.",
    "That is illegal and dangerous, so I will not help with it.",
    "I’m not able to do that, but I can help with something else.",
)
"""Plain refusals: the output side reads a reply's similarity to them, and learns that a
refusal of a harmful request is not harmful help (each is paired with every harmful
training request)."""


class HarmClassifier:
    """Harm scores (0..1) for requests and replies, and the hazard category of a text."""

    def __init__(self, embedder: Embedder, weights: HarmWeights) -> None:
        self.embedder = embedder
        self.weights = weights
        self.anchors = weights.anchors
        self._refusals: np.ndarray[Any, Any] | None = None

    def request_scores(self, vectors: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
        """Scores of already embedded windows."""
        return self.weights.request.scores(self.anchors.features(vectors))

    def request_score(self, text: str) -> float:
        """The highest window score of `text`."""
        return float(self.request_scores(self.embedder.embed(windows(text))).max())

    def reply_features(
        self, asked: np.ndarray[Any, Any], given: np.ndarray[Any, Any]
    ) -> np.ndarray[Any, Any]:
        """The reply regression's features, one row per reply window.

        Each row holds the request's and the window's five highest anchor similarities, and the
        window's similarity to plain refusals.
        """
        if self._refusals is None:
            self._refusals = self.embedder.embed(list(REFUSALS))
        refusals = self._refusals
        request = self.anchors.features(asked[None, :])
        return np.hstack(
            [
                np.repeat(request, len(given), axis=0),
                self.anchors.features(given),
                (given @ refusals.T).max(axis=1, keepdims=True),
            ]
        )

    def reply_score(self, request: str, reply: str) -> float:
        """How much `reply` gives the harmful help `request` asks for (its highest window)."""
        asked = self.embedder.embed([windows(request)[0]])[0]
        given = self.embedder.embed(windows(reply))
        return float(self.weights.reply.scores(self.reply_features(asked, given)).max())

    def category(self, text: str) -> tuple[Hazard, float]:
        """The category of the nearest anchor, and its cosine similarity."""
        kind, similarity = self.anchors.nearest(self.embedder.embed(windows(text)))
        return (cast(Hazard, kind) if kind in _HAZARDS else "other"), similarity


class HarmGuard:
    """Blocks a request for, or a reply giving, seriously harmful help in a category not allowed.

    The threshold is the charter's sensitivity for `direction`; a reply that opens by declining
    passes unless enough follows the opening.
    """

    name = "harm"
    cost = 11

    def __init__(self, classifier: HarmClassifier, settings: Harm, *, direction: Direction) -> None:
        self.classifier = classifier
        self.settings = settings
        self.direction = direction
        self.threshold = classifier.weights.thresholds[direction][settings.sensitivity]

    def check(self, subject: Subject) -> GuardVerdict:
        if self.direction == "input":
            text = subject.all_views[0]
            score = self.classifier.request_score(text)
            about = text
        else:
            request = next((m.content for m in reversed(subject.messages) if m.role == "user"), "")
            given = subject.text
            if detect_refusal(given).refused:
                # The opening declines: only what follows it could still carry the help.
                given = given[len(opening(given)) :].strip()
                if len(given.split()) < 20:
                    return allow(self.name, 0.0, "the reply declines", refusal=True)
            score = self.classifier.reply_score(request, given)
            about = f"{request}\n{given}"
        detail: dict[str, Any] = {
            "threshold": round(self.threshold, 4),
            "sensitivity": self.settings.sensitivity,
        }
        if score < self.threshold:
            strict = self.classifier.weights.thresholds[self.direction]["strict"]
            if score >= strict:
                detail["uncertain"] = True  # flagged at the strict setting, not at this one
            return allow(self.name, score, **detail)
        category, similarity = self.classifier.category(about)
        detail["category"] = category
        detail["category_similarity"] = round(similarity, 3)
        if category in self.settings.allow_categories:
            return allow(self.name, score, f"{category} is allowed by this charter", **detail)
        what = "asks for" if self.direction == "input" else "gives"
        return block(self.name, score, f"{what} seriously harmful help ({category})", **detail)
