"""Persona and constitution, compiled into the system prompt."""

from charter.persona.compile import CompiledPrompt, compile_system_prompt, make_canary

__all__ = ["CompiledPrompt", "compile_system_prompt", "make_canary"]
