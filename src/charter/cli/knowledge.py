"""`charter knowledge add | list | search`: the charter's document index."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape

from charter.cli._common import EXIT_ERROR, err, friendly_errors, out

if TYPE_CHECKING:
    from charter.knowledge.index import KnowledgeIndex

app = typer.Typer(help="The charter's knowledge: documents retrieved and cited in replies.")


def _index(charter: Path) -> tuple[KnowledgeIndex, list[Path]]:
    from charter.knowledge.index import KnowledgeIndex, index_path
    from charter.spec import load_charter

    spec = load_charter(charter)
    paths = [Path(p) for p in (spec.knowledge.paths if spec.knowledge else [])]
    return KnowledgeIndex(index_path(spec.id)), paths


@app.command("add")
def add(
    charter: Annotated[Path, typer.Argument(help="The charter file.")],
    paths: Annotated[
        list[Path] | None,
        typer.Argument(help="Files or folders (default: the charter's knowledge.paths)."),
    ] = None,
) -> None:
    """Ingest markdown, text, HTML and PDF files: chunk, embed (MiniLM), store in SQLite."""
    with friendly_errors():
        index, configured = _index(charter)
        targets = list(paths or configured)
        if not targets:
            err.print("[red]error:[/red] no paths given and the charter has no knowledge.paths")
            raise typer.Exit(EXIT_ERROR)
        missing = [p for p in targets if not p.exists()]
        if missing:
            err.print(f"[red]error:[/red] not found: {', '.join(map(str, missing))}")
            raise typer.Exit(EXIT_ERROR)
        with index:
            report = index.add(targets)
        out.print(
            f"added {len(report.added)}, updated {len(report.updated)}, unchanged "
            f"{len(report.unchanged)}, removed {len(report.removed)} files; "
            f"{report.passages} passages embedded; index: {index.path}"
        )
        for path, why in report.failed:
            err.print(f"[red]failed:[/red] {escape(path)}: {escape(why)}")
        if report.failed:
            raise typer.Exit(EXIT_ERROR)


@app.command("list")
def list_files(charter: Annotated[Path, typer.Argument(help="The charter file.")]) -> None:
    """The files in the charter's index."""
    with friendly_errors():
        index, _ = _index(charter)
        with index:
            for path, passages, added in index.files():
                out.print(f"{passages:4} passages  {added}  {path}", markup=False)


@app.command("search")
def search(
    charter: Annotated[Path, typer.Argument(help="The charter file.")],
    query: Annotated[str, typer.Argument(help="What to look for.")],
    k: Annotated[int, typer.Option("-k", min=1, max=50)] = 3,
) -> None:
    """The passages a turn with this message would retrieve."""
    with friendly_errors():
        index, _ = _index(charter)
        with index:
            for i, hit in enumerate(index.search(query, k), 1):
                out.print(f"[{i}] {hit.score:.3f} {hit.passage.where}", markup=False)
                out.print(f"    {hit.passage.text}", markup=False)
