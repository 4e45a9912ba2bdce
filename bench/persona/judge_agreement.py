"""Agreement of the persona judge with hand labels on real replies.

The labels (`src/charter/datasets/own/persona_judge_labels.jsonl`) are ChatGPT replies from
ShareGPT conversations under 20 user turns, each judged by hand against one rule of an example
charter (acme-bank: scope, never.0, identity; code-tutor: scope, identity). The judge's
threshold (and, with a model, its uncertain band) is chosen on the `dev` half; agreement is
reported on the `test` half: accuracy, precision and recall on "breaks", Cohen's kappa.

Which judge:
- default: the one built for each charter in the Charter home (`charter prompt FILE
  --build-judge`), with its model for the band when `--model` is given;
- `--build`: build it first with the charter's own judge model (minutes per charter);
- `--examples DIR`: train the classifiers on `DIR/<charter id>.jsonl` (contrastive examples
  written by hand, no model) in a temporary folder: the measurement that needs no model.

    python bench/persona/judge_agreement.py --examples bench/persona/contrast
    python bench/persona/judge_agreement.py --build --model
    python bench/persona/judge_agreement.py --examples bench/persona/contrast --model \
        --judge-model qwen2.5-coder-0.5b
    python bench/persona/judge_agreement.py --build --charter acme-bank --per-rule 8
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
from dataclasses import dataclass
from pathlib import Path

from charter.errors import ModelError
from charter.eval.persona_labels import load_judge_labels
from charter.models.base import ChatModel
from charter.persona.contrast import read_examples
from charter.persona.judge import PersonaJudge, build_judge, load_judge
from charter.spec.loader import load_charter
from charter.spec.models import CharterSpec

EXAMPLES = Path(__file__).parents[2] / "examples"
THRESHOLDS = [round(0.05 * i, 2) for i in range(1, 20)]
BANDS = [(lo, hi) for lo in THRESHOLDS for hi in THRESHOLDS if lo < hi]
MAX_TO_MODEL = 0.4
"""A band may send at most this share of the dev rows to the model."""


@dataclass
class Scored:
    """One labelled row as the judge's parts see it."""

    row: dict[str, object]
    truth: bool
    code: bool | None
    """Code's verdict (True: breaks; None: code leaves the rule to the classifier)."""
    p: float | None
    """The rule's classifier probability (None: no classifier for the rule)."""
    model: bool | None = None
    """The model's verdict (asked for every row, so that any band can be simulated)."""


def kappa(pairs: list[tuple[bool, bool]]) -> float:
    n = len(pairs)
    if not n:
        return float("nan")
    agree = sum(a == b for a, b in pairs) / n
    yes_a = sum(a for a, _ in pairs) / n
    yes_b = sum(b for _, b in pairs) / n
    chance = yes_a * yes_b + (1 - yes_a) * (1 - yes_b)
    return (agree - chance) / (1 - chance) if chance < 1 else float("nan")


def report(name: str, pairs: list[tuple[bool, bool]]) -> str:
    """pairs: (truth, said); True = breaks."""
    tp = sum(t and s for t, s in pairs)
    fp = sum(s and not t for t, s in pairs)
    fn = sum(t and not s for t, s in pairs)
    right = sum(t == s for t, s in pairs)
    precision = f"{tp}/{tp + fp}" + (f" = {tp / (tp + fp):.2f}" if tp + fp else "")
    recall = f"{tp}/{tp + fn}" + (f" = {tp / (tp + fn):.2f}" if tp + fn else "")
    return (
        f"{name:<34} accuracy {right}/{len(pairs)} = {right / len(pairs):.2f}  precision "
        f"{precision}  recall {recall}  kappa {kappa(pairs):.2f}"
    )


def decide(s: Scored, threshold: float, band: tuple[float, float] | None) -> tuple[bool, str]:
    if s.code is not None:
        return s.code, "code"
    if s.p is None:
        return False, "none"
    if band is not None and s.model is not None and band[0] <= s.p < band[1]:
        return s.model, "model"
    if band is not None and s.model is not None:
        return s.p >= band[1], "classifier"
    return s.p >= threshold, "classifier"


def judges(args: argparse.Namespace, ids: set[str], work: Path) -> dict[str, PersonaJudge]:
    out: dict[str, PersonaJudge] = {}
    for charter_id in sorted(ids):
        spec = load_charter(EXAMPLES / charter_id / "charter.yaml")
        model = _model(spec, args.judge_model) if (args.build or args.model) else None
        if args.examples is not None:
            examples = read_examples(args.examples / f"{charter_id}.jsonl")
            build_judge(spec, None, examples=examples, cache_dir=work)
            judge = load_judge(spec, model=model, cache_dir=work)
        else:
            if args.build:
                build_judge(spec, model, per_rule=args.per_rule, progress=print)
            judge = load_judge(spec, model=model)
        if judge is None:
            raise SystemExit(
                f"no persona judge built for {charter_id}: run `charter prompt "
                f"{EXAMPLES / charter_id / 'charter.yaml'} --build-judge` or pass --build"
            )
        out[charter_id] = judge
    return out


