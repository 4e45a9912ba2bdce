"""`charter escalations list | show ID | resolve ID`: the queue of hand-offs to a human."""

from __future__ import annotations

import datetime
import json
from pathlib import Path

import typer
from rich.table import Table

from charter.cli._common import EXIT_ERROR, err, friendly_errors, out
from charter.store.sqlite import Store

app = typer.Typer(help="The queue of conversations handed to a human.", no_args_is_help=True)

DbOption = typer.Option(
    None, "--db", help="SQLite store (default: $CHARTER_HOME/charter.db).", envvar="CHARTER_DB"
)


def _when(timestamp: float | None) -> str:
    if timestamp is None:
        return ""
    return datetime.datetime.fromtimestamp(timestamp).strftime("%Y-%m-%d %H:%M")


@app.command("list")
def list_escalations(
    status: str | None = typer.Option("open", help="open, resolved, or all."),
    db: Path | None = DbOption,
) -> None:
    """Escalations, oldest first."""
    with friendly_errors():
        store = Store(db)
        try:
            rows = store.escalations(None if status == "all" else status)
        finally:
            store.close()
    table = Table("id", "created", "charter", "trigger", "reason", "status", box=None)
    for row in rows:
        table.add_row(
            row.id, _when(row.created_at), row.charter_id, row.trigger, row.reason, row.status
        )
    out.print(table if rows else f"no {status} escalations")


@app.command()
def show(
    escalation_id: str = typer.Argument(..., help="The reference, e.g. ESC-1A2B3C4D."),
    db: Path | None = DbOption,
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """One escalation with its transcript."""
    with friendly_errors():
        store = Store(db)
        try:
            row = store.escalation(escalation_id)
        finally:
            store.close()
    if row is None:
        err.print(f"no escalation {escalation_id!r}", markup=False)
        raise typer.Exit(EXIT_ERROR)
    if as_json:
        out.out(json.dumps(row.__dict__, indent=2))
        return
    out.print(
        f"{row.id} · {row.status} · {row.charter_id} · conversation {row.conversation_id}\n"
        f"trigger: {row.trigger} — {row.reason}\ncreated {_when(row.created_at)}"
        + (f", resolved {_when(row.resolved_at)}: {row.resolution}" if row.resolved_at else ""),
        markup=False,
    )
    for message in row.transcript:
        out.print(f"  {message['role']}: {message['content']}", markup=False)


@app.command()
def resolve(
    escalation_id: str = typer.Argument(...),
    note: str = typer.Option("resolved", "--note", help="What was done."),
    db: Path | None = DbOption,
) -> None:
    """Mark an open escalation resolved."""
    with friendly_errors():
        store = Store(db)
        try:
            done = store.resolve_escalation(escalation_id, note)
        finally:
            store.close()
    if not done:
        err.print(f"no open escalation {escalation_id!r}", markup=False)
        raise typer.Exit(EXIT_ERROR)
    out.print(f"{escalation_id}: resolved", markup=False)
