"""Anchor features: how close a text is to short descriptions of what a guard looks for.

The injection and harm classifiers do not learn from MiniLM's 384 embedding numbers
directly. They learn from a text's cosine similarities to a set of *anchors*, third-person
descriptions written for this project ("A message that tells the assistant to ignore its
previous instructions", "A request for a synthesis route for a nerve agent"): the few
highest similarities, and for the injection classifier the highest per kind of attack. A
regression over ~17 such numbers cannot memorise the wording of the sources it was fitted
on, which is what made the embedding regressions flag benign sources they never saw
(design note 008: 29% of ShareGPT turns held out as a source, against 1.2% with anchors).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from importlib import resources
from typing import Any

import numpy as np

TOP = 5
"""How many of the highest similarities are features."""


def read_anchor_texts(file: str, key: str) -> list[tuple[str, str]]:
    """(kind, description) of every anchor in `charter/datasets/own/<file>`."""
    own = resources.files("charter.datasets.own").joinpath(file)
    rows = [json.loads(line) for line in own.read_text(encoding="utf-8").splitlines() if line]
    return [(str(row[key]), str(row["text"])) for row in rows]


@dataclass(frozen=True)
class Anchors:
    """A guard's anchors, embedded: they turn a text's embedding into its anchor features."""

    kinds: tuple[str, ...]
    """The kind of each anchor (attack kind or hazard category), in the order of `vectors`."""
    vectors: np.ndarray[Any, np.dtype[np.float32]]
    """Unit embeddings, one row per anchor."""
    per_kind: bool = False
    """Also a feature per kind: its highest similarity (sorted, so no kind is privileged)."""

    @classmethod
    def from_list(cls, rows: list[Any], *, per_kind: bool = False) -> Anchors:
        """From the weights file's `[[kind, [floats...]], ...]`."""
        kinds = tuple(str(kind) for kind, _ in rows)
        vectors = np.asarray([vector for _, vector in rows], dtype=np.float32)
        return cls(kinds, vectors, per_kind)

    def to_list(self) -> list[list[Any]]:
        return [
            [kind, [round(float(x), 4) for x in vector]]
            for kind, vector in zip(self.kinds, self.vectors, strict=True)
        ]

    def features(self, embedded: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
        """The anchor features, one row per embedded text.

        Each row is the text's TOP highest similarities (ascending), then with `per_kind` each
        kind's highest similarity (ascending).
        """
        sims = embedded @ self.vectors.T
        top = np.sort(sims, axis=1)[:, -TOP:]
        if not self.per_kind:
            return top
        names = sorted(set(self.kinds))
        owner = np.asarray([names.index(k) for k in self.kinds])
        per = np.stack([sims[:, owner == i].max(axis=1) for i in range(len(names))], axis=1)
        return np.hstack([top, np.sort(per, axis=1)])

    def nearest(self, embedded: np.ndarray[Any, Any]) -> tuple[str, float]:
        """The kind of the anchor nearest to any of these texts, and its similarity."""
        sims = embedded @ self.vectors.T
        row, column = np.unravel_index(int(np.argmax(sims)), sims.shape)
        return self.kinds[int(column)], float(sims[row, column])
