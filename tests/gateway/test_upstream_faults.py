"""Upstream faults through the gateway: retried, fallen back, answered in persona, audited."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient

from charter import Charter
from charter.gateway import create_app
from charter.spec import CharterSpec
from charter.store.sqlite import Store
from tests.conftest import FakeOpenAIServer, Scripted

APOLOGY = "Sorry, something went wrong on our side."


def gateway(url: str, tmp_path: Path, **models: Any) -> tuple[TestClient, Store]:
    spec = CharterSpec.model_validate(
        {
            "id": "bank",
            "persona": {"name": "Penny", "role": "support assistant", "apology": APOLOGY},
            "guards": {"input": [], "output": ["leak"]},
            "critique": {"enabled": False},
            "models": {
                "chat": {"backend": "openai", "base_url": url, "model": "m", "max_retries": 1},
                **models,
            },
        }
    )
    store = Store(tmp_path / "audit.db")
    return TestClient(create_app({"bank": Charter(spec)}, store=store)), store


def ask(**extra: object) -> dict[str, object]:
    return {"model": "bank", "messages": [{"role": "user", "content": "hi"}], **extra}


def test_a_5xx_is_retried_within_the_bound(openai_server: FakeOpenAIServer, tmp_path: Path) -> None:
    openai_server.script.append(Scripted(503, {"error": "overloaded"}))
    openai_server.reply("Hello there.")
    client, store = gateway(openai_server.url, tmp_path)
    with client as c:
        body = c.post("/v1/chat/completions", json=ask()).json()
    assert body["choices"][0]["message"]["content"] == "Hello there."
    assert len(openai_server.requests) == 2
    assert store.audit("local")[0].reply == "Hello there."


def test_turns_reuse_one_upstream_connection(
    openai_server: FakeOpenAIServer, tmp_path: Path
) -> None:
    """The gateway keeps its upstream connections alive across turns (no handshake each)."""
    for text in ("One.", "Two.", "Three."):
        openai_server.reply(text)
    client, _ = gateway(openai_server.url, tmp_path)
    with client as c:
        texts = [
            c.post("/v1/chat/completions", json=ask()).json()["choices"][0]["message"]["content"]
            for _ in range(3)
        ]
    assert texts == ["One.", "Two.", "Three."]
    assert len(openai_server.peers) == 3
    assert len(set(openai_server.peers)) == 1


def test_outside_a_server_each_turn_has_its_own_connection(
    openai_server: FakeOpenAIServer,
) -> None:
    """`Charter.respond` runs each turn on a new event loop: no connection outlives it."""
    openai_server.reply("One.")
    openai_server.reply("Two.")
    spec = CharterSpec.model_validate(
        {
            "id": "bank",
            "persona": {"name": "Penny", "role": "support assistant"},
            "guards": {"input": [], "output": []},
            "critique": {"enabled": False},
            "models": {"chat": {"backend": "openai", "base_url": openai_server.url, "model": "m"}},
        }
    )
    with Charter(spec) as charter:
        assert [charter.respond("hi").text for _ in range(2)] == ["One.", "Two."]
    assert len(set(openai_server.peers)) == 2


def test_a_failing_upstream_gets_the_persona_apology_and_an_audit_record(
    openai_server: FakeOpenAIServer, tmp_path: Path
) -> None:
    # Nothing scripted: every call answers 500. Retried once, then the turn fails closed.
    client, store = gateway(openai_server.url, tmp_path)
    with client as c:
        body = c.post("/v1/chat/completions", json=ask()).json()
    assert body["choices"][0]["message"]["content"] == APOLOGY
    assert body["charter"]["blocked"] is True
    assert len(openai_server.requests) == 2  # max_retries 1: bounded
    [record] = store.audit("local")
    generate = next(r for r in record.trace if r["stage"] == "generate")
    assert "500" in str(generate["error"]) and record.blocked


def test_a_failing_upstream_falls_back_to_the_strong_model(
    openai_server: FakeOpenAIServer, tmp_path: Path
) -> None:
    strong = {"backend": "fake", "replies": ["Answered by the other model."]}
    client, store = gateway(openai_server.url, tmp_path, strong=strong)
    with client as c:
        body = c.post("/v1/chat/completions", json=ask()).json()
    assert body["choices"][0]["message"]["content"] == "Answered by the other model."
    generate = next(r for r in body["charter"]["trace"] if r["stage"] == "generate")
    assert generate["detail"]["model_role"] == "strong" and generate["detail"]["fallback"]
    assert store.audit("local")[0].trace == body["charter"]["trace"]


def test_a_malformed_upstream_answer_is_a_handled_failure(
    openai_server: FakeOpenAIServer, tmp_path: Path
) -> None:
    openai_server.script.append(Scripted(200, b"{not json"))
    openai_server.script.append(Scripted(200, {"choices": []}))
    client, store = gateway(openai_server.url, tmp_path)
    with client as c:
        body = c.post("/v1/chat/completions", json=ask()).json()
    assert body["choices"][0]["message"]["content"] == APOLOGY
    assert store.audit_count() == 1


def test_a_disconnect_mid_stream_ends_the_stream_in_persona(
    openai_server: FakeOpenAIServer, tmp_path: Path
) -> None:
    openai_server.stream(["First sentence. ", "Second sen"], done=False)
    client, store = gateway(openai_server.url, tmp_path)
    with client as c:
        response = c.post("/v1/chat/completions", json=ask(stream=True))
    events = [line[6:] for line in response.text.splitlines() if line.startswith("data: ")]
    assert events[-1] == "[DONE]"
    chunks = [json.loads(e) for e in events[:-1]]
    text = "".join(str(ch["choices"][0]["delta"].get("content", "")) for ch in chunks)
    assert text.startswith("First sentence. ") and text.endswith(APOLOGY)
    assert "Second sen" not in text  # an unfinished sentence is never released
    assert chunks[-1]["choices"][0]["finish_reason"] == "content_filter"
    [record] = store.audit("local")
    assert record.stream and record.blocked
