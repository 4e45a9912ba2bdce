"""Charter's cost over a direct call of the same runtime, on the default local model.

    .venv/bin/python bench/core/bench_overhead.py [--reps 5] [--threads 2]

Measured in one run, on one loaded model (so both sides share weights, threads and cache):
1. weights verification (SHA-256) and model load time;
2. one turn through `Charter.respond` (pipeline only: guards off; and guarded: the default
   input and output guards) vs `xllamacpp.Server.handle_chat_completions` with the
   byte-identical model request, in two regimes:
   - cold: llama.cpp's prompt cache is off (a first turn: the whole system prompt is read);
   - warm: the same request was just served (a later turn: the prompt is cached);
   order alternates each repetition so drift on a shared machine hits both sides alike;
3. Charter's own time inside a turn: turn wall time minus the time spent in the model call,
   measured at the model boundary (exact, not a difference of two noisy medians);
4. time to first token of `charter chat --once` as a new process vs a minimal script that
   loads the same model with xllamacpp and streams the same request.
Prints medians and ratios; writes bench/results/core.json.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from charter import Charter
from charter.models import ChatRequest, Completion, Message, weights
from charter.models.base import ChatModel, StreamEvent
from charter.models.local import LocalModel
from charter.models.openai_wire import request_payload
from charter.persona import compile_system_prompt
from charter.spec import load_charter

ROOT = Path(__file__).resolve().parents[2]
ACME = ROOT / "examples" / "acme-bank" / "charter.yaml"
QUESTION = "What are your opening hours on Saturday, and is there a fee to replace a card?"


class TimedModel(ChatModel):
    """Wraps a model and adds up the wall time spent inside it."""

    def __init__(self, inner: ChatModel) -> None:
        self.inner = inner
        self.name = inner.name
        self.context_window = inner.context_window
        self.seconds = 0.0
        self.last: Completion | None = None

    def complete(self, request: ChatRequest) -> Completion:
        started = time.perf_counter()
        try:
            self.last = self.inner.complete(request)
            return self.last
        finally:
            self.seconds += time.perf_counter() - started

    def stream(self, request: ChatRequest) -> Iterator[StreamEvent]:
        started = time.perf_counter()
        try:
            yield from self.inner.stream(request)
        finally:
            self.seconds += time.perf_counter() - started

    async def acomplete(self, request: ChatRequest) -> Completion:
        return self.complete(request)  # same thread: no hand-off cost charged to Charter


def median(values: list[float]) -> float:
    return statistics.median(values)


def turn_request(charter: Charter) -> ChatRequest:
    spec = charter.spec.models.chat
    system = compile_system_prompt(charter.spec).text
    return ChatRequest(
        messages=[Message(role="system", content=system), Message(role="user", content=QUESTION)],
        max_tokens=spec.max_tokens,
        temperature=spec.temperature,
        seed=spec.seed,
    )


def direct_call(model: LocalModel, request: ChatRequest) -> tuple[float, dict[str, Any]]:
    body = request_payload(request, stream=False) | {"cache_prompt": model.cache_prompt}
    started = time.perf_counter()
    data = model._server.handle_chat_completions(body)
    return time.perf_counter() - started, data


def charter_call(charter: Charter, timed: TimedModel) -> tuple[float, float]:
    timed.seconds = 0.0
    started = time.perf_counter()
    charter.respond(QUESTION, user="bench")
    wall = time.perf_counter() - started
    return wall, wall - timed.seconds


def ttft(command: list[str], env: dict[str, str]) -> float:
    started = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env)
    assert process.stdout is not None
    process.stdout.read(1)
    first = time.perf_counter() - started
    process.stdout.read()
    process.wait()
    if process.returncode != 0:
        raise SystemExit(f"{command} exited {process.returncode}")
    return first


DIRECT_TTFT = """
import json, sys, xllamacpp
from charter.persona import compile_system_prompt
from charter.spec import load_charter
spec = load_charter(sys.argv[1])
p = xllamacpp.CommonParams()
p.model.path = sys.argv[2]; p.n_ctx = 4096; p.n_parallel = 1; p.verbosity = -1
p.cpuparams.n_threads = p.cpuparams_batch.n_threads = int(sys.argv[3])
server = xllamacpp.Server(p)
body = {"messages": [{"role": "system", "content": compile_system_prompt(spec).text},
                     {"role": "user", "content": sys.argv[4]}],
        "max_tokens": 200, "temperature": 0.0, "stream": True}
def on_chunk(chunk):
    for choice in chunk.get("choices") or []:
        text = (choice.get("delta") or {}).get("content")
        if text:
            sys.stdout.write(text); sys.stdout.flush()
    return False
