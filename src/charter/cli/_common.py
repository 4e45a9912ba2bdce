"""Helpers shared by the command modules: consoles, and turning errors into exit codes."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import typer
from rich.console import Console
from rich.markup import escape

from charter.errors import CharterError, ModelError
from charter.spec.loader import CharterFileError

out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)

EXIT_INVALID = 2  # bad charter file or arguments
EXIT_MODEL = 3  # model missing, corrupt or unreachable
EXIT_ERROR = 1


@contextmanager
def friendly_errors() -> Iterator[None]:
    """Print Charter's own errors as one clear message and exit non-zero; no traceback."""
    try:
        yield
    except CharterFileError as exc:
        err.print(f"[red]error:[/red] {escape(str(exc))}")
        raise typer.Exit(EXIT_INVALID) from None
    except ModelError as exc:
        err.print(f"[red]model error:[/red] {escape(str(exc))}")
        raise typer.Exit(EXIT_MODEL) from None
    except CharterError as exc:
        err.print(f"[red]error:[/red] {escape(str(exc))}")
        raise typer.Exit(EXIT_ERROR) from None
