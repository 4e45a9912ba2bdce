"""Optional OpenTelemetry traces of gateway turns.

When `opentelemetry-api` is installed (`pip install charter[otel]`), each turn is a span
`charter.turn` with the charter, the tenant, the verdict, tokens and cost as attributes,
and one event per pipeline stage (verdict, own milliseconds, tokens, reason). Exporting is
configured the standard OpenTelemetry way (an SDK `TracerProvider` with an exporter, or
`opentelemetry-instrument`); without one, the API's no-op tracer costs next to nothing.
Without the package, nothing is traced.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from charter.assistant import Reply


class TurnSpan:
    """A turn's OpenTelemetry span; with `span` None (no package), `record` does nothing.

    `record` sets the reply's verdict, tokens and cost as attributes and adds one event per stage.
    """

    def __init__(self, span: Any) -> None:
        self.span = span

    def record(self, reply: Reply) -> None:
        if self.span is None:
            return
        self.span.set_attribute("charter.blocked", reply.blocked)
        self.span.set_attribute("charter.prompt_tokens", reply.usage.prompt_tokens)
        self.span.set_attribute("charter.completion_tokens", reply.usage.completion_tokens)
        if reply.cost is not None:
            self.span.set_attribute("charter.cost", reply.cost)
        if reply.block_reason:
            self.span.set_attribute("charter.block_reason", reply.block_reason)
        for record in reply.trace.records:
            attributes: dict[str, Any] = {
                "verdict": record.verdict,
                "ms": round(record.ms, 3),
                "prompt_tokens": record.prompt_tokens,
                "completion_tokens": record.completion_tokens,
            }
            if record.reason:
                attributes["reason"] = record.reason
            if record.error:
                attributes["error"] = record.error
            self.span.add_event(f"stage.{record.stage}", attributes)


@contextmanager
def turn_span(charter_id: str, tenant: str, *, stream: bool) -> Iterator[TurnSpan]:
    """A `charter.turn` span around the block, with the charter id, tenant and stream as attributes.

    Without `opentelemetry-api` the span records nothing.
    """
    try:
        from opentelemetry import trace
    except ImportError:
        yield TurnSpan(None)
        return
    tracer = trace.get_tracer("charter.gateway")
    with tracer.start_as_current_span("charter.turn") as span:
        span.set_attribute("charter.id", charter_id)
        span.set_attribute("charter.tenant", tenant)
        span.set_attribute("charter.stream", stream)
        yield TurnSpan(span)
