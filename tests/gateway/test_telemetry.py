"""OpenTelemetry: one span per gateway turn, with the verdict and one event per stage."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from charter import Charter, FakeModel
from charter.gateway import create_app
from charter.store.sqlite import Store
from tests.gateway.test_tenants import BANK, ask

EXPORTER = InMemorySpanExporter()


@pytest.fixture(scope="module", autouse=True)
def provider() -> Iterator[None]:
    # The global provider can be set once per process: this module owns it.
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(EXPORTER))
    trace.set_tracer_provider(tracer_provider)
    yield
    tracer_provider.shutdown()


def test_each_turn_is_a_span_with_its_stages(tmp_path: Path) -> None:
    EXPORTER.clear()
    charter = Charter(BANK, model=FakeModel(default="We open at 9. See you."))
    app = create_app({"bank": charter}, store=Store(tmp_path / "t.db"))
    with TestClient(app) as c:
        c.post("/v1/chat/completions", json=ask("bank", "hours?"))
        streamed = c.post("/v1/chat/completions", json=ask("bank", "and Sunday?", stream=True))
        assert "[DONE]" in streamed.text
    spans = [s for s in EXPORTER.get_finished_spans() if s.name == "charter.turn"]
    assert len(spans) == 2
    plain, stream = spans
    assert plain.attributes is not None and stream.attributes is not None
    assert plain.attributes["charter.id"] == "bank"
    assert plain.attributes["charter.tenant"] == "local"
    assert plain.attributes["charter.blocked"] is False
    assert stream.attributes["charter.stream"] is True
    events = [e.name for e in plain.events]
    # The gateway's record (what the request asked, what its history gave) comes first.
    assert events[:2] == ["stage.gateway", "stage.persona"] and events[-1] == "stage.generate"
    assert plain.end_time is not None and plain.start_time is not None
    assert plain.end_time > plain.start_time
