"""Tools declared in the charter, made callable: validated arguments in, JSON-able result out.

An implementation is `pkg.module:function`, `/abs/path/file.py:function` (the loader makes
`file.py` paths absolute, relative to the charter file), or an http(s) URL that receives
the arguments as a JSON POST and answers JSON. Arguments are validated against the tool's
JSON Schema before anything runs; a schema that is not itself valid is a charter error.
"""

from __future__ import annotations

import importlib
import importlib.util
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import jsonschema

from charter.errors import CharterError
from charter.spec.models import Tool


class ToolError(CharterError):
    """A tool could not be loaded, or a call failed (the message is fed back to the model)."""


class InvalidArguments(ToolError):
    """A call's arguments are not a JSON object or do not match the tool's JSON Schema."""


@dataclass(frozen=True)
class LoadedTool:
    """A tool ready to call: its spec, the function that runs it, and its arguments' validator.

    `validate` raises InvalidArguments naming the first problem; `call` raises ToolError when the
    function fails or returns something that is not JSON.
    """

    spec: Tool
    function: Callable[[dict[str, Any]], Any]
    validator: jsonschema.protocols.Validator

    @property
    def name(self) -> str:
        return self.spec.name

    def validate(self, arguments: Any) -> dict[str, Any]:
        if not isinstance(arguments, dict):
            raise InvalidArguments(
                f"arguments must be a JSON object, got {type(arguments).__name__}"
            )
        errors = sorted(self.validator.iter_errors(arguments), key=lambda e: list(e.path))
        if errors:
            first = errors[0]
            where = ".".join(str(p) for p in first.path) or "arguments"
            raise InvalidArguments(f"{where}: {first.message}")
        return arguments

    def call(self, arguments: dict[str, Any]) -> Any:
        try:
            result = self.function(arguments)
        except ToolError:
            raise
        except Exception as exc:
            raise ToolError(f"{self.name} failed: {type(exc).__name__}: {exc}") from exc
        try:
            json.dumps(result)
        except (TypeError, ValueError) as exc:
            raise ToolError(f"{self.name} returned something that is not JSON: {exc}") from None
        return result


def _python(target: str) -> Callable[..., Any]:
    module_part, _, attr = target.rpartition(":")
    if not module_part or not attr:
        raise ToolError(f"implementation {target!r}: expected 'module:function'")
    if module_part.endswith(".py"):
        path = Path(module_part)
        spec = importlib.util.spec_from_file_location(f"charter_tool_{path.stem}", path)
        if spec is None or spec.loader is None or not path.exists():
            raise ToolError(f"implementation {target!r}: no such file {path}")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    else:
        try:
            module = importlib.import_module(module_part)
        except ImportError as exc:
            raise ToolError(f"implementation {target!r}: {exc}") from None
    function: Callable[..., Any] | None = getattr(module, attr, None)
    if function is None or not callable(function):
        raise ToolError(f"implementation {target!r}: {attr!r} is not a function of the module")
    return function


def _http(url: str, timeout_s: float) -> Callable[[dict[str, Any]], Any]:
    def call(arguments: dict[str, Any]) -> Any:
        try:
            response = httpx.post(url, json=arguments, timeout=timeout_s)
        except httpx.HTTPError as exc:
            raise ToolError(f"{url}: {type(exc).__name__}: {exc}") from None
        if response.status_code >= 400:
            raise ToolError(f"{url}: HTTP {response.status_code}: {response.text[:200]}")
        try:
            return response.json()
        except ValueError:
            raise ToolError(f"{url}: the answer is not JSON: {response.text[:200]}") from None

    return call


def _validator(parameters: dict[str, Any], where: str) -> jsonschema.protocols.Validator:
    """The validator for a tool's `parameters`.

    A schema that is not valid JSON Schema is a ToolError naming `where` it came from.
    """
    try:
        validator_class = jsonschema.validators.validator_for(parameters)
        validator_class.check_schema(parameters)
    except jsonschema.SchemaError as exc:
        raise ToolError(f"{where} is not a valid JSON Schema: {exc.message}") from None
    return validator_class(parameters)


def load_tool(tool: Tool) -> LoadedTool:
    """The charter's tool, ready to call: its Python function, or its http(s) URL.

    A Python function is called with the arguments as keywords; a URL receives them as a JSON POST.
    Raises ToolError when the implementation cannot be found or `parameters` is not valid JSON
    Schema.
    """
    validator = _validator(tool.parameters, f"tools.{tool.name}.parameters")
    if tool.implementation.startswith(("http://", "https://")):
        function = _http(tool.implementation, tool.timeout_s)
    else:
        python = _python(tool.implementation)

        def function(arguments: dict[str, Any]) -> Any:
            return python(**arguments)

    return LoadedTool(tool, function, validator)


def _not_here(arguments: dict[str, Any]) -> Any:
    raise ToolError("this tool runs on the caller's side, not in Charter")


def client_tools(
    functions: list[dict[str, Any]],
    run: Callable[[dict[str, Any]], Any] = _not_here,
) -> dict[str, LoadedTool]:
    """Functions offered from outside the charter, as tools Charter can decide on and validate.

    The functions are {"name", "description", "parameters"}: a gateway caller's `tools`, BFCL's
    functions. By default they never run here; `run` stands in for them (BFCL records the call). A
    schema that is not valid JSON Schema is a ToolError.
    """
    tools: dict[str, LoadedTool] = {}
    for function in functions:
        spec = Tool(
            name=function["name"],
            description=function.get("description") or function["name"],
            parameters=function.get("parameters") or {"type": "object"},
            implementation="client:",
        )
        validator = _validator(spec.parameters, f"tool {spec.name}: parameters")
        tools[spec.name] = LoadedTool(spec, run, validator)
    return tools


def load_tools(tools: list[Tool]) -> dict[str, LoadedTool]:
    """The charter's tools, loaded (`load_tool`), by name."""
    return {t.name: load_tool(t) for t in tools}
