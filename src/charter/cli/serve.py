"""`charter serve`: the charters behind an OpenAI-compatible HTTP API."""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Annotated

import typer

from charter.cli._common import EXIT_INVALID, err, friendly_errors
from charter.extras import requires_extra


def register(app: typer.Typer) -> None:
    """Add `charter serve` to the app."""
    app.command("serve")(serve)


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def serve(
    files: Annotated[
        list[Path] | None, typer.Argument(help="Charter files; each is a model.")
    ] = None,
    host: Annotated[str, typer.Option(help="Address to bind.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535)] = 8000,
    openapi: Annotated[
        bool, typer.Option("--openapi", help="Print the gateway's OpenAPI schema and exit.")
    ] = False,
    report: Annotated[
        Path | None,
        typer.Option(help="An eval report (report.html) for the playground to show at /report."),
    ] = None,
    db: Annotated[
        str | None,
        typer.Option(
            help="API keys, audit log, escalations: a SQLite file (default: "
            "$CHARTER_HOME/charter.db) or a postgresql:// URL (replicas on several hosts).",
            envvar="CHARTER_DB",
        ),
    ] = None,
) -> None:
    """Serve the charters at /v1/chat/completions (OpenAI-compatible).

    Also serves /v1/models, /healthz and /readyz.
    """
    from charter.assistant import Charter
    from charter.spec import load_charter
    from charter.store.postgres import open_records

    with friendly_errors(), requires_extra("`charter serve`", "gateway"):
        import uvicorn

        from charter.gateway import create_app, openapi_text
    if openapi:
        print(openapi_text(), end="")
        return
    if not files:
        err.print("[red]error:[/red] give one or more charter files")
        raise typer.Exit(EXIT_INVALID)
    with friendly_errors():
        store = open_records(db)
        keys = store.has_api_keys()
        if not keys and not _loopback(host):
            err.print(
                f"[red]error:[/red] no API keys are configured, so the gateway binds to loopback "
                f"only (asked for {host}); make one with `charter keys add --tenant NAME`"
            )
            raise typer.Exit(EXIT_INVALID)
        charters: dict[str, Charter] = {}
        for path in files:
            spec = load_charter(path)
            if spec.id in charters:
                err.print(f"[red]error:[/red] two charters have the id {spec.id!r}")
                raise typer.Exit(EXIT_INVALID)
            charters[spec.id] = Charter(spec)
        access = "API keys required" if keys else "no API keys: loopback only"
        err.print(f"serving {', '.join(charters)} on http://{host}:{port}/v1 ({access})")
        uvicorn.run(
            create_app(charters, store=store, report=report),
            host=host,
            port=port,
            log_level="warning",
        )
