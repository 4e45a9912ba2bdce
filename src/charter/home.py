"""Where Charter keeps its files: `$CHARTER_HOME`, else `~/.charter/`."""

from __future__ import annotations

import os
from pathlib import Path


def charter_home() -> Path:
    """Charter's folder: `$CHARTER_HOME` (with `~` expanded) when set, else `~/.charter`."""
    configured = os.environ.get("CHARTER_HOME")
    return Path(configured).expanduser() if configured else Path.home() / ".charter"


def models_dir() -> Path:
    """The folder of cached model weights, `models/` in the Charter home."""
    return charter_home() / "models"


def default_db_path() -> Path:
    """The SQLite store used when none is configured, `charter.db` in the Charter home."""
    return charter_home() / "charter.db"
