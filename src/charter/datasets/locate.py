"""Where the public datasets are.

Datasets are never copied into this repository. Charter reads them from `$CHARTER_DATA_DIR`
when it is set (and only from there); otherwise each dataset from the first of
`$CHARTER_HOME/datasets/` (where `charter data pull` puts them) and the `../shared/datasets/`
folder beside a source checkout that has its folder (`dataset_root`). The catalog
(`charter.datasets.catalog`, `charter data list`) gives each one's public origin, licence
and the SHA-256 of every file.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from charter.datasets.catalog import DatasetNotFoundError, load_manifest
from charter.home import charter_home

__all__ = [
    "ORIGINS",
    "DatasetNotFoundError",
    "Origin",
    "data_dir",
    "dataset_path",
    "dataset_root",
    "pull_target",
]


@dataclass(frozen=True)
class Origin:
    """A dataset's public origin and licence, as the catalog gives them."""

    name: str
    source: str
    license: str


ORIGINS: dict[str, Origin] = {
    d.name: Origin(d.name, d.origin, d.license) for d in load_manifest().datasets
}
"""Each dataset's public origin and licence, from the catalog."""


def _checkout_datasets() -> Path | None:
    """`../shared/datasets` beside the checkout, when Charter runs from a source checkout."""
    src = Path(__file__).resolve().parents[2]
    if src.name != "src" or not (src.parent / "pyproject.toml").is_file():
        return None
    return src.parent.parent / "shared" / "datasets"


def pull_target() -> Path:
    """Where `charter data pull` puts datasets.

    `$CHARTER_DATA_DIR`, else `$CHARTER_HOME/datasets`.
    """
    configured = os.environ.get("CHARTER_DATA_DIR")
    return Path(configured).expanduser() if configured else charter_home() / "datasets"


def _candidates() -> list[Path]:
    checkout = _checkout_datasets()
    return [charter_home() / "datasets", *([checkout] if checkout else [])]


def data_dir() -> Path:
    """The datasets folder Charter reads.

    `$CHARTER_DATA_DIR`, else `$CHARTER_HOME/datasets`, else `../shared/datasets` beside a
    source checkout, whichever comes first. Raises DatasetNotFoundError when there is none.
    """
    return resolve_data_dir(os.environ.get("CHARTER_DATA_DIR"), _candidates())


def resolve_data_dir(configured: str | None, candidates: Sequence[Path]) -> Path:
    """`configured` (which must be a folder) if given, else the first candidate folder."""
    if configured:
        path = Path(configured).expanduser()
        if not path.is_dir():
            raise DatasetNotFoundError(
                f"$CHARTER_DATA_DIR is {path}, which is not a folder; run `charter data pull` "
                "to fetch the datasets there"
            )
        return path
    for path in candidates:
        if path.is_dir():
            return path
    looked = ", ".join(str(p) for p in candidates)
    raise DatasetNotFoundError(
        f"no datasets folder (looked in {looked}; $CHARTER_DATA_DIR is not set); "
        "run `charter data pull` to fetch the public datasets"
    )


def dataset_root(name: str) -> Path:
    """The folder that holds dataset `name`.

    `$CHARTER_DATA_DIR` when set (and only it), else the first of `$CHARTER_HOME/datasets` and
    the checkout's `../shared/datasets` that has a `name/` folder, so that pulling one dataset
    into the Charter home does not hide the others. When none has it: `data_dir()`.
    """
    if os.environ.get("CHARTER_DATA_DIR"):
        return data_dir()
    for folder in _candidates():
        if (folder / name).is_dir():
            return folder
    return data_dir()


def dataset_path(*parts: str) -> Path:
    """The file or folder `parts` of a dataset (`parts[0]` is the dataset's name)."""
    name, wanted = parts[0], "/".join(parts)
    try:
        root = dataset_root(name)
    except DatasetNotFoundError as exc:
        raise DatasetNotFoundError(
            f"dataset {name!r}: {wanted} not found: {exc}; {_how(name)}"
        ) from None
    path = root.joinpath(*parts)
    if not path.exists():
        raise DatasetNotFoundError(f"dataset {name!r}: {wanted} is missing in {root}; {_how(name)}")
    return path


def _how(name: str) -> str:
    manifest = load_manifest()
    if name not in manifest.names:
        return f"it is not in Charter's dataset catalog: put your copy under {name}/ there"
    dataset = manifest.get(name)
    if dataset.mirror_only:
        return (
            f"run `{dataset.pull_command()}` with DIR a prepared copy of the datasets "
            f"(no public file is identical: {dataset.origin})"
        )
    return f"run `{dataset.pull_command()}` (from {dataset.origin})"
