"""Held-out check of the rules `charter.persona.requested` reads from a user's message.

    PYTHONPATH=src .venv/bin/python bench/rules/requested_rules.py detect
    PYTHONPATH=src nice .venv/bin/python bench/rules/requested_rules.py drafts [--limit 36] \
        [--max-tokens 400] [--model qwen2.5-coder-0.5b]
    PYTHONPATH=src .venv/bin/python bench/rules/requested_rules.py repairs

The reader was written on IFEval's even-keyed half (`charter.eval.ifeval.split_half`). Held
out here: the odd-keyed half less every prompt an earlier report ran -- the 120 seeded prompts
of `bench/persona/bench_ifeval.py --limit 120` (seed 0) and the `instruction_following` cases
`charter eval` samples at its usual sizes (5, 24, 50; seed 0). IFEval labels every prompt with
its instruction ids, so each detector is scored without a model:

- `detect`: per detector, on the held-out prompts (and, marked in-distribution, on the even
  half): fires with its instruction present (tp), fires without it (fp), the instruction
  present and the detector silent (fn). Also how often each fires on COLLIE's
  `constrained_writing` prompts (`charter.eval.constrained.tasks`), whose phrasings the
  reader never saw, listed for reading by hand. Writes bench/results/rules/detect.json.
- `drafts`: the raw model's reply (system prompt "You are Assistant, a helpful
  general-purpose assistant.", greedy) to held-out prompts on which a detector with a code
  repair fires, seeded sample of `--limit`; cached in bench/results/rules/drafts.json.
- `repairs`: each repair applied alone to each draft whose check it fails, and all repairs as
  the critique stage applies them (`charter.persona.checks.repair`), graded by IFEval's own
  checkers (`charter.eval.ifeval.grade`, if-verifiable) before and after: the targeted
  instruction and the whole prompt (strict). Writes bench/results/rules/repairs.json.

Design note 011's figures were measured at f358dfb, before the postscript and uppercase
repairs and the `options` reader were removed; on later code those rows read differently.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import time
from collections import Counter
from pathlib import Path
from typing import Any

from charter.eval import cases as case_sets
from charter.eval import ifeval
from charter.persona.checks import repair
from charter.persona.requested import requested_checks

ROOT = Path(__file__).resolve().parents[2]
OUT = ROOT / "bench" / "results" / "rules"

# detector (check id without "asked.") -> the IFEval instruction it reads
TARGET = {
    "no_comma": "punctuation:no_comma",
    "lowercase": "change_case:english_lowercase",
    "uppercase": "change_case:english_capital",
    "max_words": "length_constraints:number_words",
    "min_words": "length_constraints:number_words",
    "max_sentences": "length_constraints:number_sentences",
    "min_sentences": "length_constraints:number_sentences",
    "bullets": "detectable_format:number_bullet_lists",
    "highlights": "detectable_format:number_highlighted_sections",
    "paragraphs": "length_constraints:number_paragraphs",
    "sections": "detectable_format:multiple_sections",
    "placeholders": "detectable_content:number_placeholders",
    "title": "detectable_format:title",
    "json": "detectable_format:json_format",
    "two_responses": "combination:two_responses",
    "forbidden_words": "keywords:forbidden_words",
    "keywords": "keywords:existence",
    "word_frequency": "keywords:frequency",
    "letter_frequency": "keywords:letter_frequency",
    "capital_words": "change_case:capital_word_frequency",
    "language": "language:response_language",
    "ends_with": "startend:end_checker",
    "postscript": "detectable_content:postscript",
    "quotation": "startend:quotation",
    "options": "detectable_format:constrained_response",
    "repeat": "combination:repeat_prompt",
}
# the relation a directional detector needs in IFEval's kwargs
RELATION = {
    "max_words": "less than",
    "min_words": "at least",
    "max_sentences": "less than",
    "min_sentences": "at least",
}
REPAIRED = (
    "no_comma",
    "lowercase",
    "uppercase",
    "max_words",
    "ends_with",
    "postscript",
    "quotation",
    "repeat",
)


class _Spec:  # case_sets loaders take a charter spec they do not read for IFEval
    pass


def held_out() -> tuple[list[ifeval.Prompt], list[ifeval.Prompt], dict[str, int]]:
    prompts = ifeval.load()
    dev, test = ifeval.split_half(prompts)
    used = {p.key for p in random.Random(0).sample(test, min(120, len(test)))}
    all_cases = case_sets.uncontaminated(case_sets.instruction_following(_Spec()))
    for limit in (5, 24, 50):
        used |= {c.meta["key"] for c in case_sets.sample(all_cases, limit, 0)}
    kept = [p for p in test if p.key not in used]
    return kept, dev, {"odd_half": len(test), "used_before": len(used), "held_out": len(kept)}


def _fires(check_id: str, prompt: ifeval.Prompt) -> tuple[bool, bool]:
    """(instruction present, in the direction the detector reads)."""
    target = TARGET[check_id]
    for iid, kw in zip(prompt.instruction_ids, prompt.kwargs, strict=True):
        if iid != target:
            continue
        rel = RELATION.get(check_id)
        if rel is None or kw.get("relation") == rel:
            return True, True
    return False, False


def score_detectors(prompts: list[ifeval.Prompt]) -> dict[str, dict[str, Any]]:
    table: dict[str, dict[str, Any]] = {
        k: {"tp": 0, "fp": 0, "fn": 0, "fp_keys": [], "fn_keys": []} for k in TARGET
    }
    for p in prompts:
        fired = {c.id.removeprefix("asked.") for c in requested_checks(p.prompt)}
        for k in TARGET:
            present, _ = _fires(k, p)
            if k in fired and present:
                table[k]["tp"] += 1
            elif k in fired:
                table[k]["fp"] += 1
                table[k]["fp_keys"].append(p.key)
            elif present:
                table[k]["fn"] += 1
                table[k]["fn_keys"].append(p.key)
    return table


def detect() -> None:
    test, dev, sizes = held_out()
    out: dict[str, Any] = {
        "sizes": sizes,
        "held_out": score_detectors(test),
        "dev_in_distribution": score_detectors(dev),
    }
    try:
        from charter.eval import constrained

        collie: dict[str, Any] = {"fired": Counter(), "examples": []}
        tasks = constrained.tasks()
        for t in tasks:
            ids = [c.id.removeprefix("asked.") for c in requested_checks(t.prompt)]
            for i in ids:
                collie["fired"][i] += 1
            if ids:
                collie["examples"].append({"id": t.id, "prompt": t.prompt, "fired": ids})
        collie["cases"] = len(tasks)
        out["collie"] = collie
    except Exception as exc:
        out["collie"] = {"error": repr(exc)}
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "detect.json").write_text(json.dumps(out, indent=1, default=list))
    print(sizes)
    print(f"{'detector':<17}{'held-out tp/fp/fn':>20}{'dev tp/fp/fn':>16}")
    for k in TARGET:
        h, d = out["held_out"][k], out["dev_in_distribution"][k]
        print(f"{k:<17}{h['tp']:>10}/{h['fp']}/{h['fn']:<7}{d['tp']:>8}/{d['fp']}/{d['fn']}")
    print("collie:", dict(out["collie"].get("fired", {})), "of", out["collie"].get("cases"))


def drafts(limit: int, max_tokens: int, model_name: str) -> None:
    from charter.models import weights
    from charter.models.base import ChatRequest, Message
    from charter.models.local import LocalModel

    test, _, _ = held_out()
    pool = [
        p
        for p in test
        if {c.id.removeprefix("asked.") for c in requested_checks(p.prompt)} & set(REPAIRED)
    ]
    picked = random.Random("rules").sample(pool, min(limit, len(pool)))
    path = OUT / "drafts.json"
    done = json.loads(path.read_text()) if path.exists() else {}
    model = LocalModel(weights.resolve(model_name), threads=2)
    for i, p in enumerate(picked, 1):
        if str(p.key) in done:
            continue
        started = time.perf_counter()
        request = ChatRequest(
            messages=[
                Message(
                    role="system", content="You are Assistant, a helpful general-purpose assistant."
                ),
                Message(role="user", content=p.prompt),
            ],
            max_tokens=max_tokens,
            temperature=0.0,
        )
        reply = asyncio.run(model.acomplete(request)).text
        done[str(p.key)] = {"draft": reply, "s": round(time.perf_counter() - started, 1)}
        path.write_text(json.dumps(done, indent=1))
        print(f"{i}/{len(picked)} key {p.key} {done[str(p.key)]['s']}s", flush=True)
    model.close()


def repairs() -> None:
    test, _, _ = held_out()
    by_key = {str(p.key): p for p in test}
    done = json.loads((OUT / "drafts.json").read_text())
    single: dict[str, Counter[str]] = {k: Counter() for k in REPAIRED}
    examples: dict[str, list[Any]] = {k: [] for k in REPAIRED}
    whole = Counter()
    for key, row in done.items():
        p, draft = by_key[key], row["draft"]
        checks = requested_checks(p.prompt)
        before = ifeval.grade(p, draft)
        for c in checks:
            k = c.id.removeprefix("asked.")
            if k not in REPAIRED or c.repair is None:
                continue
            single[k]["fired"] += 1
            if c.passes(draft):
                single[k]["draft_passes_check"] += 1
                continue
            fixed = c.repair(draft)
            after = ifeval.grade(p, fixed)
            present = TARGET[k] in p.instruction_ids
            if present:
                i = p.instruction_ids.index(TARGET[k])
                single[k]["repaired_target"] += 1
                single[k]["target_fixed"] += (not before.followed[i]) and after.followed[i]
                single[k]["target_broken"] += before.followed[i] and not after.followed[i]
            else:
                single[k]["repaired_no_such_instruction"] += 1
            others_broken = sum(
                b and not a
                for j, (b, a) in enumerate(zip(before.followed, after.followed, strict=True))
                if p.instruction_ids[j] != TARGET[k]
            )
            single[k]["other_instructions_broken"] += others_broken
            single[k]["prompt_fixed"] += (not before.strict) and after.strict
            single[k]["prompt_broken"] += before.strict and not after.strict
            examples[k].append(
                {"key": key, "tail_before": draft[-160:], "tail_after": fixed[-200:]}
            )
        fixed_all = repair(checks, draft)
        after_all = ifeval.grade(p, fixed_all)
        whole["prompts"] += 1
        whole["strict_before"] += before.strict
        whole["strict_after"] += after_all.strict
        whole["instructions"] += len(before.followed)
        whole["followed_before"] += sum(before.followed)
        whole["followed_after"] += sum(after_all.followed)
    out = {
        "drafts": len(done),
        "single": {k: dict(v) for k, v in single.items()},
        "critique_repair": dict(whole),
        "examples": examples,
    }
    (OUT / "repairs.json").write_text(json.dumps(out, indent=1))
    for k, v in single.items():
        print(f"{k:<12} {dict(v)}")
    print("all repairs:", dict(whole))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("what", choices=["detect", "drafts", "repairs"])
    parser.add_argument("--limit", type=int, default=36)
    parser.add_argument("--max-tokens", type=int, default=400)
    parser.add_argument("--model", default="qwen2.5-coder-0.5b")
    args = parser.parse_args()
    if args.what == "detect":
        detect()
    elif args.what == "drafts":
        drafts(args.limit, args.max_tokens, args.model)
    else:
        repairs()


if __name__ == "__main__":
    main()
