"""Memory of left-out turns: is a fact the user gave at turn 2 still used at turn 40? On vs off.

    .venv/bin/python bench/persona/bench_memory.py [--charter bench/models/general.yaml]
        [--model qwen2.5-coder-1.5b] [--context-window 2048] [--max-tokens 128]
        [--conversations 3] [--threads 2] [--fake]

A scripted user greets (turn 1), gives three facts at turn 2 (a pet's name, a booking
reference that looks like an account number, a deadline), asks 37 ordinary questions (turns
3-39, written for this bench), and at turn 40 asks for each fact: three probes, each asked
against the same 39-turn history, so that no probe's answer helps the next. A probe is
recalled when its reply holds the fact (the reference compared without spaces, dashes or
case; the deadline as its month and day in any order). Each conversation has its own facts.

Both conditions run the real charter (its guards, critique and drift as it has them) on the
same loaded model, with its context window set small (`--context-window`, 2048 tokens by
default) so that turn 2 is left out of the window early; replies are held to `--max-tokens`
for run time. Only `memory` differs: off is the behaviour before memory (the oldest
messages dropped, the user's first request, turn 1, pinned as a note); on takes notes and
recalls; `recall` (`--sides recall`) recalls without notes (`memory.notes: false`). Each
condition keeps its own history (its own replies) and passes each turn's carry to the next,
as `Conversation` does.

Prints recall on and off, the time a turn takes in each (mean over the scripted turns and the
probes), what the notes taker added per turn, and its calls and tokens; writes
bench/results/memory.json. `--fake` runs the harness on a scripted model (no weights; it
answers a probe from what it is shown), to check the bench itself: its numbers say nothing
about a real model.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from charter import Charter
from charter.models.base import ChatModel, ChatRequest, Message
from charter.models.factory import build_model
from charter.models.fake import Answer, FakeModel, Structured
from charter.spec import CharterSpec, load_charter
from charter.stats import Rate
from charter.turn import Carry

ROOT = Path(__file__).resolve().parents[2]
DEFAULT_CHARTER = ROOT / "bench" / "models" / "general.yaml"

OPENING = "Hi! I have a busy month ahead, and I'll ask you about all sorts of things."
FACTS = (
    {"pet": "dog", "name": "Pepper", "reference": "RX-20417-K", "month": "March", "day": 14},
    {"pet": "cat", "name": "Miso", "reference": "ZK-88123-04", "month": "June", "day": 3},
    {"pet": "parrot", "name": "Kiwi", "reference": "TR-66092-B", "month": "October", "day": 9},
    {"pet": "rabbit", "name": "Clover", "reference": "MB-31750-Q", "month": "August", "day": 21},
)
FILLERS = (
    "What's a simple way to keep track of monthly expenses?",
    "How long should I boil an egg for a soft yolk?",
    "Can you explain what an offset mortgage is?",
    "What are some good stretches after a long day at a desk?",
    "How do I get rid of fruit flies in the kitchen?",
    "What's the difference between baking soda and baking powder?",
    "Any tips for writing a clear cover letter?",
    "How do I repot a plant without damaging the roots?",
    "What should I check before buying a second-hand car?",
    "How can I make my mornings less rushed?",
    "What is a good way to memorise vocabulary in a new language?",
    "How do I descale a kettle?",
    "What are some ideas for a cheap weekend outing with friends?",
    "How often should I replace my toothbrush?",
    "Can you suggest a quick vegetarian lunch?",
    "How do I politely follow up on an email that got no reply?",
    "What's the best way to pack a suitcase so clothes don't wrinkle?",
    "How do solar panels turn sunlight into electricity?",
    "What should I do if my phone gets wet?",
    "How do I start a small herb garden on a balcony?",
    "What are some tips to stay focused while studying?",
    "How do I fold a fitted sheet?",
    "What is compound interest, in simple terms?",
    "How can I cut down on noise from the flat upstairs?",
    "What should I bring on my first day at a new job?",
    "How do I keep cut flowers fresh for longer?",
    "Can you recommend a board game for four adults?",
    "How do I make a good cup of pour-over coffee?",
    "What are the signs that a tyre needs replacing?",
    "How do I organise a small wardrobe?",
    "What's a good warm-up before a jog?",
    "How do I write a short thank-you note to a teacher?",
    "Why does bread go stale?",
    "How do I back up the photos on my phone?",
    "What are easy ways to drink more water during the day?",
    "How do I remove sticker residue from glass?",
    "What's a sensible evening routine for sleeping well?",
)
assert len(FILLERS) == 37


def facts_message(facts: dict[str, Any]) -> str:
    return (
        f"Before we go on, a few things to keep in mind: my {facts['pet']} is called "
        f"{facts['name']}, my booking reference is {facts['reference']}, and everything has "
        f"to be done by {facts['month']} {facts['day']}."
    )


def probes(facts: dict[str, Any]) -> list[tuple[str, str]]:
    """(kind, question) for each fact."""
    return [
        ("name", f"Quick check: what is my {facts['pet']} called?"),
        ("reference", "What was my booking reference again?"),
        ("deadline", "By which date does everything have to be done?"),
    ]


def facts_message_varied(facts: dict[str, Any]) -> str:
    """The same facts in other words, inside a longer message (the `varied` wording)."""
    return (
        f"Oh, and since you'll be helping me all month, some background. We adopted a "
        f"{facts['pet']} last spring and named it {facts['name']}; it has been a lot of "
        f"paperwork. For the record, the code the agency gave me for the booking is "
        f"{facts['reference']}. The whole thing needs wrapping up before {facts['month']} "
        f"{facts['day']}, no later, or I lose the deposit."
    )


def probes_varied(facts: dict[str, Any]) -> list[tuple[str, str]]:
    """The probes of the `varied` wording: none repeats the words the facts were given in."""
    return [
        ("name", "Remind me, what name did we give our new pet?"),
        ("reference", "I've lost the paper from the agency. Which code was it?"),
        ("deadline", "What's my cut-off for wrapping all this up?"),
    ]


Wording = tuple[Callable[[dict[str, Any]], str], Callable[[dict[str, Any]], list[tuple[str, str]]]]
WORDINGS: dict[str, Wording] = {
    "plain": (facts_message, probes),
    "varied": (facts_message_varied, probes_varied),
}


def _compact(text: str) -> str:
    return re.sub(r"[^a-z0-9]", "", text.lower())


def recalled(kind: str, reply: str, facts: dict[str, Any]) -> bool:
    """Whether `reply` holds the fact the probe of `kind` asks for."""
    if kind == "name":
        return re.search(rf"\b{facts['name']}\b", reply, re.IGNORECASE) is not None
    if kind == "reference":
        return _compact(facts["reference"]) in _compact(reply)
    month = facts["month"]
    has_month = re.search(rf"\b({month}|{month[:3]})\b", reply, re.IGNORECASE)
    has_day = re.search(rf"(?<!\d){facts['day']}(st|nd|rd|th)?(?!\d)", reply)
    return has_month is not None and has_day is not None


def with_window(spec: CharterSpec, window: int, max_tokens: int, *, fake: bool) -> CharterSpec:
    """The charter with its chat model's window and reply length set (guards off with --fake)."""
    chat = spec.models.chat
    fields = type(chat).model_fields
    update: dict[str, Any] = {"max_tokens": max_tokens}
    if "n_ctx" in fields:
        update["n_ctx"] = window
    elif "context_window" in fields:
        update["context_window"] = window
    models = spec.models.model_copy(update={"chat": chat.model_copy(update=update)})
    changes: dict[str, Any] = {"models": models}
    if fake:
        changes["guards"] = spec.guards.model_copy(update={"input": [], "output": []})
    return spec.model_copy(update=changes)


