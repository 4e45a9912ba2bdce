from __future__ import annotations

import importlib
import json
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from charter.home import charter_home
from tests.loopback import http_serving

if TYPE_CHECKING:
    from tests.kit import TestChat

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"
# The model cache of the machine running the tests, read before any test points
# $CHARTER_HOME at a temporary folder: end-to-end tests load the real model from here.
REAL_CHARTER_HOME = charter_home()
# The turn of the acme-bank example, outermost stage first (its charter enables them all).
ACME_STAGES = [
    "persona",
    "instructions",
    "escalate",
    "drift",
    "input_guards",
    "output_guards",
    "retrieve",
    "tools",
    "hygiene",
    "critique",
    "generate",
]


@pytest.fixture(autouse=True)
def isolated_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every test gets its own Charter home, so no test reads or writes the user's."""
    home = tmp_path / "charter-home"
    monkeypatch.setenv("CHARTER_HOME", str(home))
    monkeypatch.delenv("CHARTER_CANARY_SECRET", raising=False)
    return home


# --- no real model weights outside the tests marked `model` -------------------------------

WEIGHT_LOADERS = (("xllamacpp", "Server"), ("llama_cpp", "Llama"))
"""Where llama.cpp reads a GGUF file: xllamacpp's embedded server (`LocalModel`) and
llama-cpp-python's `Llama` (`runtime: llama-cpp-python`)."""


@dataclass
class _WeightsPolicy:
    allowed: bool = False
    """The running test is marked `model`."""
    loads: list[str] = field(default_factory=list)
    """Loads the running test tried without the mark."""


_WEIGHTS = _WeightsPolicy()


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    # Before any fixture of the test is set up: a session fixture that loads a model (the
    # e2e tests' `qwen`) is built during the setup of the first test that asks for it.
    _WEIGHTS.allowed = item.get_closest_marker("model") is not None
    _WEIGHTS.loads.clear()


def _refusing(load: Callable[..., Any], where: str) -> Callable[..., Any]:
    def guarded(*args: Any, **kwargs: Any) -> Any:
        if _WEIGHTS.allowed:
            return load(*args, **kwargs)
        _WEIGHTS.loads.append(where)
        pytest.fail(
            f"this test loads real model weights ({where}) but is not marked `model`: "
            "use a FakeModel (tests/kit.py), or mark it @pytest.mark.model",
            pytrace=False,
        )

    return guarded


@pytest.fixture(scope="session", autouse=True)
def real_weights_guard() -> Iterator[None]:
    """Fail a test that loads real model weights unless it is marked `model`.

    Real weights are a GGUF language model run by llama.cpp: the chat model (`backend:
    local`) and a local safety model guard (Llama Guard, Qwen3Guard): hundreds of MB,
    seconds to load, minutes of CPU to run. They are refused where llama.cpp opens the file,
    `xllamacpp.Server` and `llama_cpp.Llama` (patched for the session, the mark read per
    test), so no path around `LocalModel` escapes. The guard models every guard test runs
    are not weights in this sense: MiniLM (an ONNX graph), the guard classifiers and the
    profanity model are small, load in well under a second and are what those tests test.
    Weights loaded in a subprocess (the CLI run as a command) are out of its reach."""
    with pytest.MonkeyPatch.context() as patch:
        for name, attribute in WEIGHT_LOADERS:
            try:
                module = importlib.import_module(name)
            except ImportError:  # an optional runtime that is not installed loads nothing
                continue
            load = getattr(module, attribute)
            patch.setattr(module, attribute, _refusing(load, f"{name}.{attribute}"))
        yield


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    # A test whose load was refused but that swallowed the failure (code that catches every
    # exception) still fails.
    report = yield
    if report.when == "call" and report.passed and _WEIGHTS.loads:
        report.outcome = "failed"
        report.longrepr = (
            f"this test tried to load real model weights ({', '.join(_WEIGHTS.loads)}) "
            "but is not marked `model` (the refusal was caught and swallowed)"
        )
    return report


