"""Guards on held-out data, side by side with existing detectors, in one run.

    .venv/bin/python bench/guards/bench_guards.py [--limit-per-family N] [--peers/--no-peers]

Input side, on the test split of the guard corpus (charter/datasets/guard_corpus.py; never
trained or calibrated on; bastioncorpus is a family the classifier never saw at all):
- Charter's input cascade (extraction rules, injection rules + MiniLM classifier,
  conversation checks; no LLM judge), every guard's verdict and time;
- peers on the same texts: metatronnanoguard (torch model), prompt-guardrail (TF-IDF +
  logistic regression), and a naive keyword filter;
- TPR per attack family, FPR per benign family (and for long benign inputs, > 1000
  characters, separately), each k/n with a Wilson 95% interval; p50/p99 latency.
Output side:
- PII: presidio synthetic set, span recall/precision for the identifier types the PII guard
  redacts by default, and for every type presidio knows;
- leaks: Tensor Trust `prompt_extraction_detection`, accuracy of the leak guard's canary
  check (access code as the canary, decoded views included);
- toxicity: ToxiGen's test split, block rate on hateful vs neutral statements, with and
  without the hate classifier; and on ordinary benign texts of the guard corpus' test split.
Writes bench/results/guards.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

from charter.datasets import dataset_path
from charter.datasets.guard_corpus import Example, build_corpus
from charter.guards.base import Subject
from charter.guards.leak import LeakGuard
from charter.guards.pii import PIIGuard
from charter.guards.scanner import Scanner
from charter.guards.toxicity import ToxicityGuard
from charter.models.base import Message
from charter.spec.models import CharterSpec
from charter.stats import Rate, percentile

ROOT = Path(__file__).resolve().parents[2]
SPEC = CharterSpec.model_validate({"id": "bench", "persona": {"name": "A", "role": "assistant"}})
KEYWORDS = (
    "ignore previous instructions",
    "ignore all previous",
    "ignore the above",
    "disregard",
    "jailbreak",
    "dan",
    "do anything now",
    "developer mode",
    "system prompt",
    "pretend you are",
    "no restrictions",
    "access granted",
    "your instructions",
)
LONG = 1000


def keyword_filter(text: str) -> bool:
    lowered = f" {text.lower()} "
    return any(f" {k} " in lowered or (len(k) > 4 and k in lowered) for k in KEYWORDS)


def rates(rows: list[Example], flagged: list[bool]) -> dict[str, Any]:
    by_family: dict[str, list[bool]] = defaultdict(list)
    for row, hit in zip(rows, flagged, strict=True):
        by_family[row.family].append(hit)
    attacks = [h for r, h in zip(rows, flagged, strict=True) if r.label == 1]
    benign = [h for r, h in zip(rows, flagged, strict=True) if r.label == 0]
    long_benign = [
        h for r, h in zip(rows, flagged, strict=True) if r.label == 0 and len(r.text) > LONG
    ]
    # The attack families: bastioncorpus is listed there as benign traps only; its
    # attack rows are an extra, never-trained family, reported apart as well as in `tpr`.
    listed = [
        h
        for r, h in zip(rows, flagged, strict=True)
        if r.label == 1 and not r.family.startswith("bastion")
    ]
    unseen = [h for r, h in zip(rows, flagged, strict=True) if r.family.startswith("bastion")]
    labels = [r.label for r in rows if r.family.startswith("bastion")]
    return {
        "tpr": Rate(sum(attacks), len(attacks)),
        "tpr_listed_families": Rate(sum(listed), len(listed)),
        "fpr": Rate(sum(benign), len(benign)),
        "fpr_long": Rate(sum(long_benign), len(long_benign)),
        "tpr_unseen_family": Rate(
            sum(h for h, y in zip(unseen, labels, strict=True) if y), sum(labels)
        ),
        "families": {f: Rate(sum(h), len(h)) for f, h in sorted(by_family.items())},
    }


Scored = tuple[list[bool], list[float], list[float]]  # flags, scores, ms


def timed(detect: Callable[[str], tuple[bool, float]], texts: list[str]) -> Scored:
    flags, scores, ms = [], [], []
    for text in texts:
        started = time.perf_counter()
        flag, score = detect(text)
        ms.append((time.perf_counter() - started) * 1000)
        flags.append(flag)
        scores.append(score)
    return flags, scores, ms


def tpr_at_fpr(rows: list[Example], scores: list[float], max_fpr: float) -> Rate:
    """TPR at the lowest threshold whose FPR on these rows is <= max_fpr. The threshold is
    chosen on the test rows themselves: an oracle that favours the system measured."""
    benign = sorted((s for s, r in zip(scores, rows, strict=True) if r.label == 0), reverse=True)
    allowed = int(max_fpr * len(benign))
    threshold = benign[allowed] if allowed < len(benign) else float("-inf")
    attacks = [s for s, r in zip(scores, rows, strict=True) if r.label == 1]
    return Rate(sum(s > threshold for s in attacks), len(attacks))


def run_cascade(rows: list[Example]) -> tuple[Scored, dict[str, list[float]]]:
    scanner = Scanner(SPEC)
    scanner.scan("warm-up")
    flags: list[bool] = []
    scores: list[float] = []
    totals: list[float] = []
    per_guard: dict[str, list[float]] = defaultdict(list)

    async def go() -> None:
        for row in rows:
            result = await scanner.ascan([Message(role="user", content=row.text)])
            flags.append(result.verdict == "block")
            scores.append(result.score)
            totals.append(result.ms)
            for verdict in result.run.verdicts:
                if verdict.guard != "(not run)":
                    per_guard[verdict.guard].append(verdict.ms)

    asyncio.run(go())
    return (flags, scores, totals), per_guard


def peers(rows: list[Example]) -> dict[str, Scored]:
    texts = [r.text for r in rows]

    def keywords(text: str) -> tuple[bool, float]:
        hit = keyword_filter(text)
        return hit, float(hit)

    out: dict[str, Scored] = {"keyword filter": timed(keywords, texts)}
    try:
        import guardify

        guardify.detect("warm-up")

        def guardrail(text: str) -> tuple[bool, float]:
            found = guardify.detect(text)
            attack = found["label"] == "injection"
            return attack, found["score"] if attack else 1 - found["score"]

        out["prompt-guardrail 1.0.1"] = timed(guardrail, texts)
    except ImportError:
        print("prompt-guardrail not installed: pip install prompt-guardrail==1.0.1")
    try:
        from nanoguard import NanoGuard

        nano = NanoGuard(device="cpu")
        nano.scan("warm-up")

        def nanoguard(text: str) -> tuple[bool, float]:
            found = nano.scan(text)
            return found.is_injection, found.injection_score

        out["metatronnanoguard 0.1.0"] = timed(nanoguard, texts)
    except ImportError:
        print("metatronnanoguard not installed: pip install metatronnanoguard==0.1.0")
    return out


def pii_bench() -> dict[str, Any]:
    rows = json.loads(dataset_path("presidio", "synth_dataset_v2.json").read_text())
    identifiers = {
        "CREDIT_CARD",
        "PHONE_NUMBER",
        "EMAIL_ADDRESS",
        "IBAN_CODE",
        "US_SSN",
        "IP_ADDRESS",
        "US_DRIVER_LICENSE",
    }
    guard = PIIGuard(SPEC)
    results: dict[str, Any] = {}
    for scope in ("identifiers (default)", "all types"):
        if scope == "all types":
            guard = PIIGuard(SPEC, entities=tuple(guard._engine.get_supported_entities()))
        tp = fn = fp = 0
        ms: list[float] = []
        for row in rows:
            gold = [
                (s["start_position"], s["end_position"])
                for s in row["spans"]
                if scope == "all types" or s["entity_type"] in identifiers
            ]
            started = time.perf_counter()
            found = [(a, b) for a, b, _, _ in guard.find(row["full_text"])]
            ms.append((time.perf_counter() - started) * 1000)
            hit_gold = {g for g in gold if any(a < g[1] and g[0] < b for a, b in found)}
            tp += len(hit_gold)
            fn += len(gold) - len(hit_gold)
            fp += sum(1 for a, b in found if not any(a < g[1] and g[0] < b for g in gold))
        results[scope] = {
            "recall": Rate(tp, tp + fn),
            "precision": Rate(tp, tp + fp),
            "p50_ms": percentile(ms, 50),
            "p99_ms": percentile(ms, 99),
        }
    return results


DEV_ROWS = 60  # rows 0-59 were read while writing the leak guard's fuzzy match


def leak_bench() -> dict[str, Any]:
    rows = [
        json.loads(line)
        for line in dataset_path("tensortrust", "prompt_extraction_detection.jsonl")
        .read_text()
        .splitlines()
    ]
    return {
        "held_out (rows 60-229)": leak_scores(rows[DEV_ROWS:]),
        "all rows": leak_scores(rows),
    }


def leak_scores(rows: list[dict[str, Any]]) -> dict[str, Any]:
    guard = LeakGuard(SPEC)
    correct = tp = fp = positives = 0
    for row in rows:
        subject = Subject("output", row["llm_output"], canary=row["access_code"])
        flagged = guard.check(subject).action == "block"
        truth = bool(row["is_prompt_extraction"])
        correct += flagged == truth
        tp += flagged and truth
        fp += flagged and not truth
        positives += truth
    return {
        "accuracy": Rate(correct, len(rows)),
        "recall": Rate(tp, positives),
        "precision": Rate(tp, tp + fp),
    }


def toxicity_bench() -> dict[str, Any]:
    """ToxiGen's test split (never trained or calibrated on): hateful vs neutral statements,
    with the profanity model alone and with the hate classifier; and ordinary benign texts
    of the guard corpus' test split, which a reply guard must let through."""
    from charter.guards.embedder import shared_embedder
    from charter.guards.hate import BENIGN_FAMILIES, HateClassifier, HateGuard, toxigen_rows

    rows = [(t, y) for t, y, split in toxigen_rows() if split == "test"]
    ordinary = [
        e.text
        for e in build_corpus()
        if e.split == "test" and e.label == 0 and e.family in BENIGN_FAMILIES
    ]
    results: dict[str, Any] = {}
    hate = HateGuard(HateClassifier.load(), shared_embedder())
    for name, guards in (
        ("toxicity (profanity model + threats)", [ToxicityGuard()]),
        ("toxicity + hate (default)", [ToxicityGuard(), hate]),
    ):

        def blocked(text: str, guards: list[Any] = guards) -> bool:
            return any(g.check(Subject("output", text)).action == "block" for g in guards)

        flags = [blocked(t) for t, _ in rows]
        ms: list[float] = []
        benign_flags = []
        for text in ordinary:
            started = time.perf_counter()
            benign_flags.append(blocked(text))
            ms.append((time.perf_counter() - started) * 1000)
        results[name] = {
            "hate": Rate(
                sum(f for f, (_, y) in zip(flags, rows, strict=True) if y), sum(y for _, y in rows)
            ),
            "neutral": Rate(
                sum(f for f, (_, y) in zip(flags, rows, strict=True) if not y),
                sum(1 for _, y in rows if not y),
            ),
            "ordinary benign": Rate(sum(benign_flags), len(benign_flags)),
            "p50_ms": percentile(ms, 50),
            "p99_ms": percentile(ms, 99),
        }
    return results