SIDES = {"off": {"enabled": False}, "on": {"enabled": True}, "recall": {"notes": False}}
"""What each side sets in `memory`: off, notes and recall (the default), recall alone."""


def with_memory(spec: CharterSpec, side: str) -> CharterSpec:
    memory = spec.memory.model_copy(update=SIDES[side])
    return spec.model_copy(update={"memory": memory})


# -- the scripted model of --fake ----------------------------------------------------------

_NOTED = re.compile(
    r"my \w+ is called \w+|my booking reference is [\w-]+|done by \w+ \d+", re.IGNORECASE
)
_SEEN = {
    "name": re.compile(r"is called (\w+)"),
    "reference": re.compile(r"reference is ([A-Z]{2}-[\w-]+)"),
    "deadline": re.compile(r"done by (\w+ \d+)"),
}


def fake_answer(request: ChatRequest) -> Answer:
    """Notes on what the user said, or a reply that uses only what the model is shown."""
    if request.json_schema is not None:
        said = re.findall(r"^User: «(.*)»$", request.messages[-1].content, re.MULTILINE)
        found = {m.lower(): m for line in said for m in _NOTED.findall(line)}
        notes = [{"kind": "fact", "text": f"The user said: {m}."} for m in found.values()]
        return Structured({"notes": notes})
    question = request.messages[-1].content
    shown = "\n".join(m.content for m in request.messages[:-1])
    for kind, asks in (("name", "called?"), ("reference", "reference again"), ("deadline", "date")):
        if asks in question:
            found = _SEEN[kind].search(shown)
            return f"That is {found.group(1)}." if found else "I'm sorry, I don't know that."
    words = re.findall(r"[a-z]+", question[:40].lower())  # never the facts: they come later
    return " ".join(f"Think about {w} first, then see what follows from it." for w in words)


