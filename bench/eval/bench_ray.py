"""How `charter eval --ray` scales: cases per minute with 1 and 2 Ray workers, against one
process, when the model is a served upstream with a fixed latency.

    .venv/bin/python bench/eval/bench_ray.py [--cases 48] [--latency 0.5] [--workers 1,2]

The upstream is an OpenAI-compatible server on loopback (started here) that answers every
chat completion after `--latency` seconds, several requests at once, as a served model
would. What is measured is the fan-out, not a model: each case is one call off and one
call on (guards off, so the only work per case is the upstream's latency). The baseline is
`Runner.run` in this process with one worker, measured in the same run. A local Ray
instance is started for the Ray runs (its start-up is not timed: `ray.init` comes first).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from charter.eval.cases import Case
from charter.eval.distributed import run_on_ray
from charter.eval.runner import Cache, Runner
from charter.models.factory import build_model
from charter.spec import load_charter


def _upstream(latency: float) -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("content-length", "0"))
            self.rfile.read(length)
            time.sleep(latency)
            body = json.dumps(
                {
                    "id": "x",
                    "object": "chat.completion",
                    "model": "fixed-latency",
                    "choices": [
                        {
                            "index": 0,
                            "message": {"role": "assistant", "content": "Here is an answer."},
                            "finish_reason": "stop",
                        }
                    ],
                    "usage": {"prompt_tokens": 10, "completion_tokens": 4, "total_tokens": 14},
                }
            ).encode()
            self.send_response(200)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def _charter(folder: Path, port: int) -> Path:
    path = folder / "charter.yaml"
    path.write_text(
        "id: bench-ray\n"
        "persona: {name: Sol, role: assistant, organisation: Charter Labs}\n"
        "guards: {input: [], output: []}\n"
        "models:\n"
        f"  chat: {{backend: openai, base_url: 'http://127.0.0.1:{port}/v1', model: m}}\n",
        encoding="utf-8",
    )
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=48)
    parser.add_argument("--latency", type=float, default=0.5)
    parser.add_argument("--workers", default="1,2")
    args = parser.parse_args()
    import ray

    server = _upstream(args.latency)
    cases = [Case("over_refusal", f"q{i}", f"Question number {i}?") for i in range(args.cases)]
    rows: list[tuple[str, float]] = []
    with tempfile.TemporaryDirectory() as tmp:
        charter = _charter(Path(tmp), server.server_address[1])
        spec = load_charter(charter)

        def runner(name: str) -> Runner:
            return Runner(spec, build_model(spec.models.chat), Cache(Path(tmp) / f"{name}.db"))

        local = runner("local")
        started = time.perf_counter()
        local.run(cases)
        rows.append(("one process, 1 worker (baseline)", time.perf_counter() - started))
        local.close()
        ray.init(include_dashboard=False, log_to_driver=False)
        try:
            for workers in (int(w) for w in args.workers.split(",")):
                distributed = runner(f"ray{workers}")
                started = time.perf_counter()
                run_on_ray(distributed, cases, workers=workers)
                rows.append((f"Ray, {workers} worker(s)", time.perf_counter() - started))
                distributed.close()
        finally:
            ray.shutdown()
    server.shutdown()
    calls = 2 * args.cases
    base = rows[0][1]
    print(f"{args.cases} cases ({calls} calls), upstream latency {args.latency} s")
    for name, seconds in rows:
        per_minute = args.cases / seconds * 60
        print(f"  {name:34} {seconds:6.1f} s  {per_minute:6.1f} cases/min  {base / seconds:.2f}x")


if __name__ == "__main__":
    main()
