"""`charter eval`: the product-readiness report, pipeline on vs off."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from charter.cli._common import EXIT_INVALID, err, friendly_errors, out
from charter.eval.evaluate import (
    ALL_SUITES,
    OWN,
    PROFILES,
    SUITES,
    EvalSettings,
    evaluate,
    load_report,
    report_schema,
)
from charter.eval.report import Report
from charter.eval.runner import Result
from charter.eval.terminal import compare, summary

EXIT_BELOW = 4  # --fail-under not met


def register(app: typer.Typer) -> None:
    app.command("eval")(eval_command)


def eval_command(
    charter: Annotated[Path | None, typer.Argument(help="The charter file.")] = None,
    suites: Annotated[
        str | None,
        typer.Option(
            help=f"Comma-separated; default: {','.join(SUITES)}. Opt-in: persona_stability "
            "(50-turn conversations). Your own cases (the charter's `tests`, --cases) always "
            "run; 'cases' alone runs only them."
        ),
    ] = None,
    cases: Annotated[
        list[Path] | None,
        typer.Option(
            "--cases",
            help="A file of your own cases (YAML or JSONL), besides the charter's `tests`; "
            "repeatable. Every case runs, whatever the profile or --limit.",
        ),
    ] = None,
    turns: Annotated[
        int, typer.Option(min=1, max=200, help="Turns per persona_stability conversation.")
    ] = 50,
    profile: Annotated[
        str, typer.Option(help="quick (5 cases/suite), standard (50) or full (all).")
    ] = "quick",
    limit: Annotated[
        int | None, typer.Option(min=1, help="Cases per suite (overrides the profile).")
    ] = None,
    model: Annotated[
        str | None, typer.Option(help="Chat model: a catalog name or a .gguf path.")
    ] = None,
    workers: Annotated[int, typer.Option(min=1, help="Cases in flight at once.")] = 1,
    ray: Annotated[
        str | None,
        typer.Option(
            "--ray",
            metavar="ADDRESS",
            help="Fan cases out over a Ray cluster, --workers actors: auto, HOST:PORT, "
            "ray://HOST:PORT, or local (a Ray instance started for this run). Needs the "
            "`ray` extra.",
        ),
    ] = None,
    seed: Annotated[int, typer.Option(help="Seed of the case sample.")] = 0,
    out_dir: Annotated[Path, typer.Option("--out", help="Output folder.")] = Path("eval-out"),
    fail_under: Annotated[
        float | None,
        typer.Option(min=0, max=100, help="Exit 4 if the readiness score (on) is below this."),
    ] = None,
    compare_reports: Annotated[
        tuple[Path, Path] | None,
        typer.Option("--compare", help="Show what changed from report A to report B."),
    ] = None,
    schema: Annotated[
        bool, typer.Option("--schema", help="Print the report's JSON Schema and exit.")
    ] = False,
    check_refusal: Annotated[
        bool,
        typer.Option(
            "--check-refusal",
            help="Measure the refusal detector against hand labels and exit (labels: the "
            "project's own, or --labels FILE).",
        ),
    ] = False,
    labels: Annotated[
        Path | None, typer.Option(help="JSONL hand labels for --check-refusal.")
    ] = None,
) -> None:
    """Measure the assistant: every suite through the raw model and through Charter."""
    with friendly_errors():
        if schema:
            out.print(report_schema(), end="", markup=False)
            return
        if check_refusal:
            _check_refusal(labels)
            return
        if compare_reports is not None:
            a, b = (_load(p) for p in compare_reports)
            compare(a, b, out)
            return
        if charter is None:
            err.print("[red]error:[/red] give a charter file (or --compare A B, or --schema)")
            raise typer.Exit(EXIT_INVALID)
        if profile not in PROFILES:
            err.print(f"[red]error:[/red] --profile must be one of {', '.join(PROFILES)}")
            raise typer.Exit(EXIT_INVALID)
        chosen = tuple(s.strip() for s in suites.split(",") if s.strip()) if suites else SUITES
        unknown = [s for s in chosen if s not in (*ALL_SUITES, OWN)]
        if unknown:
            err.print(
                f"[red]error:[/red] unknown suite(s) {', '.join(unknown)}; "
                f"known: {', '.join((*ALL_SUITES, OWN))}"
            )
            raise typer.Exit(EXIT_INVALID)
        settings = EvalSettings(
            charter=charter,
            out=out_dir,
            suites=chosen,
            limit=limit if limit is not None else PROFILES[profile],
            seed=seed,
            workers=workers,
            ray=ray,
            model=model,
            profile=profile if limit is None else "custom",
            turns=turns,
            cases=tuple(cases or ()),
        )
        with Progress(
            TextColumn("[progress.description]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TextColumn("ETA"),
            TimeRemainingColumn(),
            console=err,
            transient=True,
        ) as progress:
            task = progress.add_task("loading", total=None)

            def started(total: int) -> None:
                progress.update(task, total=total, description="loading the model")

            def skipping(reasons: dict[str, str]) -> None:
                for suite, why in reasons.items():
                    progress.console.print(
                        f"[yellow]skipped[/yellow] {suite}: {escape(why)}", highlight=False
                    )

            def advance(result: Result) -> None:
                cached = " (cached)" if result.cached else ""
                progress.update(
                    task, advance=1, description=f"{result.case.suite} {result.condition}{cached}"
                )

            report = evaluate(settings, on_start=started, on_result=advance, on_skip=skipping)
        summary(report, out)
        out.print(f"wrote {out_dir / 'report.json'}, {out_dir / 'report.html'}")
        if fail_under is not None and report.readiness.on < fail_under:
            err.print(
                f"[red]readiness {report.readiness.on:.1f} is below --fail-under {fail_under:g}"
            )
            raise typer.Exit(EXIT_BELOW)


def _load(path: Path) -> Report:
    try:
        return load_report(path)
    except FileNotFoundError:
        err.print(f"[red]error:[/red] no report at {path}")
        raise typer.Exit(EXIT_INVALID) from None
    except ValueError as exc:
        err.print(f"[red]error:[/red] {path} is not a charter eval report: {exc}")
        raise typer.Exit(EXIT_INVALID) from None


def _check_refusal(path: Path | None) -> None:
    from charter.eval.refusal import agreement, load_labels
    from charter.stats import Rate

    try:
        rows = load_labels(None if path is None else str(path))
    except (OSError, ValueError) as exc:
        err.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(EXIT_INVALID) from None
    result = agreement(rows)
    out.print(
        f"refusal detector vs {result.n} hand labels: agreement "
        f"{Rate(result.agree, result.n)}, Cohen's kappa {result.kappa:.3f}"
    )
    out.print(
        "confusion (label->detected): " + ", ".join(f"{k} {v}" for k, v in result.confusion.items())
    )
    sets = sorted({str(row["set"]) for row in rows if "set" in row})
    for name in sets:
        part = agreement([row for row in rows if row.get("set") == name])
        out.print(f"  set {name}: {Rate(part.agree, part.n)}, kappa {part.kappa:.3f}", markup=False)
    if sets:
        later = [row for row in rows if row.get("set") not in (None, sets[0])]
        held = agreement(later)
        out.print(
            f"  held out (sets after {sets[0]}, which the detector was tuned on): "
            f"{Rate(held.agree, held.n)}, kappa {held.kappa:.3f}",
            markup=False,
        )
    for d in result.disagreements:
        out.print(
            f"  disagree: {d['id']} labelled {d['label']}; detector: {d['why']}", markup=False
        )
