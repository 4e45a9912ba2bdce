"""The charter file: pydantic models, YAML loading with line-numbered errors, JSON Schema."""

from charter.spec.loader import CharterFileError, Problem, load_charter, parse_charter
from charter.spec.models import (
    CharterSpec,
    FailurePolicy,
    FakeModelSpec,
    LiteLLMModelSpec,
    LocalModelSpec,
    ModelSpec,
    OpenAIModelSpec,
    Persona,
    Principle,
)
from charter.spec.schema import charter_json_schema, charter_json_schema_text

__all__ = [
    "CharterFileError",
    "CharterSpec",
    "FailurePolicy",
    "FakeModelSpec",
    "LiteLLMModelSpec",
    "LocalModelSpec",
    "ModelSpec",
    "OpenAIModelSpec",
    "Persona",
    "Principle",
    "Problem",
    "charter_json_schema",
    "charter_json_schema_text",
    "load_charter",
    "parse_charter",
]
