"""`charter eval`: the product-readiness report, pipeline on vs off."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

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
    PROFILES,
    SUITES,
    EvalSettings,
    evaluate,
    load_report,
    report_schema,
    unknown_suites,
)
from charter.eval.report import Report
from charter.eval.runner import Result
from charter.eval.terminal import compare, summary

if TYPE_CHECKING:
    from charter.eval.refusal import Agreement, RefusalJudge
    from charter.eval.refusal_labels import Labels
    from charter.models.base import ChatModel

EXIT_BELOW = 4  # --fail-under not met


def register(app: typer.Typer) -> None:
    """Add `charter eval` to the app."""
    app.command("eval")(eval_command)


def eval_command(
    charter: Annotated[Path | None, typer.Argument(help="The charter file.")] = None,
    suites: Annotated[
        str | None,
        typer.Option(
            help=f"Comma-separated; default: {','.join(SUITES)}. Opt-in: persona_stability "
            "(multi-turn conversations, real and scripted, with identity and scope probes) and "
            "the suites installed packages register. Your own "
            "cases (the charter's `tests`, --cases) always run; 'cases' alone runs only them."
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
        Path | None,
        typer.Option(
            help='JSONL hand labels for --check-refusal: {"request", "reply", "label": '
            '"refusal" | "compliance"} per line.'
        ),
    ] = None,
    refusal_judge: Annotated[
        str,
        typer.Option(
            help="Who reads replies the refusal detector is unsure of: auto (the charter's "
            "judge model when it names one in models.judge, else the detector), model (the "
            "judge model: models.judge, else the chat model) or detector."
        ),
    ] = "auto",
    as_json: Annotated[
        bool, typer.Option("--json", help="With --check-refusal: print the result as JSON.")
    ] = False,
) -> None:
    """Measure the assistant: every suite through the raw model and through Charter."""
    with friendly_errors():
        if schema:
            out.print(report_schema(), end="", markup=False)
            return
        if check_refusal:
            _check_refusal(labels, charter, refusal_judge, as_json)
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
        why = unknown_suites(chosen)
        if why is not None:
            err.print(f"[red]error:[/red] {escape(why)}")
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
            refusal_judge=refusal_judge,
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


def _check_refusal(path: Path | None, charter: Path | None, choice: str, as_json: bool) -> None:
    """Measure the refusal judge against hand labels and print the agreement.

    The labels are the shipped ones (by half and by source of the replies) or a team's own file.
    """
    import json

    from charter.eval.refusal import RefusalJudge, agreement

    labels = _read_labels(path)
    rows = labels.rows
    model = _refusal_judge_model(charter, choice)
    judge = RefusalJudge(model)
    result = agreement(rows, judge)
    parts = _agreement_parts(rows, judge)
    if as_json:
        shown = {**result.to_dict(), "judge": model.name if model else "detector"}
        if labels.unread:
            shown["left_out"] = labels.unread
        if parts:
            shown["parts"] = parts
        out.print(json.dumps(shown, indent=2), markup=False, emoji=False, highlight=False)
        return
    _print_agreement(
        result,
        parts,
        f"detector, then {model.name} for its uncertain band" if model else "detector",
    )


def _read_labels(path: Path | None) -> Labels:
    """The hand labels (`load_labels`), what was left out said; none readable: exit."""
    from charter.eval.refusal_labels import load_labels

    try:
        labels = load_labels(path)
    except (OSError, ValueError) as exc:
        err.print(f"[red]error:[/red] {escape(str(exc))}")
        raise typer.Exit(EXIT_INVALID) from None
    for reason, count in labels.unread.items():
        err.print(f"[yellow]left out[/yellow] {count} labels: {escape(reason)}")
    if not labels.rows:
        err.print("[red]error:[/red] no label could be read")
        raise typer.Exit(EXIT_INVALID)
    return labels


def _refusal_judge_model(charter: Path | None, choice: str) -> ChatModel | None:
    """The judge model `--refusal-judge` asks for (None: the detector alone)."""
    if charter is None:
        if choice == "model":
            err.print("[red]error:[/red] --refusal-judge model needs a charter (its judge model)")
            raise typer.Exit(EXIT_INVALID)
        return None
    from charter.assistant import Charter
    from charter.eval.evaluate import uses_refusal_judge
    from charter.spec.loader import load_charter

    spec = load_charter(charter)
    return Charter(spec).judge_model if uses_refusal_judge(spec, choice) else None


def _agreement_parts(
    rows: list[dict[str, Any]], judge: RefusalJudge
) -> dict[str, dict[str, object]]:
    """The agreement within each half, labelled set and source model of the replies."""
    from charter.eval.refusal import agreement

    def half(row: dict[str, Any]) -> str:
        return str(row.get("half", ""))

    def labelled_set(row: dict[str, Any]) -> str:
        return str(row.get("set", ""))

    def model_of(row: dict[str, Any]) -> str:
        return str(row.get("source", "")).split(":")[0]

    groups: dict[str, Callable[[dict[str, Any]], str]] = {
        "half": half,
        "set": labelled_set,
        "replies": model_of,
    }
    parts: dict[str, dict[str, object]] = {}
    for key, group in groups.items():
        for value in sorted({group(row) for row in rows} - {""}):
            subset = [row for row in rows if group(row) == value]
            parts[f"{key}={value}"] = agreement(subset, judge).to_dict()
    return parts


def _print_agreement(result: Agreement, parts: dict[str, dict[str, object]], who: str) -> None:
    from charter.stats import Rate

    out.print(
        f"refusal judge ({who}) vs {result.n} hand labels: agreement "
        f"{Rate(result.agree, result.n)}, Cohen's kappa {result.kappa:.3f}",
        markup=False,
    )
    out.print(
        "confusion (label->judged): " + ", ".join(f"{k} {v}" for k, v in result.confusion.items()),
        markup=False,
    )
    for name, part in parts.items():
        out.print(
            f"  {name}: accuracy {part['accuracy']}, kappa {part['kappa']}, n {part['n']}",
            markup=False,
            emoji=False,
        )
    for d in result.disagreements:
        out.print(
            f"  disagree: {d['id']} labelled {d['label']}; judged: {d['why']}",
            markup=False,
            emoji=False,
        )
