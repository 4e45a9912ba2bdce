"""API keys and tenants: hashed keys, per-tenant audit log and escalations, no cross-reads."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from charter import Charter, FakeModel
from charter.cli import app as cli
from charter.gateway import create_app
from charter.gateway.auth import new_key
from charter.spec import CharterSpec
from charter.store.sqlite import Store

BANK = CharterSpec.model_validate(
    {
        "id": "bank",
        "persona": {
            "name": "Penny",
            "role": "support assistant",
            "escalation": {"contact": "our support team"},
        },
        "guards": {"input": [], "output": []},
        "critique": {"enabled": False},
    }
)
TUTOR = BANK.model_copy(update={"id": "tutor"})


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    db = Store(tmp_path / "gateway.db")
    yield db
    db.close()


@pytest.fixture
def keys(store: Store) -> dict[str, str]:
    _, alpha = new_key(store, "alpha", ["*"])
    _, beta = new_key(store, "beta", ["bank"])
    return {"alpha": alpha, "beta": beta}


def gateway(store: Store) -> TestClient:
    charters = {
        "bank": Charter(BANK, model=FakeModel(default="Happy to help. Bye.")),
        "tutor": Charter(TUTOR, model=FakeModel(default="Let us learn.")),
    }
    return TestClient(create_app(charters, store=store))


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def ask(model: str, content: str, **extra: object) -> dict[str, object]:
    return {"model": model, "messages": [{"role": "user", "content": content}], **extra}


def test_with_keys_every_v1_call_needs_a_live_key(store: Store, keys: dict[str, str]) -> None:
    with gateway(store) as c:
        missing = c.post("/v1/chat/completions", json=ask("bank", "hi"))
        assert missing.status_code == 401 and "missing API key" in missing.text
        forged = "chk_00000000_" + "x" * 43
        assert c.get("/v1/models", headers=bearer(forged)).status_code == 401
        assert c.get("/v1/audit", headers=bearer("nonsense")).status_code == 401
        assert c.get("/healthz").status_code == 200  # probes stay open
        models = c.get("/v1/models", headers=bearer(keys["beta"])).json()
        assert [m["id"] for m in models["data"]] == ["bank"]
        denied = c.post(
            "/v1/chat/completions", json=ask("tutor", "hi"), headers=bearer(keys["beta"])
        )
        assert denied.status_code == 403 and "may not use" in denied.text
        ok = c.post("/v1/chat/completions", json=ask("tutor", "hi"), headers=bearer(keys["alpha"]))
        assert ok.status_code == 200
        key_id = keys["alpha"].split("_")[1]
        assert store.revoke_api_key(key_id)
        revoked = c.post(
            "/v1/chat/completions", json=ask("bank", "hi"), headers=bearer(keys["alpha"])
        )
        assert revoked.status_code == 401 and "revoked" in revoked.text


def test_a_tenant_reads_only_its_own_audit_records_and_escalations(
    store: Store, keys: dict[str, str]
) -> None:
    a, b = bearer(keys["alpha"]), bearer(keys["beta"])
    with gateway(store) as c:
        c.post("/v1/chat/completions", json=ask("bank", "alpha secret question"), headers=a)
        streamed = c.post(
            "/v1/chat/completions", json=ask("tutor", "alpha streamed", stream=True), headers=a
        )
        assert streamed.status_code == 200 and "[DONE]" in streamed.text
        c.post("/v1/chat/completions", json=ask("bank", "talk to a person please"), headers=a)
        c.post("/v1/chat/completions", json=ask("bank", "beta question"), headers=b)
        alpha = c.get("/v1/audit", headers=a).json()["data"]
        beta = c.get("/v1/audit", headers=b).json()["data"]
        alpha_queue = c.get("/v1/escalations", headers=a).json()["data"]
        beta_queue = c.get("/v1/escalations", headers=b).json()["data"]
    said = [entry["messages"][-1]["content"] for entry in alpha]
    assert said == ["talk to a person please", "alpha streamed", "alpha secret question"]
    assert [entry["stream"] for entry in alpha] == [False, True, False]
    assert all(entry["trace"] for entry in alpha)
    assert [entry["messages"][-1]["content"] for entry in beta] == ["beta question"]
    assert "alpha" not in json.dumps(beta)
    assert len(alpha_queue) == 1 and alpha_queue[0]["model"] == "bank"
    assert beta_queue == []
    assert store.audit_count() == 4


def test_without_keys_calls_are_the_local_tenant_and_still_audited(store: Store) -> None:
    with gateway(store) as c:
        assert c.post("/v1/chat/completions", json=ask("bank", "hi")).status_code == 200
        entries = c.get("/v1/audit").json()["data"]
    assert len(entries) == 1 and store.audit("local")[0].reply == "Happy to help. Bye."


def test_cli_keys_are_shown_once_and_stored_hashed(tmp_path: Path) -> None:
    db = tmp_path / "keys.db"
    runner = CliRunner()
    made = runner.invoke(cli, ["keys", "add", "--tenant", "acme", "--db", str(db)])
    assert made.exit_code == 0, made.output
    key = made.stdout.strip().splitlines()[-1]
    assert key.startswith("chk_")
    listed = runner.invoke(cli, ["keys", "list", "--db", str(db)])
    assert "acme" in listed.output and key not in listed.output
    with sqlite3.connect(db) as raw:
        dumped = "\n".join(str(row) for row in raw.execute("SELECT * FROM api_keys"))
    assert key not in dumped and key.split("_")[1] in dumped
    key_id = key.split("_")[1]
    assert runner.invoke(cli, ["keys", "revoke", key_id, "--db", str(db)]).exit_code == 0
    again = runner.invoke(cli, ["keys", "revoke", key_id, "--db", str(db)])
    assert again.exit_code == 1
    bad = runner.invoke(cli, ["keys", "add", "--tenant", "no spaces", "--db", str(db)])
    assert bad.exit_code == 2 and "tenant" in bad.output


def test_two_tenants_naming_the_same_user_do_not_share_a_rate_limit(
    store: Store, keys: dict[str, str]
) -> None:
    data = BANK.model_dump(exclude_defaults=True)
    data["guards"]["rate_limit"] = {"requests_per_minute": 1}
    spec = CharterSpec.model_validate(data)
    charters = {"bank": Charter(spec, model=FakeModel(default="Happy to help. Bye."))}
    a, b = bearer(keys["alpha"]), bearer(keys["beta"])
    with TestClient(create_app(charters, store=store)) as c:
        first = c.post("/v1/chat/completions", json=ask("bank", "hi", user="alice"), headers=a)
        again = c.post("/v1/chat/completions", json=ask("bank", "hi", user="alice"), headers=a)
        other = c.post("/v1/chat/completions", json=ask("bank", "hi", user="alice"), headers=b)
    assert (first.status_code, again.status_code, other.status_code) == (200, 429, 200)
