"""Charter: the last-mile layer for LLM products, from one charter file."""

from charter.assistant import Charter, Reply
from charter.compose import Insert
from charter.conversation import Conversation, ConversationNotFoundError
from charter.errors import (
    CharterError,
    ModelError,
    ModelNotAvailableError,
    StoreError,
    WeightsIntegrityError,
)
from charter.models import ChatModel, ChatRequest, Completion, FakeModel, Message, build_model
from charter.pipeline import Pipeline, Stage, StageRecord, Trace, TurnState
from charter.spec import CharterFileError, CharterSpec, load_charter, parse_charter
from charter.store import Store
from charter.turn import Carry, TurnOutcome, TurnRequest

__version__ = "0.1.0.dev0"

__all__ = [
    "Carry",
    "Charter",
    "CharterError",
    "CharterFileError",
    "CharterSpec",
    "ChatModel",
    "ChatRequest",
    "Completion",
    "Conversation",
    "ConversationNotFoundError",
    "FakeModel",
    "Insert",
    "Message",
    "ModelError",
    "ModelNotAvailableError",
    "Pipeline",
    "Reply",
    "Stage",
    "StageRecord",
    "Store",
    "StoreError",
    "Trace",
    "TurnOutcome",
    "TurnRequest",
    "TurnState",
    "WeightsIntegrityError",
    "__version__",
    "build_model",
    "load_charter",
    "parse_charter",
]
