"""The gateway mounted in a team's own FastAPI app: `parent.mount("/charter", gateway)`.

Starlette runs only the outermost app's lifespan, so the parent enters `charter_lifespan`;
these tests check the prefix, the start-up it runs (readiness, kept-alive upstream
connections) and what a parent that forgets it sees."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI
from fastapi.testclient import TestClient
from playwright.sync_api import ConsoleMessage, sync_playwright

from charter import Charter, FakeModel
from charter.gateway import charter_lifespan, create_app
from charter.spec import CharterSpec
from charter.store.sqlite import Store
from tests.conftest import FakeOpenAIServer, serving
from tests.gateway.test_playground import chromium

PERSONA = {"name": "Penny", "role": "support assistant", "organisation": "Acme Bank"}
SPEC = CharterSpec.model_validate(
    {
        "id": "fake-bank",
        "persona": PERSONA,
        "guards": {"input": ["extraction"], "output": ["leak"]},
        "critique": {"enabled": False},
    }
)


def gateway(reply: str = "Our branches open at 9.", **kwargs: object) -> FastAPI:
    model = FakeModel(default=reply)
    return create_app({"fake-bank": Charter(SPEC, model=model)}, **kwargs)  # type: ignore[arg-type]


def ask(content: str, **extra: object) -> dict[str, object]:
    return {"model": "fake-bank", "messages": [{"role": "user", "content": content}], **extra}


def test_mounted_gateway_answers_under_its_prefix(tmp_path: Path) -> None:
    store = Store(tmp_path / "c.db")
    charter_app = gateway(store=store)
    parent = FastAPI(lifespan=lambda app: charter_lifespan(charter_app))
    parent.mount("/charter", charter_app)

    @parent.get("/own")
    async def own() -> dict[str, str]:
        return {"team": "route"}

    with TestClient(parent) as c:
        assert c.get("/charter/readyz").json() == {"status": "ready"}
        assert c.get("/charter/healthz").json() == {"status": "ok"}
        assert [m["id"] for m in c.get("/charter/v1/models").json()["data"]] == ["fake-bank"]

        response = c.post("/charter/v1/chat/completions", json=ask("When do you open?"))
        assert response.status_code == 200
        body = response.json()
        assert body["choices"][0]["message"]["content"] == "Our branches open at 9."
        assert body["charter"]["guards"] == ["input:extraction=allow", "output:leak=allow"]
        assert response.headers["X-Charter-Guards"] == "input:extraction=allow,output:leak=allow"

        with c.stream(
            "POST", "/charter/v1/chat/completions", json=ask("When?", stream=True)
        ) as streamed:
            lines = [line for line in streamed.iter_lines() if line.startswith("data: {")]
        text = "".join(
            json.loads(line[6:])["choices"][0]["delta"].get("content") or "" for line in lines
        )
        assert text == "Our branches open at 9."

        # The gateway's own error format, and its audit log, under the prefix too.
        bad = c.post("/charter/v1/chat/completions", json={"model": "fake-bank"})
        assert bad.status_code == 400
        assert bad.json()["error"]["param"] == "messages"
        assert len(c.get("/charter/v1/audit").json()["data"]) == 2

        # The parent's routes are untouched; the gateway's schema knows where it lives.
        assert c.get("/own").json() == {"team": "route"}
        assert c.get("/v1/models").status_code == 404
        assert "/charter/openapi.json" in c.get("/charter/docs").text
        assert c.get("/charter/openapi.json").status_code == 200
    store.close()


def test_the_parent_keeps_its_own_lifespan() -> None:
    charter_app = gateway("Hello from inside.")
    events: list[str] = []

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        events.append("parent up")
        async with charter_lifespan(charter_app):
            yield
        events.append("parent down")

    parent = FastAPI(lifespan=lifespan)
    parent.mount("/charter", charter_app)
    with TestClient(parent) as c:
        assert c.get("/charter/readyz").status_code == 200
        reply = c.post("/charter/v1/chat/completions", json=ask("hi")).json()
        assert reply["choices"][0]["message"]["content"] == "Hello from inside."
    assert events == ["parent up", "parent down"]


def test_without_the_lifespan_readiness_says_not_started() -> None:
    """A parent that forgets `charter_lifespan` is told so by /readyz (a probe keeps the
    replica out of rotation); a turn still works, loading the charter on first use."""
    parent = FastAPI()
    parent.mount("/charter", gateway())
    with TestClient(parent) as c:
        ready = c.get("/charter/readyz")
        assert (ready.status_code, ready.json()) == (503, {"status": "not started"})
        body = c.post("/charter/v1/chat/completions", json=ask("When do you open?")).json()
        assert body["choices"][0]["message"]["content"] == "Our branches open at 9."


def test_the_lifespan_keeps_upstream_connections_and_closes_them(
    openai_server: FakeOpenAIServer,
) -> None:
    """Inside `charter_lifespan`, an HTTP model reuses one kept-alive connection across
    turns (as under `charter serve`), and leaving it closes the pool."""
    spec = CharterSpec.model_validate(
        {
            "id": "fake-bank",
            "persona": PERSONA,
            "models": {"chat": {"backend": "openai", "base_url": openai_server.url, "model": "m"}},
            "guards": {"input": [], "output": []},
            "critique": {"enabled": False},
        }
    )
    charter = Charter(spec)
    charter_app = create_app({"fake-bank": charter})
    parent = FastAPI(lifespan=lambda app: charter_lifespan(charter_app))
    parent.mount("/charter", charter_app)
    openai_server.reply("one")
    openai_server.reply("two")
    with TestClient(parent) as c:
        for expected in ("one", "two"):
            body = c.post("/charter/v1/chat/completions", json=ask("hi")).json()
            assert body["choices"][0]["message"]["content"] == expected
        assert charter.model._session is not None  # type: ignore[attr-defined]
    first, second = openai_server.peers
    assert first == second  # the same connection: the pool the lifespan turned on
    assert charter.model._session is None  # type: ignore[attr-defined]


def test_the_playground_works_mounted_in_a_real_browser(tmp_path: Path) -> None:
    """The page calls the API by relative paths, so it works under any prefix."""
    report = tmp_path / "report.html"
    report.write_text("<html><body><h1 id='score'>Readiness 88.8</h1></body></html>")
    store = Store(tmp_path / "c.db")
    charter_app = gateway("Mounted and answering.", store=store, report=report)
    parent = FastAPI(lifespan=lambda app: charter_lifespan(charter_app))
    parent.mount("/charter", charter_app)
    console: list[str] = []
    with serving(parent) as url, sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium(), args=["--no-sandbox"])
        page = browser.new_page()

        def log(message: ConsoleMessage) -> None:
            console.append(f"{message.type}: {message.text}")

        page.on("console", log)
        page.on("pageerror", lambda exc: console.append(f"pageerror: {exc}"))
        page.goto(url + "/charter")  # redirected to /charter/
        page.wait_for_function("document.querySelectorAll('#model option').length === 1")
        page.fill("#message", "When do you open?")
        page.click("#send")
        page.wait_for_selector(".msg.assistant")
        assert page.inner_text(".msg.assistant") == "Mounted and answering."
        page.wait_for_selector("#report-section:not([hidden])")
        assert page.frame_locator("#report").locator("#score").inner_text() == "Readiness 88.8"
        browser.close()
    store.close()
    assert console == [], console
