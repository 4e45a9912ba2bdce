"""`charter chat FILE`: talk to a charter in the terminal, or answer once with --once."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

import typer
from rich.markup import escape

from charter.assistant import Charter, Reply
from charter.cli._common import err, friendly_errors, out
from charter.conversation import Conversation
from charter.spec.loader import load_charter
from charter.store.sqlite import Store


def register(app: typer.Typer) -> None:
    """Add `charter chat` to the app."""
    app.command()(chat)


def chat(
    file: Path = typer.Argument(..., help="Charter file."),
    once: str | None = typer.Option(None, "--once", help="Answer one message and exit."),
    as_json: bool = typer.Option(False, "--json", help="With --once: print one JSON object."),
    conversation: str | None = typer.Option(
        None,
        "--conversation",
        "-c",
        help="Resume this conversation id.",
        envvar="CHARTER_CONVERSATION",
    ),
    db: Path | None = typer.Option(
        None, "--db", help="SQLite store (default: $CHARTER_HOME/charter.db).", envvar="CHARTER_DB"
    ),
    show_trace: bool = typer.Option(True, "--trace/--no-trace", help="Show each turn's trace."),
) -> None:
    """Chat with the assistant a charter describes. Conversations are saved and resumable."""
    if as_json and once is None:
        err.print("--json needs --once", markup=False)
        raise typer.Exit(2)
    with friendly_errors():
        spec = load_charter(file)
        store = Store(db)
        assistant = Charter(spec)
        try:
            if as_json:
                _ = assistant.pipeline
            else:
                with err.status("loading model…"):
                    _ = assistant.pipeline
            session = Conversation(assistant, store, conversation)
            if once is not None:
                _once(session, once, as_json=as_json, show_trace=show_trace)
            else:
                _interactive(session, show_trace=show_trace)
        finally:
            assistant.close()
            store.close()


def _once(session: Conversation, message: str, *, as_json: bool, show_trace: bool) -> None:
    if as_json:
        reply = session.send(message)
        payload = {"conversation": session.id, **reply.to_dict()}
        sys.stdout.write(json.dumps(payload, ensure_ascii=False) + "\n")
        return
    printer = _Printer()
    reply = session.send(message, on_delta=printer)
    printer.finish(reply, session.id, show_trace)


def _interactive(session: Conversation, *, show_trace: bool) -> None:
    name = session.charter.spec.persona.name
    err.print(
        f"[bold]{escape(name)}[/bold] · conversation {session.id} · Ctrl-D or /exit to leave",
    )
    loop = asyncio.new_event_loop()
    try:
        while True:
            try:
                text = out.input("[bold cyan]you>[/bold cyan] ").strip()
            except (EOFError, KeyboardInterrupt):
                break
            if not text:
                continue
            if text in ("/exit", "/quit"):
                break
            out.print(f"[bold green]{escape(name)}>[/bold green] ", end="")
            printer = _Printer()
            reply = loop.run_until_complete(session.asend(text, on_delta=printer))
            printer.finish(reply, session.id, show_trace)
    finally:
        loop.close()
    err.print(f"resume with: --conversation {session.id}", markup=False)


class _Printer:
    """Writes streamed text as it comes, then the final reply if the stream differed.

    The final reply differs from what was streamed when a stage blocked or replaced it.
    """

    def __init__(self) -> None:
        self.streamed: list[str] = []

    def __call__(self, text: str) -> None:
        self.streamed.append(text)
        sys.stdout.write(text)
        sys.stdout.flush()

    def finish(self, reply: Reply, conversation_id: str, show_trace: bool) -> None:
        shown = "".join(self.streamed).strip()
        if reply.text != shown:
            sys.stdout.write(("\n" if shown else "") + reply.text)
        sys.stdout.write("\n")
        sys.stdout.flush()
        if show_trace:
            err.print(format_trace(reply, conversation_id), style="dim", markup=False)


def format_trace(reply: Reply, conversation_id: str) -> str:
    """One line for a turn's trace: each stage's verdict, time and tokens, then the total."""
    parts = []
    for r in reply.trace.records:
        tokens = f" {r.prompt_tokens}→{r.completion_tokens} tok" if r.completion_tokens else ""
        why = f" ({r.error or r.reason})" if r.verdict != "pass" else ""
        parts.append(f"{r.stage} {r.verdict} {r.ms:.1f} ms{tokens}{why}")
    return f"  trace: {' · '.join(parts)} · total {reply.ms:.0f} ms · conv {conversation_id}"
