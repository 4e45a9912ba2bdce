"""Model backends behind one protocol: local GGUF, OpenAI-compatible HTTP, and a fake."""

from charter.models.base import (
    ChatModel,
    ChatRequest,
    Completion,
    Message,
    Sampling,
    StreamEvent,
    TextDelta,
    Usage,
    collect,
)
from charter.models.factory import build_model
from charter.models.fake import FakeModel

__all__ = [
    "ChatModel",
    "ChatRequest",
    "Completion",
    "FakeModel",
    "Message",
    "Sampling",
    "StreamEvent",
    "TextDelta",
    "Usage",
    "build_model",
    "collect",
]
