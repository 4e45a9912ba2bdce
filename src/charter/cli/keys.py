"""`charter keys add | list | revoke`: the gateway's API keys, one tenant each."""

from __future__ import annotations

import datetime

import typer
from rich.table import Table

from charter.cli._common import EXIT_ERROR, EXIT_INVALID, err, friendly_errors, out
from charter.store.postgres import open_records

app = typer.Typer(
    help="API keys of the gateway: each maps a caller to a tenant and the charters it may use.",
    no_args_is_help=True,
)

DbOption = typer.Option(
    None,
    "--db",
    help="A SQLite file (default: $CHARTER_HOME/charter.db) or a postgresql:// URL.",
    envvar="CHARTER_DB",
)


def _when(timestamp: float | None) -> str:
    if timestamp is None:
        return ""
    return datetime.datetime.fromtimestamp(timestamp).strftime("%Y-%m-%d %H:%M")


@app.command()
def add(
    tenant: str = typer.Option(..., help="Who the key belongs to; their data is theirs only."),
    charters: str = typer.Option(
        "*", help="Comma-separated charter ids the key may use ('*': all)."
    ),
    db: str | None = DbOption,
) -> None:
    """Make a key. It is printed once and stored only as a hash."""
    from charter.gateway.auth import new_key

    with friendly_errors():
        store = open_records(db)
        try:
            allowed = [c.strip() for c in charters.split(",") if c.strip()]
            key_id, key = new_key(store, tenant, allowed)
        except ValueError as exc:
            err.print(f"[red]error:[/red] {exc}")
            raise typer.Exit(EXIT_INVALID) from None
        finally:
            store.close()
    err.print(
        f"key {key_id} for tenant {tenant!r} (charters: {', '.join(allowed)}); "
        "shown once, store it now:"
    )
    print(key)


@app.command("list")
def list_keys(db: str | None = DbOption) -> None:
    """Keys, oldest first (ids only: the keys themselves are not stored)."""
    with friendly_errors():
        store = open_records(db)
        try:
            rows = store.api_keys()
        finally:
            store.close()
    table = Table("id", "tenant", "charters", "created", "revoked", box=None)
    for row in rows:
        table.add_row(
            row.id, row.tenant, ",".join(row.charters), _when(row.created_at), _when(row.revoked_at)
        )
    out.print(table if rows else "no API keys: `charter serve` binds to loopback only")


@app.command()
def revoke(
    key_id: str = typer.Argument(..., help="The key's id (from `charter keys list`)."),
    db: str | None = DbOption,
) -> None:
    """Revoke a key: calls with it are refused from then on."""
    with friendly_errors():
        store = open_records(db)
        try:
            done = store.revoke_api_key(key_id)
        finally:
            store.close()
    if not done:
        err.print(f"[red]error:[/red] no live key {key_id!r}")
        raise typer.Exit(EXIT_ERROR)
    out.print(f"revoked {key_id}")
