"""Pipeline stages, one module each."""

from charter.stages.critique import CritiqueStage
from charter.stages.drift import DriftStage
from charter.stages.escalate import EscalationStage
from charter.stages.generate import GenerateStage
from charter.stages.input_guard import InputGuardStage
from charter.stages.instructions import InstructionsStage
from charter.stages.output_guard import OutputGuardStage
from charter.stages.persona import PersonaStage
from charter.stages.rate_limit import RateLimitStage
from charter.stages.retrieve import RetrieveStage
from charter.stages.route import RouteStage
from charter.stages.tools import ToolsStage

__all__ = [
    "CritiqueStage",
    "DriftStage",
    "EscalationStage",
    "GenerateStage",
    "InputGuardStage",
    "InstructionsStage",
    "OutputGuardStage",
    "PersonaStage",
    "RateLimitStage",
    "RetrieveStage",
    "RouteStage",
    "ToolsStage",
]
