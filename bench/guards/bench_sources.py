"""Guards measured on sources they never saw: leave-one-source-out, the final held-out
group, real multi-turn conversations with and without the history, and latency.

    .venv/bin/python bench/guards/bench_sources.py            # development figures
    .venv/bin/python bench/guards/bench_sources.py --final    # + the final group (once a release)

Protocol (docs/design/008-source-held-out.md):
- Injection classifier: each source (family) of the guard corpus is scored by a model fitted
  on the train rows of every *other* source (on the anchor features the shipped model
  uses), its threshold set at 1% FPR on the other sources' validation benign rows. A text's
  score is the max of the rules and its window scores (all windows up to four; the shipped
  guard's triage embeds fewer).
- Harm guard, input side: each training source scored by a model fitted without it, at the
  shipped thresholds of each sensitivity.
- Final group (`--final`): the shipped weights on HarmBench, StrongREJECT, XSTest, pasted
  code and documents from installed packages, and bastioncorpus; and the output side on the
  local model's replies to HarmBench and StrongREJECT requests (make_replies.py).
- Conversations: ShareGPT conversations of 4-19 user turns that no guard trained on (not in
  the one-in-ten training bucket), replayed turn by turn through the default input guards:
  each turn alone, and with the history sent along as an OpenAI client sends it (exchanges
  Charter answered are vetted). Run twice: with the shipped weights, and with injection and
  harm models fitted without ShareGPT (ShareGPT held out as a source).
- Latency of the default input cascade (extraction, injection, conversation, harm) per
  message, p50 / p99, against the cascade without the harm guard measured in the same run.
Writes bench/results/guards-sources.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

from charter.datasets.guard_corpus import build_corpus
from charter.datasets.guard_sources import (
    SOURCES,
    sharegpt_conversations,
    sharegpt_exchanges,
    sharegpt_trained,
)
from charter.eval.refusal import detect_refusal
from charter.guards.answered import AnsweredTurns
from charter.guards.classifier import ClassifierWeights, InjectionClassifier
from charter.guards.conversation import ConversationGuard
from charter.guards.embedder import Embedder, shared_embedder, windows
from charter.guards.extraction import ExtractionGuard
from charter.guards.harm import HarmClassifier, HarmGuard, HarmWeights, Linear
from charter.guards.harm_train import CALIBRATION, request_model, training_sources
from charter.guards.injection import InjectionGuard
from charter.guards.registry import shared_classifier
from charter.guards.train import attack_anchors, rule_score, threshold_at_fpr, window_label
from charter.home import charter_home
from charter.models.base import Message
from charter.pipeline import Pipeline, TurnState
from charter.spec.models import CharterSpec
from charter.stages.input_guard import InputGuardStage
from charter.stats import Rate, percentile

ROOT = Path(__file__).resolve().parents[2]
LONG = 1000
SPEC = CharterSpec.model_validate(
    {"id": "bench", "persona": {"name": "Ava", "role": "general assistant"}}
)


def rate(flags: list[bool]) -> str:
    return str(Rate(sum(flags), len(flags)))


# --- injection, leave one source out -------------------------------------------------------


def injection_loso(embedder: Embedder) -> tuple[dict[str, Any], dict[str, Any]]:
    from sklearn.linear_model import LogisticRegression

    corpus = [
        e for e in build_corpus() if e.family not in ("bastion_attack", "bastion_benign_trap")
    ]
    pieces: list[str] = []
    owner: list[int] = []
    for index, example in enumerate(corpus):
        for window in windows(example.text):
            pieces.append(window)
            owner.append(index)
    print(f"injection: {len(corpus)} texts, {len(pieces)} windows to embed", flush=True)
    vectors = attack_anchors(embedder).features(embedder.embed(pieces))
    rules = [rule_score(e.text) for e in corpus]
    families = sorted({e.family for e in corpus})
    by_family: dict[str, Any] = {}
    fitted_without: dict[str, tuple[Any, float]] = {}
    owner_arr = np.asarray(owner)
    for family in families:
        inside = np.asarray(
            [corpus[o].family != family and corpus[o].split != "test" for o in owner]
        )
        train_mask = inside & np.asarray([corpus[o].split == "train" for o in owner])
        labels = np.asarray(
            [window_label(corpus[o], w) for o, w in zip(owner, pieces, strict=True)]
        )
        model = LogisticRegression(C=4.0, max_iter=5000, class_weight="balanced")
        model.fit(vectors[train_mask], labels[train_mask])
        window_scores = model.predict_proba(vectors)[:, 1]
        text_scores = np.zeros(len(corpus))
        np.maximum.at(text_scores, owner_arr, window_scores)
        scores = np.maximum(text_scores, rules)
        val_benign = [
            scores[i]
            for i, e in enumerate(corpus)
            if e.family != family and e.split == "val" and e.label == 0
        ]
        threshold = threshold_at_fpr(val_benign, 0.01)
        mine = [i for i, e in enumerate(corpus) if e.family == family]
        label = corpus[mine[0]].label
        flags = [bool(scores[i] >= threshold) for i in mine]
        long_flags = [bool(scores[i] >= threshold) for i in mine if len(corpus[i].text) > LONG]
        by_family[family] = {
            "kind": "attack" if label else "benign",
            "flagged": rate(flags),
            "flagged_long": rate(long_flags) if long_flags else None,
            "threshold": round(threshold, 4),
        }
        fitted_without[family] = (model, threshold)
        print(f"  {family:24s} {'TPR' if label else 'FPR'} {rate(flags)}", flush=True)
    attack = [f for f, v in by_family.items() if v["kind"] == "attack"]
    benign = [f for f, v in by_family.items() if v["kind"] == "benign"]
    pooled = {
        "tpr": pool(by_family, attack, "flagged"),
        "fpr": pool(by_family, benign, "flagged"),
        "fpr_long": pool(by_family, benign, "flagged_long"),
    }
    return {"by_source": by_family, "pooled": pooled}, fitted_without


def pool(table: dict[str, Any], names: list[str], key: str) -> str:
    k = n = 0
    for name in names:
        cell = table[name][key]
        if cell:
            a, b = cell.split(" ")[0].split("/")
            k, n = k + int(a), n + int(b)
    return str(Rate(k, n))


# --- harm, leave one source out ------------------------------------------------------------


def harm_loso(embedder: Embedder, weights: HarmWeights) -> tuple[dict[str, Any], Linear]:
    sources = training_sources(embedder)
    _, held_out = request_model(sources, embedder, weights.anchors)
    table: dict[str, Any] = {}
    for name, scores in held_out.items():
        table[name] = {
            level: rate([s >= weights.thresholds["input"][level] for s in scores])
            for level in CALIBRATION
        }
        print(f"  harm {name:20s} {table[name]}", flush=True)
    without_sharegpt, _ = request_model(
        {k: v for k, v in sources.items() if k != "sharegpt"}, embedder, weights.anchors
    )
    return table, without_sharegpt


# --- final held-out group ------------------------------------------------------------------


def final_group(embedder: Embedder, harm: HarmClassifier, weights: HarmWeights) -> dict[str, Any]:
    injection = shared_classifier()
    out: dict[str, Any] = {"harm_input": {}, "injection": {}, "harm_categories": {}}
    for name in ("harmbench", "strongreject", "xstest_unsafe", "xstest_safe", "code", "documents"):
        texts = SOURCES[name].load()
        scores = [harm.request_score(t.text) for t in texts]
        out["harm_input"][name] = {
            level: rate([s >= weights.thresholds["input"][level] for s in scores])
            for level in CALIBRATION
        }
        threshold = injection.weights.threshold
        inj = [
            max(injection.highest([t.text], stop_at=threshold), rule_score(t.text)) >= threshold
            for t in texts
        ]
        out["injection"][name] = rate(inj)
        if SOURCES[name].kind == "harmful":
            balanced = weights.thresholds["input"]["balanced"]
            per: dict[str, list[bool]] = defaultdict(list)
            for t, s in zip(texts, scores, strict=True):
                per[t.category or "uncategorised"].append(s >= balanced)
            out["harm_categories"][name] = {k: rate(v) for k, v in sorted(per.items())}
        print(
            f"  final {name:14s} harm {out['harm_input'][name]} injection {rate(inj)}", flush=True
        )
    bastion = [e for e in build_corpus() if e.family.startswith("bastion")]
    for family in ("bastion_attack", "bastion_benign_trap"):
        rows = [e for e in bastion if e.family == family]
        threshold = injection.weights.threshold
        flags = [
            max(injection.highest([e.text], stop_at=threshold), rule_score(e.text)) >= threshold
            for e in rows
        ]
        out["injection"][family] = rate(flags)
        print(f"  final {family} injection {rate(flags)}", flush=True)
    out["harm_output"] = output_side(harm, weights)
    return out


def output_side(harm: HarmClassifier, weights: HarmWeights) -> dict[str, Any]:
    path = charter_home() / "guard_data" / "replies.jsonl"
    rows = [json.loads(line) for line in path.read_text().splitlines() if line]
    result: dict[str, Any] = {}
    for source in ("harmbench", "strongreject"):
        mine = [r for r in rows if r["source"] == source]
        complied = [r for r in mine if not detect_refusal(r["reply"]).refused]
        scores = [harm.reply_score(r["request"], r["reply"]) for r in complied]
        refusals = [r for r in mine if detect_refusal(r["reply"]).refused]
        refusal_scores = [harm.reply_score(r["request"], r["reply"]) for r in refusals]
        result[source] = {
            "complied_replies": len(complied),
            "caught": {
                level: rate([s >= weights.thresholds["output"][level] for s in scores])
                for level in CALIBRATION
            },
            "refusals_flagged_balanced": rate(
                [s >= weights.thresholds["output"]["balanced"] for s in refusal_scores]
            ),
        }
        print(f"  output {source}: {result[source]}", flush=True)
    safe = [r for r in rows if r["source"] == "xstest_safe"]
    ordinary = [
        (asked, answered)
        for cid, asked, answered in sharegpt_exchanges()
        if not sharegpt_trained(cid)
    ]
    ordinary = random.Random(5).sample(ordinary, 600)
    for name, pairs in (
        ("xstest_safe_replies", [(r["request"], r["reply"]) for r in safe]),
        ("sharegpt_held_out_replies", ordinary),
    ):
        scores = [harm.reply_score(asked, answered) for asked, answered in pairs]
        result[name] = {
            level: rate([s >= weights.thresholds["output"][level] for s in scores])
            for level in CALIBRATION
        }
        print(f"  output {name}: {result[name]}", flush=True)
    return result


# --- real conversations --------------------------------------------------------------------


def held_out_conversations(count: int, seed: int = 3) -> list[tuple[str, list[str]]]:
    pool_ = [
        (cid, turns)
        for cid, turns in sharegpt_conversations()
        if 4 <= len(turns) < 20 and not sharegpt_trained(cid)
    ]
    return random.Random(seed).sample(pool_, count)


async def replay(
    conversations: list[tuple[str, list[str]]],
    injection: InjectionClassifier,
    harm: HarmClassifier,
) -> dict[str, Any]:
    guards = [
        ExtractionGuard(),
        InjectionGuard(injection),
        ConversationGuard(injection),
        HarmGuard(harm, SPEC.guards.harm, direction="input"),
    ]
    guards.sort(key=lambda g: g.cost)

    async def run(stage: InputGuardStage, messages: list[Message]) -> TurnState:
        state = TurnState(charter=SPEC, messages=messages)
        pipeline = Pipeline([stage, _Answer()], failure=SPEC.on_failure, fallback_reply="")
        return await pipeline.run(state)

    alone: list[bool] = []
    with_history: list[bool] = []
    rechecked: list[bool] = []
    examples: list[dict[str, str]] = []
    for _, turns in conversations:
        ledger = AnsweredTurns("bench")
        vetted = InputGuardStage(guards, timeout_s=30, answered=ledger)
        naive = InputGuardStage(guards, timeout_s=30)
        history: list[Message] = []
        for turn in turns:
            single = await run(naive, [Message(role="user", content=turn)])
            alone.append(single.blocked)
            if single.blocked and len(examples) < 12:
                examples.append({"turn": turn[:160], "why": single.block_reason or ""})
            messages = [*history, Message(role="user", content=turn)]
            state = await run(vetted, list(messages))
            with_history.append(state.blocked)
            rechecked.append((await run(naive, list(messages))).blocked)
            reply = state.reply or ""
            ledger.record(turn, reply, refused=state.blocked)
            history = [*messages, Message(role="assistant", content=reply)]
    return {
        "conversations": len(conversations),
        "turns": len(alone),
        "flagged_alone": rate(alone),
        "blocked_with_history": rate(with_history),
        "blocked_with_history_rechecked_every_turn": rate(rechecked),
        "examples": examples,
    }


class _Answer:
    """Stands in for the model: a fixed reply, so the replay measures the guards only."""

    name = "answer"

    async def __call__(self, state: TurnState, call_next: Any) -> TurnState:
        state.reply = "Sure, here is my answer."
        return state


# --- latency -------------------------------------------------------------------------------


async def latency(injection: InjectionClassifier, harm: HarmClassifier) -> dict[str, Any]:
    from charter.guards.base import Subject
    from charter.guards.normalize import views
    from charter.stages.guarding import run_guards

    texts = [t.text for t in SOURCES["sharegpt"].load()[:4000:20]]
    texts += [t.text for t in SOURCES["harmbench"].load()[:60]]
    cascades = {
        "without harm": [
            ExtractionGuard(),
            InjectionGuard(injection),
            ConversationGuard(injection),
        ],
        "with harm": [
            ExtractionGuard(),
            InjectionGuard(injection),
            ConversationGuard(injection),
            HarmGuard(harm, SPEC.guards.harm, direction="input"),
        ],
    }
    timings: dict[str, list[float]] = {name: [] for name in cascades}
    embedder = injection.embedder
    for n, text in enumerate(texts):
        order = list(cascades.items())
        for name, guards in order if n % 2 else order[::-1]:
            embedder.clear_cache()  # each cascade pays for its own embeddings
            started = time.perf_counter()
            readings, _ = views(text)
            subject = Subject("input", text, tuple(readings), (Message(role="user", content=text),))
            await run_guards(guards, subject, timeout_s=30, failure=SPEC.on_failure)
            timings[name].append((time.perf_counter() - started) * 1000)
    out = {
        name: {"p50_ms": round(percentile(v, 50), 2), "p99_ms": round(percentile(v, 99), 2)}
        for name, v in timings.items()
    }
    base, full = out["without harm"], out["with harm"]
    out["ratio_p50"] = round(full["p50_ms"] / base["p50_ms"], 2)
    out["ratio_p99"] = round(full["p99_ms"] / base["p99_ms"], 2)
    out["texts"] = len(texts)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--final", action="store_true", help="also read the final group")
    parser.add_argument("--conversations", type=int, default=40)
    parser.add_argument(
        "--only", nargs="*", default=["injection", "harm", "conversations", "latency"]
    )
    args = parser.parse_args()
    embedder = shared_embedder()
    weights = HarmWeights.load()
    harm = HarmClassifier(embedder, weights)
    results: dict[str, Any] = {"date": time.strftime("%Y-%m-%d"), "threads": 2}
    fitted: dict[str, tuple[Any, float]] = {}
    harm_without: Linear | None = None
    if "injection" in args.only:
        results["injection_loso"], fitted = injection_loso(embedder)
    if "harm" in args.only:
        results["harm_loso"], harm_without = harm_loso(embedder, weights)
    if args.final:
        results["final"] = final_group(embedder, harm, weights)
    if "conversations" in args.only:
        conversations = held_out_conversations(args.conversations)
        shipped = asyncio.run(replay(conversations, shared_classifier(), harm))
        results["conversations_shipped"] = shipped
        print(f"conversations, shipped weights: {shipped}", flush=True)
        if "sharegpt" in fitted and harm_without is not None:
            model, threshold = fitted["sharegpt"]
            base = shared_classifier().weights
            inj = InjectionClassifier(
                embedder,
                ClassifierWeights(
                    model.coef_[0].astype(np.float32),
                    float(model.intercept_[0]),
                    threshold,
                    min(base.uncertain_below, threshold),
                    {},
                    triage=base.triage,
                    anchors=base.anchors,
                ),
            )
            harm_ho = HarmClassifier(
                embedder,
                HarmWeights(harm_without, weights.reply, weights.thresholds, weights.anchors, {}),
            )
            held = asyncio.run(replay(conversations, inj, harm_ho))
            results["conversations_sharegpt_held_out"] = held
            print(f"conversations, ShareGPT held out: {held}", flush=True)
    if "latency" in args.only:
        results["latency"] = asyncio.run(latency(shared_classifier(), harm))
        print(f"latency: {results['latency']}", flush=True)
    target = ROOT / "bench" / "results" / "guards-sources.json"
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps(results, indent=1) + "\n")
    print(f"wrote {target}")


if __name__ == "__main__":
    main()