def _model(spec: CharterSpec, name: str | None) -> ChatModel:
    from charter.eval.evaluate import with_model
    from charter.models.factory import build_model

    if name is not None:  # that catalog model or .gguf path as the charter's chat model
        return build_model(with_model(spec, name).models.chat)
    return build_model(spec.models.judge or spec.models.chat)


async def score(judge: PersonaJudge, row: dict[str, object], ask_model: bool) -> Scored:
    rule, question, reply = str(row["rule"]), str(row["request"]), str(row["reply"])
    code = next((a.breaks for a in judge.code_assessments(reply) if a.rule == rule), None)
    p = judge.probabilities(question, reply).get(rule)
    scored = Scored(row, row["label"] == "breaks", code, p)
    if ask_model and p is not None and code is None:
        model = judge._chat_model()
        if model is not None:
            rules = [c.rule for c in judge.classifiers if c.rule.id == rule]
            from charter.persona.judge import Verdict

            try:
                broken = await judge._ask(model, question, reply, rules, Verdict([]))
            except ModelError:  # as in the pipeline: the threshold decides
                return scored
            scored.model = rule in broken
    return scored


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--examples", type=Path, help="hand-written contrastive examples")
    parser.add_argument("--build", action="store_true", help="build with the charter's model")
    parser.add_argument("--model", action="store_true", help="ask the model in the band")
    parser.add_argument(
        "--judge-model", help="with --model: this model in the band (a catalog name or .gguf)"
    )
    parser.add_argument("--per-rule", type=int, default=12)
    parser.add_argument(
        "--charter", action="append", help="only this example charter's labels (repeatable)"
    )
    parser.add_argument("--show", action="store_true", help="print the test half's errors")
    parser.add_argument(
        "--dev-only", action="store_true", help="leave the test half out (while developing)"
    )
    args = parser.parse_args()
    labels = load_judge_labels()
    if labels.unread:
        print("unread:", labels.unread)
    rows = [r for r in labels.rows if not args.charter or r["charter"] in args.charter]
    with tempfile.TemporaryDirectory() as work:
        judged = judges(args, {str(r["charter"]) for r in rows}, Path(work))
        scored = [asyncio.run(score(judged[str(r["charter"])], r, args.model)) for r in rows]
    halves = {h: [s for s in scored if s.row["half"] == h] for h in ("dev", "test")}
    dev = halves["dev"]

    def accuracy(threshold: float, band: tuple[float, float] | None) -> float:
        return sum(decide(s, threshold, band)[0] == s.truth for s in dev) / len(dev)

    threshold = max(THRESHOLDS, key=lambda t: (accuracy(t, None), -abs(t - 0.5)))
    band: tuple[float, float] | None = None
    if args.model:
        allowed = [
            b
            for b in BANDS
            if sum(b[0] <= (s.p or -1) < b[1] for s in dev) <= MAX_TO_MODEL * len(dev)
        ]
        band = max(allowed, key=lambda b: (accuracy(threshold, b), b[0] - b[1]))
    print(
        f"chosen on dev ({len(dev)} rows): threshold {threshold}"
        + (f", band {band}" if band else "")
    )
    for half, items in halves.items():
        if half == "test" and args.dev_only:
            continue
        print(f"-- {half}: {len(items)} (reply, rule) pairs, {sum(s.truth for s in items)} break")
        identity = [s for s in items if s.row["rule"] == "identity"]
        print(report("identity rule, code only", [(s.truth, bool(s.code)) for s in identity]))
        print(
            report(
                f"code + classifier (threshold {threshold})",
                [(s.truth, decide(s, threshold, None)[0]) for s in items],
            )
        )
        if band is not None:
            print(
                report(
                    f"code + classifier + model {band}",
                    [(s.truth, decide(s, threshold, band)[0]) for s in items],
                )
            )
            sent = sum(decide(s, threshold, band)[1] == "model" for s in items)
            print(f"{'':<34} {sent} of {len(items)} went to the model")
        for key in sorted({(str(s.row["charter"]), str(s.row["rule"])) for s in items}):
            mine = [s for s in items if (str(s.row["charter"]), str(s.row["rule"])) == key]
            print(
                "   "
                + report(
                    f"{key[0]} {key[1]}", [(s.truth, decide(s, threshold, band)[0]) for s in mine]
                )
            )
    if args.show:
        for s in halves["test"]:
            said, by = decide(s, threshold, band)
            if said != s.truth:
                print(
                    f"{s.row['id']} {s.row['charter']} {s.row['rule']}: label "
                    f"{s.row['label']}, said {'breaks' if said else 'keeps'} by {by} "
                    f"(p={s.p if s.p is None else round(s.p, 2)})"
                )


if __name__ == "__main__":
    main()
