"""Prometheus metrics of one gateway app (its own registry: no process-global state)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest

from charter.assistant import Reply


class GatewayMetrics:
    """The gateway's Prometheus metrics, in a registry of their own.

    Turns, turn seconds, guard verdicts, tokens and rejected requests; `render` gives them in the
    text exposition format.
    """

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.turns = Counter(
            "charter_turns",
            "Turns answered, by charter, path and outcome.",
            ["charter", "stream", "blocked"],
            registry=self.registry,
        )
        self.seconds = Histogram(
            "charter_turn_seconds",
            "Wall time of a turn (whole pipeline).",
            ["charter"],
            buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60),
            registry=self.registry,
        )
        self.guards = Counter(
            "charter_guard_verdicts",
            "Guard verdicts, by side, guard and action.",
            ["charter", "side", "guard", "action"],
            registry=self.registry,
        )
        self.tokens = Counter(
            "charter_tokens",
            "Model tokens, by kind.",
            ["charter", "kind"],
            registry=self.registry,
        )
        self.rejected = Counter(
            "charter_requests_rejected",
            "Requests answered with a 4xx, by status.",
            ["status"],
            registry=self.registry,
        )

    def observe(self, charter: str, reply: Reply, *, stream: bool, guards: list[str]) -> None:
        self.turns.labels(charter, str(stream).lower(), str(reply.blocked).lower()).inc()
        self.seconds.labels(charter).observe(reply.ms / 1000)
        for item in guards:
            side, rest = item.split(":", 1)
            guard, action = rest.split("=", 1)
            self.guards.labels(charter, side, guard, action).inc()
        self.tokens.labels(charter, "prompt").inc(reply.usage.prompt_tokens)
        self.tokens.labels(charter, "completion").inc(reply.usage.completion_tokens)

    def render(self) -> bytes:
        return generate_latest(self.registry)
