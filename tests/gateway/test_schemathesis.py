"""Property-based requests from the published OpenAPI schema: no input makes a server error."""

from __future__ import annotations

import schemathesis
from hypothesis import HealthCheck, settings

from charter import Charter, FakeModel
from charter.gateway import create_app
from charter.store.sqlite import Store
from tests.gateway.test_tenants import BANK


def _app():  # type: ignore[no-untyped-def]
    import tempfile
    from pathlib import Path

    folder = Path(tempfile.mkdtemp(prefix="charter-schemathesis-"))
    charter = Charter(BANK, model=FakeModel(default="Happy to help."))
    return create_app({"bank": charter}, store=Store(folder / "s.db"), load=False)


schema = schemathesis.openapi.from_asgi("/openapi.json", _app())


@schema.parametrize()
@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=list(HealthCheck),
)
def test_no_request_the_schema_allows_gives_a_server_error(case: schemathesis.Case) -> None:
    response = case.call()
    assert response.status_code < 500, (case.method, case.path, case.body, response.text)
