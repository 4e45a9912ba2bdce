"""Where Charter keeps its files: `$CHARTER_HOME`, else `~/.charter/`."""

from __future__ import annotations

import os
from pathlib import Path


def charter_home() -> Path:
    configured = os.environ.get("CHARTER_HOME")
    return Path(configured).expanduser() if configured else Path.home() / ".charter"


def models_dir() -> Path:
    return charter_home() / "models"


def default_db_path() -> Path:
    return charter_home() / "charter.db"
