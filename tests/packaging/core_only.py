"""Run as if only the core were installed: `install()` makes importing any installed
distribution outside the core's requirements (followed through their own requirements)
fail like a missing package. For subprocesses (`CORE_ONLY` is the code that sets it up):
the test process itself has every extra, imported already."""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import importlib.metadata
import re
import sys
import tomllib
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parents[2]
# Prepended to a `python -c` script run with cwd=ROOT.
CORE_ONLY = "from tests.packaging.core_only import install\ninstall()\n"


def _name(requirement: str) -> str:
    return re.split(r"[\s\[<>=!~;]", requirement, maxsplit=1)[0].lower().replace("_", "-")


def core_distributions() -> set[str]:
    """pyproject's core requirements and everything they require (extras left out)."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    todo, seen = [_name(r) for r in project["dependencies"]], set[str]()
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        try:
            requires = importlib.metadata.requires(name) or []
        except importlib.metadata.PackageNotFoundError:
            continue  # a requirement for another platform or Python
        todo += [_name(r) for r in requires if "extra ==" not in r]
    return seen


def optional_modules() -> set[str]:
    """Top-level modules of the installed distributions that the core does not bring."""
    core = core_distributions()
    return {
        module
        for module, dists in importlib.metadata.packages_distributions().items()
        if not any(_name(d) in core for d in dists)
    } - {"charter", "tests"}


class _Missing(importlib.abc.MetaPathFinder):
    def __init__(self, blocked: set[str]) -> None:
        self.blocked = blocked

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        top = fullname.partition(".")[0]
        if top in self.blocked:
            raise ModuleNotFoundError(f"No module named {top!r} (core only)", name=top)
        return None


def install() -> None:
    sys.meta_path.insert(0, _Missing(optional_modules()))