@pytest.fixture
def chat() -> Iterator[Callable[..., TestChat]]:
    """Start conversations with a scripted model: `chat(charter, *replies, **options)`
    makes a `TestChat` (tests/kit.py), closed after the test."""
    from tests.kit import TestChat

    started: list[TestChat] = []

    def start(*args: Any, **kwargs: Any) -> TestChat:
        started.append(TestChat(*args, **kwargs))
        return started[-1]

    yield start
    for conversation in started:
        conversation.close()


@pytest.fixture
def acme_file() -> Path:
    return EXAMPLES / "acme-bank" / "charter.yaml"


@pytest.fixture
def fake_charter_file(tmp_path: Path) -> Callable[..., Path]:
    """Write a small charter that uses the fake backend."""

    def make(replies: list[str] | None = None, extra: str = "") -> Path:
        lines = "\n".join(f"      - {json.dumps(r)}" for r in (replies or ["Hello, I am Penny."]))
        path = tmp_path / "fake.yaml"
        path.write_text(
            "id: fake-bank\n"
            "persona:\n"
            "  name: Penny\n"
            "  role: support assistant\n"
            "  organisation: Acme Bank\n"
            "models:\n"
            "  chat:\n"
            "    backend: fake\n"
            "    replies:\n"
            f"{lines}\n" + extra,
            encoding="utf-8",
        )
        return path

    return make


# --- an OpenAI-compatible server on loopback, scripted per test --------------------------


@dataclass
class Scripted:
    status: int = 200
    body: Any = None
    sse: list[str] | None = None  # raw `data:` payloads for a streamed answer
    close_early: bool = False
    headers: dict[str, str] = field(default_factory=dict)
    """Extra response headers (e.g. Retry-After)."""


@dataclass
class FakeOpenAIServer:
    url: str
    script: list[Scripted] = field(default_factory=list)
    requests: list[dict[str, Any]] = field(default_factory=list)
    headers: list[dict[str, str]] = field(default_factory=list)
    peers: list[tuple[str, int]] = field(default_factory=list)
    """The client address of each request (the same one: a kept-alive connection)."""
    arrivals: list[float] = field(default_factory=list)
    """When each request arrived (time.monotonic)."""

    def busy(self, status: int = 429, **headers: str) -> None:
        """Answer "come back later": `Retry_After="1"` sends `Retry-After: 1`."""
        names = {k.replace("_", "-"): v for k, v in headers.items()}
        self.script.append(Scripted(status, {"error": {"message": "slow down"}}, headers=names))

    def reply(self, text: str, *, prompt_tokens: int = 7, completion_tokens: int = 3) -> None:
        self.script.append(Scripted(body=completion_body(text, prompt_tokens, completion_tokens)))

    def stream(self, pieces: list[str], *, done: bool = True) -> None:
        chunks = [
            json.dumps({"choices": [{"index": 0, "delta": {"content": p}, "finish_reason": None}]})
            for p in pieces
        ]
        chunks.append(
            json.dumps(
                {
                    "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}],
                    "usage": {"prompt_tokens": 5, "completion_tokens": len(pieces)},
                }
            )
        )
        if done:
            chunks.append("[DONE]")
        self.script.append(Scripted(sse=chunks))


