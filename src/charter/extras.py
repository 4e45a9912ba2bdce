"""Charter's optional parts, as pyproject's extras, and what a missing one says.

The core (`pip install charter`) is the charter file, the pipeline, the OpenAI-compatible
backend and the CLI. A part whose extra is not installed fails when it is first used, with
a message naming that extra: `install_hint("guards")`. The extras: docs/install.md.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

from charter.errors import MissingExtraError


def install_hint(extra: str) -> str:
    """The command that installs `extra`, from the registry and from a checkout."""
    return f"pip install 'charter[{extra}]' (in a checkout: pip install -e '.[{extra}]')"


def missing_extra_message(what: str, extra: str, missing: str | None = None) -> str:
    """`what` needs `extra`; `missing` is the module that could not be imported."""
    detail = f" ({missing} is not installed)" if missing else ""
    return f"{what} cannot run without the {extra!r} extra{detail}: {install_hint(extra)}"


@contextmanager
def requires_extra(
    what: str, extra: str, error: Callable[[str], Exception] = MissingExtraError
) -> Iterator[None]:
    """Turn a missing third-party module in this block into `error`, naming `extra`.

    Imports in this block that fail for want of a third-party module raise `error` with the
    message naming `extra` (a missing part of Charter itself is a bug: raised as is).
    """
    try:
        yield
    except ModuleNotFoundError as exc:
        missing = (exc.name or "").partition(".")[0]
        if not missing or missing == "charter":
            raise
        raise error(missing_extra_message(what, extra, missing)) from exc
