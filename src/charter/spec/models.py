"""The charter file as pydantic models, one import for all of them.

Every model forbids unknown keys, so a typo in `charter.yaml` is an error that names the
field and the line (see `loader.py`) instead of a setting that is silently ignored. Each
section lives in its own module: `persona` (persona, constitution), `capabilities`
(policies, instructions, tools, knowledge), `guards`, `holding` (critique, drift, memory),
`backends` (models and routing) and `charter` (the whole file); `base` holds what they share.
"""

from __future__ import annotations

from charter.spec.backends import (
    BUILTIN_BACKENDS,
    BUILTIN_SPECS,
    BuiltinModelSpec,
    FakeModelSpec,
    LiteLLMModelSpec,
    LocalModelSpec,
    LoraAdapterSpec,
    Models,
    ModelSpec,
    ModelSpecBase,
    OpenAIModelSpec,
    Price,
    Routing,
    SteeringSpec,
)
from charter.spec.base import (
    NESTED,
    StrictModel,
)
from charter.spec.capabilities import (
    Instruction,
    Knowledge,
    OneOrMany,
    Policy,
    Tool,
    ToolCheckName,
    ToolLimits,
    When,
)
from charter.spec.charter import (
    CharterSpec,
    FailureMode,
    FailurePolicy,
    Gateway,
)
from charter.spec.guards import (
    DEFAULT_INPUT_GUARDS,
    DEFAULT_OUTPUT_GUARDS,
    AllowRule,
    Guards,
    Harm,
    Hazard,
    InputGuardName,
    OutputGuardName,
    RateLimit,
    SafetyModel,
)
from charter.spec.holding import (
    Critique,
    Drift,
    Memory,
)
from charter.spec.persona import (
    Escalation,
    Persona,
    Principle,
    ProgrammaticCheck,
    StyleRules,
)

__all__ = [
    "BUILTIN_BACKENDS",
    "BUILTIN_SPECS",
    "DEFAULT_INPUT_GUARDS",
    "DEFAULT_OUTPUT_GUARDS",
    "NESTED",
    "AllowRule",
    "BuiltinModelSpec",
    "CharterSpec",
    "Critique",
    "Drift",
    "Escalation",
    "FailureMode",
    "FailurePolicy",
    "FakeModelSpec",
    "Gateway",
    "Guards",
    "Harm",
    "Hazard",
    "InputGuardName",
    "Instruction",
    "Knowledge",
    "LiteLLMModelSpec",
    "LocalModelSpec",
    "LoraAdapterSpec",
    "Memory",
    "ModelSpec",
    "ModelSpecBase",
    "Models",
    "OneOrMany",
    "OpenAIModelSpec",
    "OutputGuardName",
    "Persona",
    "Policy",
    "Price",
    "Principle",
    "ProgrammaticCheck",
    "RateLimit",
    "Routing",
    "SafetyModel",
    "SteeringSpec",
    "StrictModel",
    "StyleRules",
    "Tool",
    "ToolCheckName",
    "ToolLimits",
    "When",
]
