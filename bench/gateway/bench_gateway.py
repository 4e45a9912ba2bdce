"""What the gateway adds over a direct call to the same upstream: latency, throughput, TTFT.

    .venv/bin/python bench/gateway/bench_gateway.py [--requests 200] [--concurrency 32]

Processes on loopback: a fake OpenAI-compatible upstream that answers at once
(`fake_upstream.py`), and `charter serve` in front of it, run three times: guards off
(`guards.input/output: []`), the default guards, and the default guards plus `hate`;
critique and drift off (they call the model again, which is not gateway overhead). The
upstream's replies differ per request, so the output guards' embedding cache cannot answer.
The client (the official openai SDK with a system and a user message, or bare httpx with
`--client httpx`) sends a one-line customer question directly to the upstream and through the
gateway, in the same run, alternating, one at a time for latency and `--concurrency` at a
time for throughput, plus streamed requests for time to first token. Prints p50 / p99
milliseconds and the difference gateway - direct, requests per second and the ratio to
direct, and writes bench/results/gateway.json. Targets: <= 3 ms p50 added without
guards, <= 15 ms with the default guards.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import yaml

ROOT = Path(__file__).resolve().parents[2]
QUESTION = "Hello, what time do your branches open on weekdays?"
_sent = 0


def question() -> str:
    """A message never sent before in this run: the guards' embedding cache must not make
    the injection classifier look free (a real user's next message is new text)."""
    global _sent
    _sent += 1
    return f"{QUESTION} My reference is {_sent}."


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start(command: list[str], url: str, env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    """Start `command` and wait until `url` answers below 500 (/readyz answers 503 while
    the charter loads, 200 once it has)."""
    handle = log.open("wb")
    process = subprocess.Popen(command, env=env, stdout=handle, stderr=handle)
    for _ in range(1200):
        try:
            if httpx.get(url, timeout=1).status_code < 500:
                return process
        except httpx.TransportError:
            pass
        if process.poll() is not None:
            raise RuntimeError(log.read_text())
        time.sleep(0.1)
    raise RuntimeError(f"{command} did not come up: {log.read_text()}")


def charter_file(folder: Path, upstream: str, guards: str) -> Path:
    """guards: "off", "default", or "hate" (the defaults plus the opt-in `hate` output
    guard, to show its own cost in the same run)."""
    data: dict[str, Any] = {
        "id": "bench",
        "persona": {"name": "Penny", "role": "support assistant", "organisation": "Acme Bank"},
        "critique": {"enabled": False},
        "drift": {"enabled": False},
        "models": {
            "chat": {"backend": "openai", "base_url": upstream, "model": "fake", "max_retries": 0}
        },
    }
    if guards == "off":
        data["guards"] = {"input": [], "output": []}
    elif guards == "hate":
        data["guards"] = {"output": ["leak", "toxicity", "hate", "pii", "policy"]}
    path = folder / f"bench-{guards}.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


async def one(client: httpx.AsyncClient, url: str, model: str) -> float:
    body = {"model": model, "messages": [{"role": "user", "content": question()}]}
    started = time.perf_counter()
    response = await client.post(url, json=body)
    response.raise_for_status()
    return (time.perf_counter() - started) * 1000


async def ttft(client: httpx.AsyncClient, url: str, model: str) -> float:
    body = {"model": model, "messages": [{"role": "user", "content": question()}], "stream": True}
    started = time.perf_counter()
    async with client.stream("POST", url, json=body) as response:
        async for line in response.aiter_lines():
            if line.startswith("data: ") and '"content": "' in line and '"content": ""' not in line:
                return (time.perf_counter() - started) * 1000
    raise RuntimeError("no content chunk")


async def one_sdk(client: Any, model: str) -> float:
    """One request as the official SDK sends it, with the usual system message."""
    started = time.perf_counter()
    await client.chat.completions.create(
        model=model,
        messages=[
            {"role": "system", "content": SYSTEM},
            {"role": "user", "content": question()},
        ],
    )
    return (time.perf_counter() - started) * 1000


SYSTEM = "You are a helpful assistant. Answer briefly."


async def latencies(direct: str, gateway: str, requests: int, sdk: bool) -> dict[str, list[float]]:
    """Latency one request at a time, direct and through the gateway alternately."""
    lat: dict[str, list[float]] = {"direct": [], "gateway": []}
    if sdk:
        import openai

        to_direct = openai.AsyncOpenAI(base_url=direct.rsplit("/chat/", 1)[0], api_key="x")
        to_gateway = openai.AsyncOpenAI(base_url=gateway.rsplit("/chat/", 1)[0], api_key="x")
        for _ in range(20):  # warm both paths
            await one_sdk(to_direct, "fake")
            await one_sdk(to_gateway, "bench")
        for _ in range(requests):
            lat["direct"].append(await one_sdk(to_direct, "fake"))
            lat["gateway"].append(await one_sdk(to_gateway, "bench"))
        await to_direct.close()
        await to_gateway.close()
        return lat
    async with httpx.AsyncClient(timeout=60) as client:
        for _ in range(20):  # warm both paths
            await one(client, direct, "fake")
            await one(client, gateway, "bench")
        for _ in range(requests):
            lat["direct"].append(await one(client, direct, "fake"))
            lat["gateway"].append(await one(client, gateway, "bench"))
    return lat


async def measure(
    direct: str, gateway: str, requests: int, concurrency: int, sdk: bool = False
) -> dict[str, Any]:
    lat = await latencies(direct, gateway, requests, sdk)
    async with httpx.AsyncClient(timeout=60) as client:
        first: dict[str, list[float]] = {"direct": [], "gateway": []}
        for _ in range(max(20, requests // 4)):
            first["direct"].append(await ttft(client, direct, "fake"))
            first["gateway"].append(await ttft(client, gateway, "bench"))
    rps: dict[str, float] = {}
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(timeout=120, limits=limits) as client:
        for name, url, model in (("direct", direct, "fake"), ("gateway", gateway, "bench")):
            started = time.perf_counter()
            await asyncio.gather(*(one(client, url, model) for _ in range(requests)))
            rps[name] = requests / (time.perf_counter() - started)
    out: dict[str, Any] = {}
    for name in ("direct", "gateway"):
        out[name] = {
            "p50_ms": round(statistics.median(lat[name]), 2),
            "p99_ms": round(percentile(lat[name], 99), 2),
            "ttft_p50_ms": round(statistics.median(first[name]), 2),
            "rps": round(rps[name], 1),
        }
    out["added"] = {
        "p50_ms": round(out["gateway"]["p50_ms"] - out["direct"]["p50_ms"], 2),
        "p99_ms": round(out["gateway"]["p99_ms"] - out["direct"]["p99_ms"], 2),
        "ttft_p50_ms": round(out["gateway"]["ttft_p50_ms"] - out["direct"]["ttft_p50_ms"], 2),
        "rps_ratio": round(rps["gateway"] / rps["direct"], 3),
    }
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument(
        "--client",
        choices=("httpx", "openai"),
        default="openai",
        help="Latency measured with the official openai SDK (a system and a user message, "
        "as apps send them) or with bare httpx (a user message).",
    )
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="bench-gateway-"))
    env = {**os.environ, "CHARTER_HOME": str(folder / "home"), "HF_HUB_OFFLINE": "1"}
    up_port = free_port()
    upstream = f"http://127.0.0.1:{up_port}/v1"
    processes = [
        start(
            [sys.executable, str(ROOT / "bench" / "gateway" / "fake_upstream.py"), str(up_port)],
            f"http://127.0.0.1:{up_port}/docs",
            env,
            folder / "upstream.log",
        )
    ]
    results: dict[str, Any] = {"settings": vars(args)}
    try:
        for label, guards in (
            ("guards_off", "off"),
            ("default_guards", "default"),
            ("default_guards_plus_hate", "hate"),
        ):
            port = free_port()
            charter = str(charter_file(folder, upstream, guards))
            command = [
                sys.executable, "-m", "charter", "serve", charter,
                "--port", str(port), "--db", str(folder / f"{label}.db"),
            ]  # fmt: skip
            server = start(command, f"http://127.0.0.1:{port}/readyz", env, folder / f"{label}.log")
            processes.append(server)
            results[label] = asyncio.run(
                measure(
                    f"{upstream}/chat/completions",
                    f"http://127.0.0.1:{port}/v1/chat/completions",
                    args.requests,
                    args.concurrency,
                    sdk=args.client == "openai",
                )
            )
            server.terminate()
            server.wait(timeout=30)
            r = results[label]
            print(
                f"{label}: direct p50 {r['direct']['p50_ms']} ms p99 {r['direct']['p99_ms']} ms; "
                f"gateway p50 {r['gateway']['p50_ms']} ms p99 {r['gateway']['p99_ms']} ms; "
                f"added p50 {r['added']['p50_ms']} ms p99 {r['added']['p99_ms']} ms; "
                f"TTFT added {r['added']['ttft_p50_ms']} ms; rps direct {r['direct']['rps']} "
                f"gateway {r['gateway']['rps']} (x{r['added']['rps_ratio']})",
                flush=True,
            )
    finally:
        for process in processes:
            if process.poll() is None:
                process.terminate()
                process.wait(timeout=30)
    out = ROOT / "bench" / "results" / "gateway.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=1) + "\n")
    print(f"wrote {out.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
