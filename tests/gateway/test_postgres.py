"""The gateway's records on a real PostgreSQL: the same behaviour as on SQLite."""

from __future__ import annotations

import uuid

import psycopg
from fastapi.testclient import TestClient

from charter import Charter, FakeModel
from charter.gateway import create_app
from charter.gateway.auth import new_key
from charter.store.postgres import PostgresStore, open_records
from tests.gateway.test_tenants import BANK, ask, bearer


def fresh(url: str) -> str:
    """A new database on the test cluster, so tests do not see each other's rows."""
    name = f"t{uuid.uuid4().hex[:10]}"
    with psycopg.connect(url, autocommit=True) as db:
        db.execute(f"CREATE DATABASE {name}")
    return url.rsplit("/", 1)[0] + f"/{name}"


def test_keys_audit_and_escalations_per_tenant_on_postgres(postgres_url: str) -> None:
    url = fresh(postgres_url)
    store = open_records(url)
    assert isinstance(store, PostgresStore)
    _, alpha = new_key(store, "alpha", ["*"])
    _, beta = new_key(store, "beta", ["bank"])
    charter = Charter(BANK, model=FakeModel(default="Happy to help."))
    with TestClient(create_app({"bank": charter}, store=store)) as c:
        assert c.post("/v1/chat/completions", json=ask("bank", "hi")).status_code == 401
        c.post("/v1/chat/completions", json=ask("bank", "alpha one"), headers=bearer(alpha))
        c.post("/v1/chat/completions", json=ask("bank", "talk to a person"), headers=bearer(alpha))
        c.post("/v1/chat/completions", json=ask("bank", "beta one"), headers=bearer(beta))
        mine = c.get("/v1/audit", headers=bearer(alpha)).json()["data"]
        theirs = c.get("/v1/audit", headers=bearer(beta)).json()["data"]
        queue = c.get("/v1/escalations", headers=bearer(beta)).json()["data"]
    assert [e["messages"][-1]["content"] for e in mine] == ["talk to a person", "alpha one"]
    assert [e["messages"][-1]["content"] for e in theirs] == ["beta one"]
    assert queue == [] and len(store.escalations("open", tenant="alpha")) == 1
    assert store.audit_count() == 3
    store.close()
    # A second connection (another replica) sees the same records and keys.
    other = PostgresStore(url)
    assert other.audit_count("alpha") == 2 and other.has_api_keys()
    other.close()
