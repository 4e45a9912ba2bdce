"""How well identity questions are told apart, on ShareGPT user turns the detector was not
written from.

Labels: `src/charter/datasets/own/identity_question_labels.jsonl` (by reference; conversations
under 20 user turns that the guards do not learn from). The embedding route's margin is
chosen on the `dev` half (best F1, ties to the lowest margin); precision and recall are
reported on the `test` half, for the patterns alone and for patterns plus embeddings.

    python bench/persona/identity_questions.py
"""

from __future__ import annotations

import argparse

from charter.eval.persona_labels import load_question_labels
from charter.persona.identity import MARGIN, IdentityDetector

MARGINS = [round(0.02 * i, 2) for i in range(-5, 31)]


def scores(
    rows: list[dict[str, object]], detector: IdentityDetector
) -> list[tuple[bool, str, float]]:
    out = []
    for row in rows:
        asked = detector(str(row["text"]))
        out.append((row["label"] == "yes", asked.by, asked.score))
    return out


def counts(
    scored: list[tuple[bool, str, float]], margin: float | None
) -> tuple[int, int, int, int]:
    tp = fp = fn = tn = 0
    for truth, by, score in scored:
        said = by == "pattern" or (margin is not None and by == "embedding" and score >= margin)
        tp += truth and said
        fp += (not truth) and said
        fn += truth and not said
        tn += (not truth) and not said
    return tp, fp, fn, tn


def line(name: str, c: tuple[int, int, int, int]) -> str:
    tp, fp, fn, tn = c
    precision = tp / (tp + fp) if tp + fp else float("nan")
    recall = tp / (tp + fn) if tp + fn else float("nan")
    return (
        f"{name:<28} precision {tp}/{tp + fp} = {precision:.2f}  recall {tp}/{tp + fn} = "
        f"{recall:.2f}  (fp {fp}, tn {tn})"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--show", action="store_true", help="print the errors of the test half")
    args = parser.parse_args()
    labels = load_question_labels()
    if labels.unread:
        print("unread:", labels.unread)
    detector = IdentityDetector()
    halves = {h: [r for r in labels.rows if r["half"] == h] for h in ("dev", "test")}
    scored = {h: scores(rows, detector) for h, rows in halves.items()}

    def f1(margin: float) -> float:
        tp, fp, fn, _ = counts(scored["dev"], margin)
        return 2 * tp / (2 * tp + fp + fn) if tp else 0.0

    best = max(MARGINS, key=lambda m: (f1(m), -m))  # ties: the lowest (more recall)
    print(f"margin chosen on dev: {best} (dev F1 {f1(best):.2f}; the shipped MARGIN is {MARGIN})")
    for half in ("dev", "test"):
        print(
            f"-- {half}: {sum(t for t, _, _ in scored[half])} identity questions of "
            f"{len(scored[half])} turns"
        )
        print(line("patterns only", counts(scored[half], None)))
        print(line(f"patterns + MiniLM ({best})", counts(scored[half], best)))
        print(line(f"patterns + MiniLM ({MARGIN})", counts(scored[half], MARGIN)))
    if args.show:
        for row, (truth, by, score) in zip(halves["test"], scored["test"], strict=True):
            said = by == "pattern" or (by == "embedding" and score >= MARGIN)
            if said != truth:
                print(
                    f"{'missed' if truth else 'false alarm'}: {by} {score:.2f} {row['text'][:90]!r}"
                )


if __name__ == "__main__":
    main()