def jsonable(value: Any) -> Any:
    if isinstance(value, Rate):
        return value.to_dict()
    if isinstance(value, dict):
        return {k: jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    return value


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--limit-per-family", type=int, default=0, help="0 = all test rows")
    parser.add_argument("--no-peers", action="store_true")
    args = parser.parse_args()
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

    rows = [e for e in build_corpus() if e.split == "test"]
    if args.limit_per_family:
        kept: dict[str, int] = defaultdict(int)
        limited = []
        for row in rows:
            if kept[row.family] < args.limit_per_family:
                kept[row.family] += 1
                limited.append(row)
        rows = limited
    print(f"test split: {len(rows)} texts, {sum(r.label for r in rows)} attacks (2 threads)")

    (flags, scores, totals), per_guard = run_cascade(rows)
    report: dict[str, Any] = {"n": len(rows), "systems": {}}
    charter_rates = rates(rows, flags)
    matched_fpr = charter_rates["fpr"].value
    report["matched_fpr"] = matched_fpr
    report["systems"]["charter cascade"] = {
        **charter_rates,
        "tpr_at_matched_fpr": tpr_at_fpr(rows, scores, matched_fpr),
        "p50_ms": percentile(totals, 50),
        "p99_ms": percentile(totals, 99),
        "per_guard_ms": {
            g: {"p50": percentile(v, 50), "p99": percentile(v, 99)} for g, v in per_guard.items()
        },
    }
    if not args.no_peers:
        for name, (peer_flags, peer_scores, ms) in peers(rows).items():
            report["systems"][name] = {
                **rates(rows, peer_flags),
                "tpr_at_matched_fpr": tpr_at_fpr(rows, peer_scores, matched_fpr),
                "p50_ms": percentile(ms, 50),
                "p99_ms": percentile(ms, 99),
            }
    report["pii"] = pii_bench()
    report["leak"] = leak_bench()
    report["toxicity"] = toxicity_bench()

    out = ROOT / "bench" / "results" / "guards.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(jsonable(report), indent=2))
    print_report(report)
    print(f"wrote {out}")


def print_report(report: dict[str, Any]) -> None:
    print(f"\n{'system':26} {'TPR':>28} {'FPR':>28} {'FPR long':>26} {'p50 ms':>7} {'p99 ms':>7}")
    for name, r in report["systems"].items():
        print(
            f"{name:26} {r['tpr']!s:>28} {r['fpr']!s:>28} {r['fpr_long']!s:>26} "
            f"{r['p50_ms']:7.2f} {r['p99_ms']:7.2f}"
        )
    print(
        f"\nTPR at FPR <= {report['matched_fpr']:.1%} (Charter's FPR; each system's threshold "
        "picked on the test rows, which favours the peers):"
    )
    for name, r in report["systems"].items():
        print(f"  {name:26} {r['tpr_at_matched_fpr']!s}")
    print("\nTPR on the issue's attack families (bastioncorpus attacks apart) / on bastion:")
    for name, r in report["systems"].items():
        print(f"  {name:26} {r['tpr_listed_families']!s} / {r['tpr_unseen_family']!s}")
    print("\nper family (flagged / n):")
    names = list(report["systems"])
    families = report["systems"][names[0]]["families"]
    print(f"{'family':24}" + "".join(f"{n[:22]:>24}" for n in names))
    for family in families:
        cells = []
        for n in names:
            rate = report["systems"][n]["families"][family]
            cells.append(f"{rate.k}/{rate.n} ({rate.value:.0%})")
        print(f"{family:24}" + "".join(f"{c:>24}" for c in cells))
    print(
        "\ncharter per-guard latency:",
        {
            g: f"p50 {v['p50']:.2f} / p99 {v['p99']:.2f} ms"
            for g, v in report["systems"]["charter cascade"]["per_guard_ms"].items()
        },
    )
    for scope, r in report["pii"].items():
        print(
            f"PII {scope}: recall {r['recall']}, precision {r['precision']}, "
            f"p50 {r['p50_ms']:.1f} ms"
        )
    for scope, leak in report["leak"].items():
        print(
            f"leak (Tensor Trust extraction detection, {scope}): accuracy {leak['accuracy']}, "
            f"recall {leak['recall']}, precision {leak['precision']}"
        )
    for name, result in report["toxicity"].items():
        print(
            f"toxicity, {name}: ToxiGen test hate {result['hate']}, neutral {result['neutral']}; "
            f"ordinary benign {result['ordinary benign']}; p50 {result['p50_ms']:.2f} ms, "
            f"p99 {result['p99_ms']:.2f} ms"
        )


if __name__ == "__main__":
    main()
