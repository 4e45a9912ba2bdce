"""What the eval tests share."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def charter_file(tmp_path: Path) -> Path:
    """The acme-bank charter on the fake model, guards off (logic only; the guards run in
    the marked end-to-end test)."""
    data = yaml.safe_load((ROOT / "examples" / "acme-bank" / "charter.yaml").read_text())
    data["models"] = {"chat": {"backend": "fake", "replies": ["unused"]}}
    data["guards"] = {"input": [], "output": []}
    data["knowledge"]["paths"] = [str(ROOT / "examples" / "acme-bank" / "knowledge")]
    data["tools"] = []  # tool use is tested in tests/tools
    path = tmp_path / "charter.yaml"
    path.write_text(yaml.safe_dump(data))
    return path