# -- the run ---------------------------------------------------------------------------------


async def converse(
    charter: Charter, facts: dict[str, Any], wording: Wording = WORDINGS["plain"]
) -> dict[str, Any]:
    """39 scripted turns, then the three probes; what each condition did."""
    said, asked = wording
    history: list[Message] = []
    carry = Carry()
    turn_ms: list[float] = []
    notes_ms = 0.0
    calls = prompt_tokens = completion_tokens = 0

    def account(reply: Any) -> None:
        nonlocal notes_ms, calls, prompt_tokens, completion_tokens
        turn_ms.append(reply.ms)
        if "generate" in reply.trace:
            memory = reply.trace["generate"].detail.get("memory", {})
            notes_ms += memory.get("ms", 0.0) if "calls" in memory or "error" in memory else 0.0
            calls += memory.get("calls", 0)
            prompt_tokens += memory.get("prompt_tokens", 0)
            completion_tokens += memory.get("completion_tokens", 0)

    for user in (OPENING, said(facts), *FILLERS):
        history.append(Message(role="user", content=user))
        reply = await charter.arespond(list(history), carry=carry)
        account(reply)
        carry = reply.carry
        history.append(Message(role="assistant", content=reply.text or "(no reply)"))
    answers: list[dict[str, Any]] = []
    for kind, question in asked(facts):
        reply = await charter.arespond(
            [*history, Message(role="user", content=question)], carry=carry
        )
        account(reply)
        generate = reply.trace["generate"].detail if "generate" in reply.trace else {}
        dropped = generate.get("dropped_messages")
        answers.append(
            {
                "kind": kind,
                "question": question,
                "reply": reply.text,
                "recalled": recalled(kind, reply.text, facts),
                "dropped_messages": dropped,
                "recalled_passages": generate.get("memory", {}).get("recalled", 0),
            }
        )
        print(f"    {kind}: {answers[-1]['recalled']} {reply.text[:160]!r}", flush=True)
    memory = carry.memory
    return {
        "facts": facts,
        "probes": answers,
        "turn_ms": turn_ms,
        "notes_ms": notes_ms,
        "notes_calls": calls,
        "notes_prompt_tokens": prompt_tokens,
        "notes_completion_tokens": completion_tokens,
        "memory": memory.to_dict() if memory is not None else None,
    }


async def run(
    spec: CharterSpec, model: ChatModel, conversations: int, sides: list[str], wording: Wording
) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for condition in sides:
        runs = []
        for facts in FACTS[:conversations]:
            charter = Charter(with_memory(spec, condition), model=model)
            started = time.perf_counter()
            runs.append(await converse(charter, facts, wording))
            print(
                f"  memory {condition}, the {facts['pet']}: "
                f"{sum(p['recalled'] for p in runs[-1]['probes'])}/3 recalled, "
                f"{time.perf_counter() - started:.0f} s",
                flush=True,
            )
        out[condition] = runs
    return out


