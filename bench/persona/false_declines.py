"""How often the persona's scope decline hits ordinary, in-scope messages.

    .venv/bin/python bench/persona/false_declines.py [--model NAME] [--messages FILE]
        [--charter FILE] [--out FILE]

Each message of `--messages` (default `bench/persona/scope/in_scope.txt`: one message a line,
`#` lines are comments; every message is in scope for the charter) is sent as the first turn
of a new conversation through the full pipeline of `--charter` (default the bench's scope
charter, whose persona judge must be built: `charter prompt FILE --build-judge`). A message
whose reply is the persona's decline (`critique.detail.declined`) is a false decline. Printed:
the count with a Wilson 95% interval, the judge's scope score for each message's draft, and
every declined message with its draft, and the share of a turn that holding the persona
costs (critique and hygiene stage time over the turn's); `--out` keeps every row as JSON lines.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

from charter import Charter
from charter.eval.evaluate import with_model
from charter.persona.judge import load_judge
from charter.spec.loader import load_charter
from charter.stats import Rate

HERE = Path(__file__).resolve().parent
HOLDING = ("critique", "hygiene")


def read_messages(path: Path) -> list[str]:
    lines = path.read_text(encoding="utf-8").splitlines()
    return [line.strip() for line in lines if line.strip() and not line.startswith("#")]


def scope_score(trace_detail: dict[str, Any]) -> float | None:
    """The scope rule's score on the draft (the first judgement of the turn)."""
    judged = trace_detail.get("persona_judge") or []
    if not judged:
        return None
    for rule in judged[0]["rules"]:
        if rule["rule"] == "scope":
            return float(rule["score"])
    return None


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--charter", type=Path, default=HERE / "charters" / "scope.yaml")
    parser.add_argument("--messages", type=Path, default=HERE / "scope" / "in_scope.txt")
    parser.add_argument("--model", help="chat model: a catalog name or a .gguf path")
    parser.add_argument("--out", type=Path, help="write every row here (JSON lines)")
    args = parser.parse_args()
    spec = with_model(load_charter(args.charter), args.model)
    if load_judge(spec) is None:
        raise SystemExit(
            f"no persona judge built for {args.charter}: run `charter prompt {args.charter} "
            "--build-judge` first"
        )
    charter = Charter(spec)
    messages = read_messages(args.messages)
    rows: list[dict[str, Any]] = []
    started = time.perf_counter()
    for message in messages:
        reply = charter.respond(message)
        detail = reply.trace["critique"].detail if "critique" in reply.trace else {}
        rows.append(
            {
                "message": message,
                "reply": reply.text,
                "draft": detail.get("draft"),
                "declined": bool(detail.get("declined")),
                "blocked": reply.blocked,
                "scope_score": scope_score(detail),
                "scope_gate": detail.get("scope_gate"),
                "ms": reply.ms,
                "held_ms": sum(r.ms for r in reply.trace.records if r.stage in HOLDING),
            }
        )
        mark = "DECLINED" if rows[-1]["declined"] else ("blocked" if reply.blocked else "kept")
        gate = rows[-1]["scope_gate"]
        print(f"{mark:8} {rows[-1]['scope_score']!s:>6} {gate!s:>6}  {message[:64]}", flush=True)
    declined = [r for r in rows if r["declined"]]
    answered = [r for r in rows if not r["blocked"]]
    name = getattr(spec.models.chat, "model", spec.models.chat.backend)
    print(f"\nmodel {name}, {len(rows)} in-scope messages, {time.perf_counter() - started:.0f} s")
    print(f"declined: {Rate(len(declined), len(answered))} (blocked: {len(rows) - len(answered)})")
    turn_ms = sum(r["ms"] for r in answered) / max(1, len(answered))
    held_ms = sum(r["held_ms"] for r in answered) / max(1, len(answered))
    print(
        f"a turn: {turn_ms / 1000:.2f} s, of which holding the persona (critique + hygiene) "
        f"{held_ms / 1000:.2f} s = {held_ms / max(turn_ms, 1e-9):.0%}"
    )
    for row in declined:
        print(f"- {row['message']}\n  draft: {(row['draft'] or '')[:200]!r}")
    if args.out is not None:
        args.out.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")


if __name__ == "__main__":
    main()