def completion_body(text: str, prompt_tokens: int = 7, completion_tokens: int = 3) -> Any:
    return {
        "id": "chatcmpl-test",
        "object": "chat.completion",
        "choices": [
            {"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}
        ],
        "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens},
    }


@pytest.fixture
def openai_server() -> Iterator[FakeOpenAIServer]:
    state = FakeOpenAIServer(url="")

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, as real servers do

        def log_message(self, *args: Any) -> None:
            pass

        def do_POST(self) -> None:
            state.arrivals.append(time.monotonic())
            length = int(self.headers.get("content-length", 0))
            state.requests.append(json.loads(self.rfile.read(length)))
            state.headers.append(dict(self.headers))
            state.peers.append(self.client_address)
            step = state.script.pop(0) if state.script else Scripted(500, {"error": "no script"})
            if step.sse is not None:
                self.close_connection = True  # an SSE body ends when the connection does
                self.send_response(200)
                self.send_header("content-type", "text/event-stream")
                self.send_header("connection", "close")
                self.end_headers()
                for payload in step.sse:
                    self.wfile.write(f"data: {payload}\n\n".encode())
                    self.wfile.flush()
                return
            raw = step.body if isinstance(step.body, bytes) else json.dumps(step.body).encode()
            self.send_response(step.status)
            for name, value in step.headers.items():
                self.send_header(name, value)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(raw)))
            self.end_headers()
            self.wfile.write(raw)

    with http_serving(Handler) as url:
        state.url = f"{url}/v1"
        yield state


# --- a real redis-server on loopback, started for the test session -----------------------


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A throwaway redis-server (Debian's `redis-server`, installed by scripts/setup.sh --dev)."""
    import shutil
    import subprocess
    import time

    binary = shutil.which("redis-server")
    assert binary, (
        "redis-server is needed (scripts/test.sh installs it: apt-get install redis-server)"
    )
    port = free_port()
    folder = tmp_path_factory.mktemp("redis")
    server = subprocess.Popen(
        [
            binary,
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(folder),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    import redis

    client = redis.Redis(port=port)
    try:
        for _ in range(100):
            try:
                if client.ping():
                    break
            except redis.ConnectionError:
                time.sleep(0.05)
        else:
            raise RuntimeError("redis-server did not start")
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        client.close()
        server.terminate()
        server.wait(timeout=10)


# --- a real PostgreSQL on loopback, started for the test session -------------------------


def _pg_binary(name: str) -> str:
    import glob
    import shutil

    found = shutil.which(name) or next(
        iter(sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"), reverse=True)), None
    )
    assert found, f"PostgreSQL's {name} is needed (scripts/test.sh installs Debian's postgresql)"
    return found


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A throwaway PostgreSQL cluster (Debian's `postgresql`). PostgreSQL refuses to run as
    root, so as root it runs as the `postgres` user (in a folder outside pytest's private
    temporary tree, which that user cannot enter)."""
    import os
    import shutil
    import subprocess
    import tempfile
    import time

    import psycopg

    folder = Path(tempfile.mkdtemp(prefix="charter-pg-"))
    data, sockets = folder / "data", folder / "sock"
    sockets.mkdir()
    as_user: list[str] = []
    if os.getuid() == 0:
        as_user = ["runuser", "-u", "postgres", "--"]
        os.chmod(folder, 0o777)
        os.chown(sockets, _uid("postgres"), -1)
    subprocess.run(
        [*as_user, _pg_binary("initdb"), "-D", str(data), "-U", "charter", "--auth=trust",
         "-E", "UTF8", "--no-sync"],
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    port = free_port()
    server = subprocess.Popen(
        [*as_user, _pg_binary("postgres"), "-D", str(data), "-p", str(port), "-k", str(sockets),
         "-h", "127.0.0.1", "-c", "fsync=off"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    url = f"postgresql://charter@127.0.0.1:{port}/postgres"
    try:
        for _ in range(200):
            try:
                psycopg.connect(url, connect_timeout=1).close()
                break
            except psycopg.OperationalError:
                time.sleep(0.05)
        else:
            raise RuntimeError("PostgreSQL did not start")
        yield url
    finally:
        server.terminate()
        server.wait(timeout=20)
        shutil.rmtree(folder, ignore_errors=True)


def _uid(user: str) -> int:
    import pwd

    return pwd.getpwnam(user).pw_uid


@contextmanager
def serving(app: Any) -> Iterator[str]:
    """Run an ASGI app with uvicorn on a free loopback port, on a thread; yields its base
    URL (http://127.0.0.1:PORT) and stops it afterwards."""
    import time

    import uvicorn

    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="error"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert time.monotonic() < deadline, "the server did not start"
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