server.handle_chat_completions(body, on_chunk)
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--ttft-reps", type=int, default=3)
    args = parser.parse_args()

    entry = weights.get_weights(weights.DEFAULT_MODEL)
    started = time.perf_counter()
    path = weights.resolve(entry.name)
    verify_s = time.perf_counter() - started
    model = LocalModel(path, name=entry.name, n_ctx=4096, threads=args.threads)
    timed = TimedModel(model)
    spec = load_charter(ACME)
    unguarded = spec.model_copy(
        update={"guards": spec.guards.model_copy(update={"input": [], "output": []})}
    )
    charters = {"pipeline": Charter(unguarded, model=timed), "guarded": Charter(spec, model=timed)}
    request = turn_request(charters["pipeline"])
    for charter in charters.values():
        _ = charter.pipeline  # build stages and load guard models outside the clock
        charter.respond("warm-up")

    results: dict[str, Any] = {
        "model": entry.name,
        "threads": args.threads,
        "reps": args.reps,
        "verify_s": verify_s,
        "load_s": model.load_seconds,
    }
    _, first = direct_call(model, request)  # warm-up: first call pays one-off allocations
    results["prompt_tokens"] = first["usage"]["prompt_tokens"]

    sides = ("direct", "pipeline", "guarded")
    for regime in ("cold", "warm"):
        model.cache_prompt = regime == "warm"
        walls: dict[str, list[float]] = {side: [] for side in sides}
        own: dict[str, list[float]] = {side: [] for side in sides[1:]}
        prompt_tps: list[float] = []
        gen_tps: list[float] = []
        for rep in range(args.reps):
            order = sides[rep % 3 :] + sides[: rep % 3]  # rotate so drift hits all sides
            for side in order:
                if regime == "warm":
                    direct_call(model, request)  # the same request was just served
                if side == "direct":
                    seconds, data = direct_call(model, request)
                    walls[side].append(seconds)
                    timings = data.get("timings", {})
                    if regime == "cold":
                        prompt_tps.append(float(timings.get("prompt_per_second", 0.0)))
                    gen_tps.append(float(timings.get("predicted_per_second", 0.0)))
                else:
                    wall, charter_own = charter_call(charters[side], timed)
                    walls[side].append(wall)
                    own[side].append(charter_own)
        d = median(walls["direct"])
        results[regime] = {
            "direct_s": d,
            "prompt_tokens_per_s": median(prompt_tps) if prompt_tps else None,
            "generate_tokens_per_s": median(gen_tps),
            "direct_all_s": walls["direct"],
        }
        for side in sides[1:]:
            c = median(walls[side])
            results[regime][side] = {
                "charter_s": c,
                "overhead_ratio": c / d - 1,
                "own_ms_median": median(own[side]) * 1000,
                "own_share": median(own[side]) / c,
                "all_s": walls[side],
            }
    model.close()

    env = {**os.environ}
    charter_cmd = [sys.executable, "-m", "charter", "chat", str(ACME), "--once", QUESTION]
    charter_cmd += ["--no-trace", "--db", str(ROOT / "bench" / "results" / "bench.db")]
    (ROOT / "bench" / "results").mkdir(parents=True, exist_ok=True)
    direct_cmd = [sys.executable, "-c", DIRECT_TTFT, str(ACME), str(path), str(args.threads)]
    direct_cmd.append(QUESTION)
    ttft_direct: list[float] = []
    ttft_charter: list[float] = []
    for _ in range(args.ttft_reps):
        ttft_direct.append(ttft(direct_cmd, env))
        ttft_charter.append(ttft(charter_cmd, env))
    results["ttft"] = {
        "direct_s": median(ttft_direct),
        "charter_s": median(ttft_charter),
        "ratio": median(ttft_charter) / median(ttft_direct),
        "direct_all_s": ttft_direct,
        "charter_all_s": ttft_charter,
    }

    out = ROOT / "bench" / "results" / "core.json"
    out.write_text(json.dumps(results, indent=2))
    print(
        f"model {entry.name}, {args.threads} threads, {args.reps} reps, "
        f"prompt {results['prompt_tokens']} tokens"
    )
    print(f"verify (SHA-256) {verify_s:.2f} s, load {model.load_seconds:.2f} s")
    for regime in ("cold", "warm"):
        r = results[regime]
        speeds = f"gen {r['generate_tokens_per_s']:.1f} tok/s"
        if r["prompt_tokens_per_s"]:
            speeds += f", prompt {r['prompt_tokens_per_s']:.0f} tok/s"
        print(f"{regime:>5}: direct {r['direct_s']:.3f} s ({speeds})")
        for side in ("pipeline", "guarded"):
            x = r[side]
            print(
                f"       {side:8}: {x['charter_s']:.3f} s, overhead {x['overhead_ratio']:+.1%}; "
                f"Charter's own time {x['own_ms_median']:.2f} ms ({x['own_share']:.2%} of the turn)"
            )
    t = results["ttft"]
    print(
        f" ttft: `charter chat --once` {t['charter_s']:.2f} s vs direct script "
        f"{t['direct_s']:.2f} s (x{t['ratio']:.2f})"
    )
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
