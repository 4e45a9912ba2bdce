"""Pipeline stages, one module each."""

from charter.stages.generate import GenerateStage
from charter.stages.persona import PersonaStage

__all__ = ["GenerateStage", "PersonaStage"]
