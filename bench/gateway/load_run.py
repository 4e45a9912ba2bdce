"""A bounded load run on loopback: N concurrent conversations through `charter serve`.

    .venv/bin/python bench/gateway/load_run.py [--conversations 200] [--turns 3] [--guards]

The gateway runs in front of the fake upstream (`fake_upstream.py`), with the default guards
if `--guards`, critique and drift off. Each conversation sends `--turns` messages, each with
the conversation so far, all conversations at once. Counts the answers by status (target:
zero 5xx), compares the audit records in the gateway's database with the turns sent (target:
none lost), and prints the wall time and turns per second. Writes bench/results/load.json.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_gateway import ROOT, charter_file, free_port, start

from charter.store.sqlite import Store


async def conversation(client: httpx.AsyncClient, url: str, n: int, turns: int) -> list[int]:
    messages: list[dict[str, str]] = []
    statuses = []
    for turn in range(turns):
        messages.append({"role": "user", "content": f"Conversation {n}, question {turn}: hours?"})
        response = await client.post(url, json={"model": "bench", "messages": messages})
        statuses.append(response.status_code)
        if response.status_code == 200:
            messages.append(
                {
                    "role": "assistant",
                    "content": response.json()["choices"][0]["message"]["content"],
                }
            )
        else:
            messages.pop()
    return statuses


async def run(url: str, conversations: int, turns: int) -> tuple[list[int], float]:
    limits = httpx.Limits(max_connections=conversations, max_keepalive_connections=conversations)
    async with httpx.AsyncClient(timeout=300, limits=limits) as client:
        started = time.perf_counter()
        results = await asyncio.gather(
            *(conversation(client, url, n, turns) for n in range(conversations))
        )
        return [s for r in results for s in r], time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--conversations", type=int, default=200)
    parser.add_argument("--turns", type=int, default=3)
    parser.add_argument("--guards", action="store_true", help="the default guards on")
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="load-run-"))
    env = {**os.environ, "CHARTER_HOME": str(folder / "home"), "HF_HUB_OFFLINE": "1"}
    up = free_port()
    upstream = f"http://127.0.0.1:{up}/v1"
    gateway_port = free_port()
    db = folder / "audit.db"
    processes = [
        start(
            [sys.executable, str(ROOT / "bench" / "gateway" / "fake_upstream.py"), str(up)],
            f"http://127.0.0.1:{up}/docs",
            env,
            folder / "upstream.log",
        )
    ]
    try:
        charter = str(charter_file(folder, upstream, args.guards))
        processes.append(
            start(
                [sys.executable, "-m", "charter", "serve", charter,
                 "--port", str(gateway_port), "--db", str(db)],
                f"http://127.0.0.1:{gateway_port}/readyz",
                env,
                folder / "gateway.log",
            )
        )  # fmt: skip
        url = f"http://127.0.0.1:{gateway_port}/v1/chat/completions"
        statuses, wall = asyncio.run(run(url, args.conversations, args.turns))
    finally:
        for process in processes:
            process.terminate()
            process.wait(timeout=30)
    store = Store(db)
    audited = store.audit_count()
    store.close()
    by_status = collections.Counter(statuses)
    result: dict[str, Any] = {
        "settings": vars(args),
        "turns_sent": len(statuses),
        "by_status": {str(k): v for k, v in sorted(by_status.items())},
        "server_errors": sum(v for k, v in by_status.items() if k >= 500),
        "audit_records": audited,
        "lost_audit_records": len(statuses) - audited,
        "wall_s": round(wall, 2),
        "turns_per_s": round(len(statuses) / wall, 1),
    }
    print(json.dumps(result, indent=1))
    out = ROOT / "bench" / "results" / "load.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
