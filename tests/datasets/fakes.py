"""A tiny dataset catalog, the wheel and the web server it comes from, all made by the
tests: no real dataset is read or fetched."""

from __future__ import annotations

import hashlib
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial
from http.server import SimpleHTTPRequestHandler
from pathlib import Path
from typing import Any

from charter.datasets.catalog import Manifest
from tests import loopback

PACKAGE, VERSION = "charter-tinydata", "0.1.0"
CONTENT = {
    "alpha/a.txt": b"first line\n",
    "alpha/sub/b.jsonl": b'{"x": 1}\n',
    "beta/c.json": b'["c"]\n',
    "gamma/g.json": b'{"g": true}\n',
    "secret/s.txt": b"no licence\n",
}
# Where each file sits on the web server (url datasets) and in the wheel (pypi).
ON_WEB = {"alpha/a.txt": "alpha-repo/a.txt", "alpha/sub/b.jsonl": "alpha-repo/deep/b.jsonl"}
ON_WEB["secret/s.txt"] = "secret-repo/s.txt"
IN_WHEEL = {"beta/c.json": "charter_tinydata/data/c.json"}


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _file(key: str, **extra: Any) -> dict[str, Any]:
    data = CONTENT[key]
    return {"path": key.split("/", 1)[1], "size": len(data), "sha256": sha256(data), **extra}


def tiny_manifest(base_url: str) -> Manifest:
    """alpha (url; suites s1, s2), beta (pypi; s2), gamma (mirror; guard training only),
    secret (url, not redistributable; s3)."""
    commit = "0" * 40
    return Manifest.model_validate(
        {
            "datasets": [
                {
                    "name": "alpha",
                    "description": "two files on a web server",
                    "license": "MIT",
                    "redistributable": True,
                    "upstream": {
                        "kind": "url",
                        "provenance": "the test's server",
                        "base_url": f"{base_url}alpha-repo/",
                        "commit": commit,
                    },
                    "files": [
                        _file("alpha/a.txt", source="a.txt", suites=["s1"]),
                        _file(
                            "alpha/sub/b.jsonl",
                            source="deep/b.jsonl",
                            suites=["s1", "s2"],
                            guard_training=True,
                        ),
                    ],
                },
                {
                    "name": "beta",
                    "description": "one file in a wheel",
                    "license": "Apache-2.0",
                    "redistributable": True,
                    "upstream": {
                        "kind": "pypi",
                        "provenance": "the test's wheel",
                        "requirement": f"{PACKAGE}=={VERSION}",
                    },
                    "files": [_file("beta/c.json", source=IN_WHEEL["beta/c.json"], suites=["s2"])],
                },
                {
                    "name": "gamma",
                    "description": "a prepared file with no public twin",
                    "license": "MIT",
                    "redistributable": True,
                    "upstream": {"kind": "mirror", "provenance": "upstream, split by hand"},
                    "files": [_file("gamma/g.json", guard_training=True)],
                },
                {
                    "name": "secret",
                    "description": "no licence",
                    "license": "none stated",
                    "redistributable": False,
                    "upstream": {
                        "kind": "url",
                        "provenance": "the test's server",
                        "base_url": f"{base_url}secret-repo/",
                        "commit": commit,
                    },
                    "files": [_file("secret/s.txt", source="s.txt", suites=["s3"])],
                },
            ]
        }
    )


@dataclass(frozen=True)
class Tiny:
    manifest: Manifest
    manifest_file: Path
    mirror: Path  # a prepared folder: NAME/FILE
    wheels: Path  # a find-links folder holding the wheel of `beta`
    web: Path  # what the server serves
    data: Path  # an empty datasets folder


def write(folder: Path, files: dict[str, bytes]) -> None:
    for relative, data in files.items():
        (folder / relative).parent.mkdir(parents=True, exist_ok=True)
        (folder / relative).write_bytes(data)


def build_wheel(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    module, info = PACKAGE.replace("-", "_"), f"{PACKAGE.replace('-', '_')}-{VERSION}.dist-info"
    wheel = folder / f"{module}-{VERSION}-py3-none-any.whl"
    metadata = f"Metadata-Version: 2.1\nName: {PACKAGE}\nVersion: {VERSION}\n"
    members = {
        f"{module}/__init__.py": b"",
        IN_WHEEL["beta/c.json"]: CONTENT["beta/c.json"],
        f"{info}/METADATA": metadata.encode(),
        f"{info}/WHEEL": b"Wheel-Version: 1.0\nGenerator: tests\nRoot-Is-Purelib: true\n"
        b"Tag: py3-none-any\n",
    }
    record = "".join(f"{name},,\n" for name in [*members, f"{info}/RECORD"])
    with zipfile.ZipFile(wheel, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)
        archive.writestr(f"{info}/RECORD", record)
    return wheel


def build_tiny(tmp_path: Path, base_url: str, web: Path) -> Tiny:
    manifest = tiny_manifest(base_url)
    manifest_file = tmp_path / "manifest.json"
    manifest_file.write_text(manifest.model_dump_json(indent=2), encoding="utf-8")
    mirror = tmp_path / "mirror"
    write(mirror, CONTENT)
    write(web, {ON_WEB[key]: CONTENT[key] for key in ON_WEB})
    wheels = tmp_path / "wheels"
    build_wheel(wheels)
    data = tmp_path / "data"
    data.mkdir()
    return Tiny(manifest, manifest_file, mirror, wheels, web, data)


class _Quiet(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


@contextmanager
def serving(folder: Path) -> Iterator[str]:
    """Serve `folder` over HTTP on loopback; yields the base URL (ending in `/`)."""
    folder.mkdir(parents=True, exist_ok=True)
    with loopback.http_serving(partial(_Quiet, directory=str(folder))) as url:
        yield f"{url}/"


def leftovers(folder: Path) -> list[Path]:
    """Temporary files a pull may have left behind."""
    return [p for p in folder.rglob("*") if p.name.endswith(".part")]
