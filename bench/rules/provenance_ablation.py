"""Held-out ablation of the tool-argument rules in `charter.tools.provenance`.

    PYTHONPATH=src nice .venv/bin/python bench/rules/provenance_ablation.py collect \
        [--model qwen2.5-coder-0.5b] [--per simple_python=40,multiple=20,parallel=20,live_simple=49]
    PYTHONPATH=src nice .venv/bin/python bench/rules/provenance_ablation.py ablate [--rules ID,...]
        [--no-model]

Cases (held out): BFCL's test half (odd rows, `charter.eval.bfcl.split`) less the two samples
earlier reports used -- the usual sample (seed 0, 40 a category) on whose misses several rules
were written, and the `--unseen` draw (seed 0, 40 a category from the rest) that confirmed
them -- both rebuilt here exactly as `bench/tasks/bench_bfcl.py` draws them. From what is left a
seeded sample (seed "rules") of `--per` cases a category; plus all 16 of BFCL's
`live_relevance` questions (a function fits; right = some call is made), a category no bench
had run.

`collect` runs Charter's tool loop (`bfcl.charter_calls`, default gate, all rules on) once per
case with a caching model: every completion is stored under its full request (messages,
grammar, limits) in bench/results/rules/cache.jsonl, and the calls in baseline.json.
`--irrelevance` runs the same on the test half of BFCL's irrelevance category (all 120 cases;
every one was run in earlier reports, so these figures are not held out), where the rules that
hold a call back were meant to help.

`ablate` runs the same loop again per rule, with that rule patched to a no-op (see RULES);
every request seen before is answered from the cache, so a rule that only filters replays
with no model call, and a rule that makes the loop re-ask costs only the new requests (real
model calls, added to the cache; `--no-model` counts them as unanswered instead). Each
ablated case is scored with BFCL's checker (`bfcl.check`) and compared with the baseline:
"helps" = right with the rule, wrong without; "hurts" = the reverse. Writes
bench/results/rules/ablation.json.

The ablations reimplement `unsupported_values`, `numbers_in`, `given`, `ground_arguments`
and `unnamed_options` with switches; with no switch off they must give the module's own
answers (`collect` checks this on every call it sees).

The switches patch the modules as they were at f358dfb, where design note 011 was measured;
several of the rules they switch were removed after it, so the script runs at that commit.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import json
import random
import re
import sys
import time
from pathlib import Path
from typing import Any
from unittest import mock

import charter.eval.bfcl as B
import charter.tools.loop as L
import charter.tools.provenance as P
from charter.models.base import ChatRequest, Completion, Message, Usage

ROOT = Path(__file__).resolve().parents[2]
OUT = ROOT / "bench" / "results" / "rules"
CALLING = ("simple_python", "multiple", "parallel", "live_simple")

# --- held-out cases ---------------------------------------------------------------------------


def live_relevance() -> list[B.BfclCase]:
    text = B.dataset_path("bfcl", "BFCL_v4_live_relevance.json").read_text()
    cases = []
    for index, line in enumerate(ln for ln in text.splitlines() if ln.strip()):
        row = json.loads(line)
        cases.append(
            B.BfclCase(
                category="live_relevance",
                id=row["id"],
                index=index,
                messages=tuple(
                    Message(role=m["role"], content=m["content"]) for m in row["question"][0]
                ),
                functions=tuple(row["function"]),
                answers=None,
            )
        )
    return cases


def held_out(per: dict[str, int]) -> tuple[list[B.BfclCase], dict[str, Any]]:
    cases: list[B.BfclCase] = []
    info: dict[str, Any] = {}
    for category in CALLING:
        _, test = B.split(B.load(category))
        usual = random.Random(f"0:{category}").sample(test, min(40, len(test)))
        rest = [c for c in test if c.id not in {u.id for u in usual}]
        unseen = random.Random(f"0:{category}").sample(rest, min(40, len(rest)))
        pool = [c for c in rest if c.id not in {u.id for u in unseen}]
        take = random.Random(f"rules:{category}").sample(pool, min(per.get(category, 0), len(pool)))
        info[category] = {
            "test": len(test),
            "usual": len(usual),
            "unseen": len(unseen),
            "pool": len(pool),
            "taken": len(take),
        }
        cases += take
    rel = live_relevance()
    info["live_relevance"] = {"taken": len(rel)}
    return cases + rel, info


def check(case: B.BfclCase, calls: list[dict[str, Any]]) -> str | None:
    if case.category == "live_relevance":
        return None if calls else "no call made (a function fits)"
    return B.check(case, calls)


# --- a caching model --------------------------------------------------------------------------


def _key(request: ChatRequest) -> str:
    body = {
        "messages": [[m.role, m.content] for m in request.messages],
        "max_tokens": request.max_tokens,
        "temperature": request.temperature,
        "seed": request.seed,
        "stop": list(request.stop),
        "schema": request.json_schema,
        "tools": list(request.tools),
        "tool_choice": request.tool_choice,
        "top_p": request.top_p,
    }
    return hashlib.sha256(json.dumps(body, sort_keys=True, default=str).encode()).hexdigest()


class Cached:
    native_tools = False

    def __init__(self, path: Path, model: Any | None) -> None:
        self.path, self.model = path, model
        self.store: dict[str, dict[str, Any]] = {}
        if path.exists():
            for line in path.read_text().splitlines():
                row = json.loads(line)
                self.store[row["key"]] = row
        self.misses = 0
        self.unanswered = 0

    def __getattr__(self, name: str) -> Any:  # anything else the loop asks of a model
        return getattr(self.model, name)

    async def acomplete(self, request: ChatRequest) -> Completion:
        key = _key(request)
        row = self.store.get(key)
        if row is None:
            self.misses += 1
            if self.model is None:
                self.unanswered += 1
                raise RuntimeError("not in the cache and --no-model")
            done = await self.model.acomplete(request)
            row = {
                "key": key,
                "text": done.text,
                "finish": done.finish_reason,
                "tool_calls": list(done.tool_calls),
                "usage": [done.usage.prompt_tokens, done.usage.completion_tokens],
            }
            self.store[key] = row
            with self.path.open("a") as f:
                f.write(json.dumps(row) + "\n")
        return Completion(
            text=row["text"],
            model="cached",
            finish_reason=row["finish"],
            tool_calls=tuple(row["tool_calls"]),
            usage=Usage(prompt_tokens=row["usage"][0], completion_tokens=row["usage"][1]),
        )


_GATE: dict[Any, Any] = {}
_real_gate = B.gate


def memo_gate(message: str, tools: dict[str, Any], threshold: float | None = None) -> Any:
    key = (message, tuple(sorted(tools)), threshold)
    if key not in _GATE:
        scores, offered = _real_gate(message, tools, threshold)
        _GATE[key] = (scores, sorted(offered))
    scores, names = _GATE[key]
    return scores, {n: tools[n] for n in names}


# --- the rules with switches ------------------------------------------------------------------

OFF: set[str] = set()
_OLD_CODE = re.compile(r"[A-Za-z]{2,3}(?:[-_][A-Za-z]{2,4})?")  # before 946981c ('Wi-Fi' a code)
_COUNTING = {
    "once",
    "twice",
    "thrice",
    "dozen",
    "fortnight",
    "decade",
    "decades",
    "century",
    "centuries",
}


def numbers_in(text: str) -> set[float]:
    found: set[float] = set()
    for match in P._NUMBER.finditer(text):
        raw = match.group(0)
        scale = P._SCALE.match(text, match.end())
        factor = P._SCALES[scale.group(1).lower()] if scale and "num.scale" not in OFF else 1.0
        signed = "num.sign_apart" not in OFF and re.search(
            r"[-\u2212]\s+$", text[max(0, match.start() - 3) : match.start()]
        )
        # "num.comma_list" off: every comma a thousands separator (before 0220aaa)
        if "num.comma_list" in OFF or P.thousands(raw):
            candidates = [raw.replace(",", "")]
        else:
            candidates = [raw.replace(",", "."), *raw.split(",")]
        for candidate in candidates:
            try:
                number = float(candidate)
            except ValueError:
                continue
            found.add(number)
            if signed:
                found.add(-number)
            if factor != 1.0:
                found.add(round(number * factor, 6))
    lowered = text.lower()
    for word in re.findall(r"[a-z]+", lowered):
        if word in P._WORDS:
            counting = word in _COUNTING
            if counting and "num.counting_words" in OFF:
                continue
            if not counting and "num.spelled_0_12" in OFF:
                continue
            found.add(P._WORDS[word])
    if "num.one_unit" not in OFF and P._ONE_UNIT.search(lowered):
        found.add(1.0)
    return found


def given(value: float, known: set[float]) -> bool:
    for k in known:
        if abs(value - k) < 1e-9:
            return True
        if "num.percent" in OFF:
            continue
        if abs(value * 100 - k) < 1e-6:
            return True
        if (abs(k) <= 1 or "num.percent_guard" in OFF) and abs(value - k * 100) < 1e-6:
            return True
    return False


def unsupported_values(
    arguments: dict[str, Any], schema: dict[str, Any], sources: Any
) -> list[tuple[str, str]]:
    held = sources if isinstance(sources, P.Sources) else P.Sources(sources)
    known, runs = held.numbers, held.runs
    vocabulary, foreign = held.vocabulary, held.foreign
    problems: list[tuple[str, str]] = []
    required = set(schema.get("required", []))
    top = ""

    def allowed(value: Any, prop: dict[str, Any]) -> bool:
        return value in prop.get("enum", []) or ("default" in prop and value == prop["default"])

    def visit(path: str, value: Any, prop: dict[str, Any]) -> None:
        if isinstance(value, bool) or value is None or allowed(value, prop):
            return
        if isinstance(value, (int, float)):
            if "num.grounding" not in OFF and not P.given(float(value), known):
                problems.append((top, f"{path}={value!r}"))
        elif isinstance(value, str):
            missing = (
                []
                if "str.digit_runs" in OFF
                else [r for r in P._digit_runs(value) if r not in runs]
            )
            if (
                path == top
                and top in required
                and P._free_text(prop)
                and "text.free_text" not in OFF
            ):
                named = P._mentioned(value, held)
            else:
                named = "." in path or P._supported(value, vocabulary, foreign)
            if missing or not named:
                problems.append((top, f"{path}={value!r}"))
        elif isinstance(value, list):
            items = prop.get("items", {}) if isinstance(prop.get("items"), dict) else {}
            for i, item in enumerate(value):
                visit(f"{path}[{i}]", item, items)
        elif isinstance(value, dict):
            props = prop.get("properties", {})
            for key, item in value.items():
                visit(f"{path}.{key}", item, props.get(key, {}))

    properties = schema.get("properties", {})
    for name, value in arguments.items():
        top = name
        prop = properties.get(name, {}) if isinstance(properties, dict) else {}
        if (
            "req.empty" not in OFF
            and name in required
            and value in ("", [], {})
            and not allowed(value, prop)
        ):
            problems.append((name, f"{name}={value!r} (empty)"))
            continue
        visit(name, value, prop)
    return problems


def ground_arguments(
    arguments: dict[str, Any], schema: dict[str, Any], sources: Any, request: str | None = None
) -> P.Grounded:
    held = sources if isinstance(sources, P.Sources) else P.Sources(sources)
    guessed = P.unsupported_values(arguments, schema, held)
    required = set(schema.get("required", []))
    if any(arg in required for arg, _ in guessed):
        if "refuse.required" not in OFF:
            return P.Grounded(arguments, [value for _, value in guessed], [])
        guessed = [(a, v) for a, v in guessed if a not in required]
    if "drop.optional" in OFF:
        guessed = []
    dropped = {arg for arg, _ in guessed}
    kept = {k: v for k, v in arguments.items() if k not in dropped}
    pruned: list[str] = []
    every = "every.options" not in OFF and P._EVERY.search(
        (held.text if request is None else request).lower()
    )
    if not every:
        kept, pruned = P.unnamed_options(kept, schema, held)
    return P.Grounded(kept, [], [value for _, value in guessed] + pruned)


def unnamed_options(
    arguments: dict[str, Any], schema: dict[str, Any], sources: Any
) -> tuple[dict[str, Any], list[str]]:
    properties = schema.get("properties", {})
    required = set(schema.get("required", []))
    kept = dict(arguments)
    pruned: list[str] = []

    def unnamed(member: Any, options: list[Any]) -> bool:
        return (
            isinstance(member, str)
            and member in options
            and P._judged(member)
            and not P._CODE.fullmatch(member)
            and not P._option_named(member, sources)
        )

    for name, value in arguments.items():
        prop = properties.get(name, {}) if isinstance(properties, dict) else {}
        if value == prop.get("default"):
            continue
        if (
            "opts.optional_enum" not in OFF
            and name not in required
            and unnamed(value, prop.get("enum") or [])
        ):
            pruned.append(f"{name}={value!r}")
            del kept[name]
            continue
        items = prop.get("items") if isinstance(prop.get("items"), dict) else {}
        if not isinstance(value, list):
            continue
        enum = None if "opts.enum_list" in OFF else (items or {}).get("enum")
        options = enum or (
            None if "opts.examples" in OFF else P._examples(value, prop, items or {})
        )
        if not options:
            continue
        out = [i for i, member in enumerate(value) if unnamed(member, options)]
        left = [member for i, member in enumerate(value) if i not in out]
        if not out or (not left and name in required):
            continue
        pruned += [f"{name}[{i}]={value[i]!r}" for i in out]
        if left:
            kept[name] = left
        else:
            del kept[name]
    return kept, pruned


_variants, _redundant, _nothing_new = P.variants, P.redundant, P.nothing_new


def variants(calls, schemas, sources, *, request=None, earlier=()):
    if "seq.variants" in OFF:
        return {}
    if "every.variants" in OFF:
        request = ""
    return _variants(calls, schemas, sources, request=request, earlier=earlier)


def redundant(calls, schemas, earlier=()):
    return {} if "seq.redundant" in OFF else _redundant(calls, schemas, earlier)


def nothing_new(calls, schemas, sources, earlier):
    return {} if "seq.nothing_new" in OFF else _nothing_new(calls, schemas, sources, earlier)


_real_supported, _real_initials, _real_mentioned = P._supported, P._initials, P._mentioned
_real_non_latin = P.non_latin


def supported(text: str, vocabulary: Any, foreign: bool) -> bool:
    return True if "text.names" in OFF else _real_supported(text, vocabulary, foreign)


def initials(text: str, vocabulary: Any) -> bool:
    return False if "text.initials" in OFF else _real_initials(text, vocabulary)


def non_latin(text: str) -> bool:
    return False if "text.foreign" in OFF else _real_non_latin(text)


_real_code = P._CODE


class _Code:
    def fullmatch(self, s: str) -> Any:
        return (_OLD_CODE if "opts.code_wifi" in OFF else _real_code).fullmatch(s)


RULES = {
    "num.grounding": "numbers in a call must be numbers the sources give "
    "(`unsupported_values`, `given`)",
    "num.comma_list": "a comma splits a list / is a decimal comma unless groups are thousands "
    "(`numbers_in`, `thousands`)",
    "num.scale": "$1.2M, 3 billion, 5k read whole (`numbers_in`, `_SCALE`)",
    "num.sign_apart": "a minus standing apart makes a number negative (`numbers_in`)",
    "num.spelled_0_12": "zero..twelve as words (`_WORDS`)",
    "num.counting_words": "once, twice, thrice, dozen, fortnight, decade, century (`_WORDS`)",
    "num.one_unit": "'next month', 'an hour' give 1 (`_ONE_UNIT`)",
    "num.percent": "8 given as 0.08 or 0.05 as 5 (`given`)",
    "num.percent_guard": "a number > 1 times 100 is no percentage ('5,10' gave 510) (`given`)",
    "str.digit_runs": "runs of 3+ digits in text must be in the sources (`_digit_runs`)",
    "text.names": "a capitalised word of 4+ letters must share a word with the sources "
    "(`_supported`)",
    "text.initials": "'New York City' spelled from 'NYC' (`_initials`)",
    "text.free_text": "required free text must share a word of 3+ letters (`_mentioned`)",
    "text.foreign": "no text judged when the sources are mostly non-Latin (`non_latin`)",
    "req.empty": "a required value left empty is missing (`unsupported_values`)",
    "refuse.required": "a required value nobody gave holds the call back and re-asks "
    "(`ground_arguments`)",
    "drop.optional": "an optional value nobody gave is left out (`ground_arguments`)",
    "opts.enum_list": "a list of enum members is pruned to the named ones (`unnamed_options`)",
    "opts.examples": "list items copied from the description's examples are pruned (`_examples`)",
    "opts.optional_enum": "an optional enum option nobody named is left out (`unnamed_options`)",
    "opts.code_wifi": "'Wi-Fi' is a word, not a code (`_CODE`)",
    "every.options": "'both/all/each/every/any' keeps lists of options whole "
    "(`ground_arguments`, `_EVERY`)",
    "every.variants": "'both/all/...' disables the variants rule (`variants`, `_EVERY`)",
    "seq.variants": "a call that differs only in values nobody named is not run (`variants`)",
    "seq.redundant": "a call asking nothing an earlier call did not is not run (`redundant`)",
    "seq.nothing_new": "after the stated count, a call bringing no new source value is not run "
    "(`nothing_new`)",
    "all": "every provenance rule (`tool_limits.grounded_arguments=false`)",
}


@contextlib.contextmanager
def switched(off: set[str]):
    OFF.clear()
    OFF.update(off)
    patches = [
        mock.patch.object(P, "numbers_in", numbers_in),
        mock.patch.object(P, "given", given),
        mock.patch.object(P, "unsupported_values", unsupported_values),
        mock.patch.object(P, "ground_arguments", ground_arguments),
        mock.patch.object(L, "ground_arguments", ground_arguments),
        mock.patch.object(P, "unnamed_options", unnamed_options),
        mock.patch.object(L, "variants", variants),
        mock.patch.object(L, "redundant", redundant),
        mock.patch.object(L, "nothing_new", nothing_new),
        mock.patch.object(P, "_supported", supported),
        mock.patch.object(P, "_initials", initials),
        mock.patch.object(P, "non_latin", non_latin),
        mock.patch.object(P, "_CODE", _Code()),
        mock.patch.object(B, "gate", memo_gate),
    ]
    for p in patches:
        p.start()
    try:
        yield
    finally:
        for p in patches:
            p.stop()
        OFF.clear()


def run_case(model: Cached, case: B.BfclCase, limits: Any) -> dict[str, Any]:
    try:
        calls, text, _ = asyncio.run(B.charter_calls(model, case, limits))
        why = check(case, calls)
    except Exception as exc:
        calls, text, why = [], "", f"error: {type(exc).__name__}: {exc}"
    return {"ok": why is None, "why": why, "calls": calls, "text": text[:600]}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("what", choices=["collect", "ablate", "report"])
    parser.add_argument("--model", default="qwen2.5-coder-0.5b")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--per", default="simple_python=40,multiple=20,parallel=20,live_simple=49")
    parser.add_argument("--rules", default=",".join(RULES))
    parser.add_argument("--no-model", action="store_true")
    parser.add_argument(
        "--irrelevance",
        action="store_true",
        help="the test half of irrelevance instead (every case of it was run and "
        "read in earlier reports: not held out; files get -irrelevance)",
    )
    args = parser.parse_args()
    if args.what == "report":
        report()
        return
    from charter.models import weights
    from charter.models.local import LocalModel
    from charter.spec.models import ToolLimits

    per = {k: int(v) for k, v in (p.split("=") for p in args.per.split(","))}
    cases, info = held_out(per)
    tag = ""
    if args.irrelevance:
        _, cases = B.split(B.load("irrelevance"))
        info, tag = {"irrelevance": {"taken": len(cases), "held_out": False}}, "-irrelevance"
    OUT.mkdir(parents=True, exist_ok=True)
    real = None if args.no_model else LocalModel(weights.resolve(args.model), threads=args.threads)
    model = Cached(OUT / "cache.jsonl", real)
    limits = ToolLimits(max_seconds=600)
    base_path = OUT / f"baseline{tag}.json"
    if args.what == "collect":
        rows = json.loads(base_path.read_text())["rows"] if base_path.exists() else {}
        for i, case in enumerate(cases, 1):
            if case.id in rows:
                continue
            started = time.perf_counter()
            with switched(set()):
                rows[case.id] = {"category": case.category, **run_case(model, case, limits)}
            rows[case.id]["s"] = round(time.perf_counter() - started, 2)
            print(
                f"{i}/{len(cases)} {case.id} {'ok' if rows[case.id]['ok'] else 'x'} "
                f"{rows[case.id]['s']}s",
                flush=True,
            )
            base_path.write_text(
                json.dumps({"info": info, "model": args.model, "rows": rows}, indent=1)
            )
        return
    base = json.loads(base_path.read_text())["rows"]
    result_path = OUT / f"ablation{tag}.json"
    results = json.loads(result_path.read_text()) if result_path.exists() else {}
    # the switched reimplementation with nothing off must replay the baseline exactly
    for rule in ["none", *args.rules.split(",")]:
        before = model.misses
        changed = []
        for case in cases:
            if case.id not in base:
                continue
            off = set() if rule == "none" else {rule}
            lim = (
                limits.model_copy(update={"grounded_arguments": False}) if rule == "all" else limits
            )
            with switched(off):
                row = run_case(model, case, lim)
            b = base[case.id]
            if row["calls"] != b["calls"] or row["ok"] != b["ok"]:
                effect = (
                    "helps"
                    if b["ok"] and not row["ok"]
                    else "hurts"
                    if row["ok"] and not b["ok"]
                    else "neutral"
                )
                changed.append(
                    {
                        "id": case.id,
                        "effect": effect,
                        "with": b["calls"],
                        "without": row["calls"],
                        "why_without": row["why"],
                        "why_with": b["why"],
                    }
                )
        results[rule] = {
            "what": RULES.get(rule, "the switched code with nothing off"),
            "changed": len(changed),
            "helps": sum(c["effect"] == "helps" for c in changed),
            "hurts": sum(c["effect"] == "hurts" for c in changed),
            "new_model_calls": model.misses - before,
            "cases": changed,
        }
        print(
            f"{rule:<22} changed {len(changed):>3}  helps {results[rule]['helps']}  "
            f"hurts {results[rule]['hurts']}  new model calls {model.misses - before}",
            flush=True,
        )
        result_path.write_text(json.dumps(results, indent=1))
    print(f"unanswered (--no-model): {model.unanswered}", file=sys.stderr)


def report() -> None:
    """Per rule: cases changed, right/wrong, split by calling categories, live_relevance and
    (if run) irrelevance: `python bench/rules/provenance_ablation.py` with `report`."""
    tables = {"": OUT / "ablation.json", "irrelevance": OUT / "ablation-irrelevance.json"}
    for tag, path in tables.items():
        if not path.exists():
            continue
        data = json.loads(path.read_text())
        for rule, r in data.items():
            groups: dict[str, list[int]] = {}
            for c in r["cases"]:
                cat = c["id"].rsplit("_", 1)[0].split("_")[0]
                cat = {"live": "live_relevance" if "relevance" in c["id"] else "live_simple"}.get(
                    cat, cat
                )
                group = (
                    "calling" if cat in ("simple", "multiple", "parallel", "live_simple") else cat
                )
                g = groups.setdefault(group, [0, 0, 0])
                g[0] += 1
                g[1] += c["effect"] == "helps"
                g[2] += c["effect"] == "hurts"
            shown = "  ".join(
                f"{k}: {v[0]} changed, {v[1]} right/{v[2]} wrong" for k, v in groups.items()
            )
            print(
                f"{tag or 'held-out':<12}{rule:<20}{shown or '0 changed'}  "
                f"(new model calls {r['new_model_calls']})"
            )


if __name__ == "__main__":
    main()
