"""Commands about the charter file itself: validate, schema, init, prompt."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import typer

from charter.cli._common import EXIT_INVALID, err, friendly_errors, out
from charter.errors import CharterError
from charter.eval.own_cases import load_cases
from charter.persona.compile import compile_system_prompt
from charter.spec.loader import CharterFileError, load_charter
from charter.spec.schema import charter_json_schema_text


def register(app: typer.Typer) -> None:
    """Add `charter validate`, `schema`, `init` and `prompt` to the app."""
    app.command()(validate)
    app.command()(schema)
    app.command()(init)
    app.command()(prompt)


def validate(
    files: list[Path] = typer.Argument(..., help="Charter files to check."),
) -> None:
    """Check charter files and the cases files they name.

    Every problem is reported with its field and line.
    """
    failed = False
    for file in files:
        try:
            spec = load_charter(file)
            cases = sum(len(load_cases(path).cases) for path in spec.tests)
        except CharterFileError as exc:
            err.print(str(exc), markup=False)
            failed = True
            continue
        own = f", {cases} own eval cases" if spec.tests else ""
        out.print(
            f"ok: {file} (id {spec.id}, {len(spec.constitution)} principles, "
            f"{len(spec.policies)} policies{own}, model {spec.models.chat.backend})",
            markup=False,
        )
    if failed:
        raise typer.Exit(EXIT_INVALID)


def schema(
    output: Path | None = typer.Option(None, "--out", "-o", help="Write to a file."),
) -> None:
    """Print the charter file's JSON Schema (for editor validation)."""
    text = charter_json_schema_text()
    if output is None:
        out.out(text, end="")
    else:
        output.write_text(text, encoding="utf-8")
        err.print(f"wrote {output}", markup=False)


def init(
    directory: Path = typer.Argument(Path("."), help="Folder for the new charter."),
    force: bool = typer.Option(False, "--force", help="Overwrite an existing charter.yaml."),
) -> None:
    """Scaffold a charter.yaml (and its JSON Schema, for editors) in DIRECTORY.

    Also writes an example cases.yaml of your own eval cases (an existing one is kept).
    """
    directory.mkdir(parents=True, exist_ok=True)
    target = directory / "charter.yaml"
    if target.exists() and not force:
        err.print(f"{target} exists; use --force to overwrite", markup=False)
        raise typer.Exit(EXIT_INVALID)
    templates = resources.files("charter.cli")
    target.write_text(templates.joinpath("template.yaml").read_text("utf-8"), encoding="utf-8")
    (directory / "charter.schema.json").write_text(charter_json_schema_text(), encoding="utf-8")
    created = [target]
    cases = directory / "cases.yaml"
    if not cases.exists():
        example = templates.joinpath("template_cases.yaml").read_text("utf-8")
        cases.write_text(example, encoding="utf-8")
        created.append(cases)
    out.print(
        f"created {', '.join(str(p) for p in created)}\nnext: charter chat {target}",
        markup=False,
    )


def prompt(
    file: Path = typer.Argument(..., help="Charter file."),
    build_judge: bool = typer.Option(
        False,
        "--build-judge",
        help="Build the persona judge instead: the charter's judge model writes replies that "
        "keep and break each semantic rule (scope, tone, identity, values, never items, "
        "unchecked principles), and a classifier per rule is trained on them (minutes).",
    ),
    per_rule: int = typer.Option(12, "--per-rule", min=2, help="User messages per rule."),
    examples: Path | None = typer.Option(
        None, "--examples", help="Your own examples (JSONL: rule, prompt, reply, breaks)."
    ),
    rebuild: bool = typer.Option(False, "--rebuild", help="Write the examples again."),
) -> None:
    """Print the system prompt compiled from the persona and constitution.

    With --build-judge, build the charter's persona judge (docs/persona.md, Semantic checks).
    """
    with friendly_errors():
        spec = load_charter(file)
    if not build_judge:
        out.out(compile_system_prompt(spec).text)
        return
    from charter.models.factory import build_model
    from charter.persona.contrast import read_examples
    from charter.persona.judge import build_judge as build

    with friendly_errors():
        try:
            own = read_examples(examples) if examples is not None else []
        except (OSError, ValueError) as exc:
            raise CharterError(f"cannot read --examples: {exc}") from None
        model = build_model(spec.models.judge or spec.models.chat)
        try:
            path = build(
                spec,
                model,
                per_rule=per_rule,
                examples=own,
                rebuild=rebuild,
                progress=lambda line: err.print(line, markup=False),
            )
        finally:
            model.close()
    out.print(f"persona judge: {path}", markup=False)