def summary(runs: list[dict[str, Any]]) -> dict[str, Any]:
    hits = [p["recalled"] for r in runs for p in r["probes"]]
    ms = [m for r in runs for m in r["turn_ms"]]
    return {
        "recall": Rate(sum(hits), len(hits)),
        "turns": len(ms),
        "ms_per_turn": statistics.fmean(ms) if ms else 0.0,
        "notes_ms_per_turn": sum(r["notes_ms"] for r in runs) / len(ms) if ms else 0.0,
        "notes_calls": sum(r["notes_calls"] for r in runs),
        "notes_prompt_tokens": sum(r["notes_prompt_tokens"] for r in runs),
        "notes_completion_tokens": sum(r["notes_completion_tokens"] for r in runs),
    }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--charter", type=Path, default=DEFAULT_CHARTER)
    parser.add_argument("--model", default=None, help="a registry model name (local charters)")
    parser.add_argument("--context-window", type=int, default=2048)
    parser.add_argument("--max-tokens", type=int, default=128, help="reply length, both sides")
    parser.add_argument("--conversations", type=int, default=3, choices=range(1, len(FACTS) + 1))
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--wording", choices=sorted(WORDINGS), default="plain")
    parser.add_argument(
        "--sides", default="off,on", help="off, on, recall (on without notes), comma-separated"
    )
    parser.add_argument("--fake", action="store_true", help="a scripted model: checks the harness")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "memory.json")
    args = parser.parse_args(argv)
    sides = [side for side in SIDES if side in args.sides.split(",")]
    if not sides:
        parser.error("--sides: any of off, on, recall, comma-separated")
    if args.fake and args.wording != "plain":
        parser.error("--fake reads only the plain wording")
    spec = with_window(
        load_charter(args.charter), args.context_window, args.max_tokens, fake=args.fake
    )
    chat = spec.models.chat
    if args.fake:
        model: ChatModel = FakeModel([fake_answer] * 100_000, context_window=args.context_window)
        model_name = "scripted (--fake)"
    else:
        update: dict[str, Any] = (
            {"threads": args.threads} if "threads" in type(chat).model_fields else {}
        )
        if args.model is not None:
            update["model"] = args.model
        chat = chat.model_copy(update=update)
        spec = spec.model_copy(update={"models": spec.models.model_copy(update={"chat": chat})})
        model = build_model(chat)
        model_name = str(getattr(chat, "model", chat.backend))
    print(
        f"charter {spec.id} ({args.charter}), model {model_name}, context window "
        f"{args.context_window} tokens (set small, so turn 2 leaves the window early), replies "
        f"at most {args.max_tokens} tokens, memory max_tokens {spec.memory.max_tokens}; "
        f"{args.conversations} conversation(s) of 39 turns + 3 probes at turn 40, per condition; "
        f"{args.wording} wording",
        flush=True,
    )
    try:
        runs = asyncio.run(run(spec, model, args.conversations, sides, WORDINGS[args.wording]))
    finally:
        model.close()
    summaries = {side: summary(runs[side]) for side in sides}
    print()
    for side, s in summaries.items():
        print(f"recall at turn 40, memory {side}: {s['recall']}")
        print(f"  ms per turn {s['ms_per_turn']:.0f} (mean over {s['turns']} turns)")
    if "off" in summaries and "on" in summaries:
        added = summaries["on"]["ms_per_turn"] - summaries["off"]["ms_per_turn"]
        print(f"  added by memory: {added:+.0f} ms per turn (replies differ between the sides)")
    if "on" in summaries:
        on = summaries["on"]
        recalled = [p["recalled_passages"] for r in runs["on"] for p in r["probes"]]
        print(
            f"notes taker: {on['notes_calls']} calls, {on['notes_ms_per_turn']:.0f} ms per "
            f"turn on average, {on['notes_prompt_tokens']} prompt + "
            f"{on['notes_completion_tokens']} completion tokens in all; passages recalled "
            f"per probe: {recalled}"
        )
    notes = runs["on"][0]["memory"] if "on" in runs else None
    if notes is not None:
        print(f"notes at turn 40, conversation 1: covering {notes['covered']} messages")
        for item in notes["items"]:
            print(f"  [{item['kind']}] {item['text']}")
    results = {
        "charter": str(args.charter),
        "model": model_name,
        "context_window": args.context_window,
        "max_tokens": args.max_tokens,
        "conversations": args.conversations,
        "wording": args.wording,
        "summary": {side: {**s, "recall": s["recall"].to_dict()} for side, s in summaries.items()},
        "runs": runs,
    }
    if not args.fake:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(results, indent=2))
        print(f"wrote {args.out}")
    return results


if __name__ == "__main__":
    main()
