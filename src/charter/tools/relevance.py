"""The relevance gate: which tools a message is offered, most relevant first.

A small model asked "call a tool or not" with a tool on the message's topic calls it, even
when the tool cannot do what is asked (BFCL's irrelevance questions). A tool far from the
message is better not offered at all: that also saves the model call. And a short, ordered
menu helps the small model pick the right tool.

Each tool gets a score in [0, 1]: a logistic regression over four features of the message
and the tool, fitted on BFCL's development half (`fit`; the numbers are in
`data/relevance_gate.json`, which records the split and the development figures):

- MiniLM cosine between the message and the tool's name and description;
- MiniLM cosine between the message and the tool's parameters (names and descriptions);
- how many of the message's words the tool's name, description and parameter names hold
  (`charter.tools.words`: "tolls" matches "toll");
- whether the message is mostly in a script other than Latin (MiniLM is English-only: a
  Chinese request scores near 0 against the right tool).

Tools at or above `tool_limits.min_relevance` are offered (by default the file's threshold,
chosen on the development half); -1 offers every tool and embeds nothing.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from typing import TYPE_CHECKING, Any

from charter.tools.words import Vocabulary, content_words, non_latin

if TYPE_CHECKING:
    from collections.abc import Sequence

    from charter.tools.registry import LoadedTool

GATE_FILE = "relevance_gate.json"
FEATURES = ("cosine_description", "cosine_parameters", "shared_words", "non_latin")


def tool_texts(tool: LoadedTool) -> tuple[str, str]:
    """(name and description, parameters) as embedded."""
    description = f"{tool.name.replace('_', ' ')}: {tool.spec.description}"
    properties = tool.spec.parameters.get("properties", {})
    parameters = "; ".join(
        f"{name.replace('_', ' ')}: {prop.get('description', '')}".strip(": ")
        for name, prop in (properties.items() if isinstance(properties, dict) else [])
        if isinstance(prop, dict)
    )
    return description, parameters or description


def features(message: str, tools: Sequence[LoadedTool]) -> list[list[float]]:
    """The gate's features (`FEATURES`) of `message` against each tool."""
    from charter.guards.embedder import shared_embedder

    texts = [tool_texts(t) for t in tools]
    vectors = shared_embedder().embed([message, *(text for pair in texts for text in pair)])
    asked = vectors[0]
    message_words = content_words(message)
    foreign = float(non_latin(message))
    rows = []
    for i, (tool, (description, _)) in enumerate(zip(tools, texts, strict=True)):
        properties = tool.spec.parameters.get("properties", {})
        tool_words = Vocabulary(f"{description} {' '.join(properties)}")
        rows.append(
            [
                float(vectors[1 + 2 * i] @ asked),
                float(vectors[2 + 2 * i] @ asked),
                float(tool_words.shared(message_words)),
                foreign,
            ]
        )
    return rows


@dataclass(frozen=True)
class Gate:
    """The relevance gate: a logistic regression over a tool's features for a message.

    `score` gives the probability that the tool fits the message (0-1).
    """

    coefficients: tuple[float, ...]
    intercept: float
    threshold: float
    """The default `min_relevance`."""

    def score(self, row: Sequence[float]) -> float:
        z = self.intercept + sum(c * x for c, x in zip(self.coefficients, row, strict=True))
        return 1.0 / (1.0 + math.exp(-z))


@lru_cache(maxsize=1)
def packaged_gate() -> Gate:
    """The gate Charter ships (data/relevance_gate.json), read once.

    Raises ValueError when it was fitted on other features or embeddings than this Charter makes.
    """
    from charter.guards.embedder import EMBEDDING_ID

    data: dict[str, Any] = json.loads(
        resources.files("charter.tools.data").joinpath(GATE_FILE).read_text()
    )
    if data["meta"]["embedding"] != EMBEDDING_ID or tuple(data["features"]) != FEATURES:
        raise ValueError(
            f"{GATE_FILE} was fitted on other features or embeddings than this Charter makes; "
            "refit it with python -m charter.eval.relevance_gate"
        )
    return Gate(tuple(data["coefficients"]), data["intercept"], data["threshold"])


def threshold(min_relevance: float | None) -> float:
    """The score a tool needs: `min_relevance`, or the gate's own threshold when None."""
    return packaged_gate().threshold if min_relevance is None else min_relevance


def relevance(
    message: str, tools: dict[str, LoadedTool], min_relevance: float | None = None
) -> dict[str, float]:
    """The gate's score of each tool for `message`.

    Every tool scores 1.0 without embedding anything when `min_relevance` is -1 (offer them all).
    """
    if min_relevance is not None and min_relevance <= -1:
        return dict.fromkeys(tools, 1.0)
    gate = packaged_gate()
    rows = features(message, list(tools.values()))
    return {name: gate.score(row) for name, row in zip(tools, rows, strict=True)}


def offer(
    tools: dict[str, LoadedTool], scores: dict[str, float], min_relevance: float | None = None
) -> dict[str, LoadedTool]:
    """The tools at or above the threshold, most relevant first.

    A small model picks the right tool more often from a short, ordered menu.
    """
    needed = threshold(min_relevance)
    ranked = sorted(scores.items(), key=lambda kv: -kv[1])
    return {name: tools[name] for name, score in ranked if score >= needed}


def gate(
    message: str, tools: dict[str, LoadedTool], min_relevance: float | None = None
) -> tuple[dict[str, float], dict[str, LoadedTool]]:
    """Each tool's score for `message`, and the tools offered (`offer`)."""
    scores = relevance(message, tools, min_relevance)
    return scores, offer(tools, scores, min_relevance)
