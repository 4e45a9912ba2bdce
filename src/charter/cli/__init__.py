"""The `charter` command. One module per command group; this one only assembles them."""

from __future__ import annotations

import typer

from charter.cli import (
    chat,
    data,
    escalations,
    evaluate,
    guard,
    keys,
    knowledge,
    models,
    serve,
    spec,
    steer,
    tune,
)

app = typer.Typer(
    name="charter",
    help="Charter: persona, constitution, guards and measurement for LLM products.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
spec.register(app)
chat.register(app)
guard.register(app)
evaluate.register(app)
serve.register(app)
tune.register(app)
steer.register(app)
app.add_typer(models.app, name="models")
app.add_typer(escalations.app, name="escalations")
app.add_typer(knowledge.app, name="knowledge")
app.add_typer(keys.app, name="keys")
app.add_typer(data.app, name="data")


def main() -> None:
    """Run the `charter` command (the console-script entry point)."""
    app()
