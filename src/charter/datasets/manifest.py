"""Training manifests: which texts each shipped guard model learnt from or was calibrated on.

`charter guard train`, `train-harm` and `train-hate` write one next to their weights: a
fingerprint (the first 16 hex digits of the SHA-256 of the normalised text) per line, no
text. The eval suites drop every case whose fingerprint is in a shipped manifest, so no
readiness figure scores a guard on a text it was trained on; a test enforces it.
"""

from __future__ import annotations

import functools
import hashlib
import re
from collections.abc import Iterable
from importlib import resources
from pathlib import Path

MANIFEST_SUFFIX = ".manifest.txt"


def fingerprint(text: str) -> str:
    """The first 16 hex digits of the SHA-256 of `text`, lowercased and whitespace collapsed."""
    normalised = re.sub(r"\s+", " ", text.strip().lower())
    return hashlib.sha256(normalised.encode("utf-8")).hexdigest()[:16]


def write_manifest(path: Path, texts: Iterable[str], *, about: str) -> int:
    """Write the fingerprints of `texts` to `path`; returns how many."""
    prints = sorted({fingerprint(t) for t in texts if t.strip()})
    header = f"# {about}\n# sha256(normalised text)[:16], one per line\n"
    path.write_text(header + "\n".join(prints) + "\n", encoding="utf-8")
    return len(prints)


def read_manifest(path: Path | str) -> frozenset[str]:
    """The fingerprints in the manifest file at `path` (its `#` comment lines left out)."""
    lines = Path(path).read_text(encoding="utf-8").splitlines()
    return frozenset(line for line in lines if line and not line.startswith("#"))


@functools.cache
def shipped_fingerprints() -> frozenset[str]:
    """Every fingerprint in the manifests that ship with the guard weights."""
    folder = resources.files("charter.guards.data").joinpath("manifests")
    found: set[str] = set()
    for entry in folder.iterdir():
        if entry.name.endswith(MANIFEST_SUFFIX):
            lines = entry.read_text(encoding="utf-8").splitlines()
            found.update(line for line in lines if line and not line.startswith("#"))
    return frozenset(found)


def packaged_manifest(name: str) -> Path:
    """Where `charter guard train*` writes the manifest of the packaged weights `name`."""
    return (
        Path(__file__).resolve().parents[1]
        / "guards"
        / "data"
        / "manifests"
        / (name + MANIFEST_SUFFIX)
    )
