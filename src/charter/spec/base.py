"""What every part of the charter file is built on.

`StrictModel` (unknown keys are errors, values frozen), the id rule, and the validation of
parts that installed packages register (guards, checks, backends: `charter.plugins`), whose
own errors are carried below their place so that the loader names each field and line.
"""

from __future__ import annotations

import re
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, ValidationError
from pydantic_core import PydanticCustomError

from charter import plugins

_ID = re.compile(r"^[a-z0-9][a-z0-9_.-]*$")


class StrictModel(BaseModel):
    """The base of every charter-file model: unknown keys are errors, and values are frozen."""

    model_config = ConfigDict(extra="forbid", frozen=True)


def check_id(value: str) -> str:
    """`value`, if it is a valid id (lowercase, digits, '-', '_', '.')."""
    if not _ID.match(value):
        raise ValueError("use lowercase letters, digits, '-', '_' or '.', starting alphanumeric")
    return value


# --- parts that installed packages register (charter.plugins) ------------------------------

NESTED = "nested"
"""The type of a validation error about a part a package registers (its options, its model
spec) that carries that part's own errors in `ctx["errors"]`, each located below the error's
own place, so that the loader can give each its own field and line."""


def _inner(loc: tuple[str | int, ...], msg: str, kind: str = "value_error") -> dict[str, Any]:
    return {"loc": loc, "msg": msg, "type": kind}


def inner_errors(exc: ValidationError, at: tuple[str | int, ...]) -> list[dict[str, Any]]:
    """`exc`'s errors located below `at`."""
    out: list[dict[str, Any]] = []
    for error in exc.errors(include_url=False):
        item = _inner((*at, *error["loc"]), error["msg"], error["type"])
        value = error.get("input")
        if value is None or isinstance(value, str | int | float | bool):
            item["input"] = value
        out.append(item)
    return out


def nested_error(what: str, errors: list[dict[str, Any]]) -> PydanticCustomError:
    """A validation error about `what` that carries `errors`, each with its own place."""
    text = "; ".join(
        f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" if e["loc"] else e["msg"]
        for e in errors
    )
    return PydanticCustomError(
        NESTED, "{what}: {text}", {"what": what, "text": text, "errors": errors}
    )


_F = TypeVar("_F")


def registered(registry: plugins.Registry[_F], name: str) -> _F:
    """The factory registered as `name`, or a validation error saying why there is none."""
    try:
        return registry.get(name)
    except plugins.PluginError as exc:
        raise PydanticCustomError("plugin", "{reason}", {"reason": str(exc)}) from None


def option_problems(
    registry: plugins.Registry[Any], settings: dict[str, Any], *, optional: bool
) -> list[dict[str, Any]]:
    """The problems of `settings` ({part name: its setting}), as errors located below each name.

    Names that are not registered, and settings that do not validate as their factory's `options`
    (which, when not `optional`, may be None: the part then takes no setting).
    """
    problems: list[dict[str, Any]] = []
    for name, value in settings.items():
        try:
            factory = registry.get(name)
        except plugins.PluginError as exc:
            problems.append(_inner((name,), str(exc)))
            continue
        if factory.options is None and not optional:
            problems.append(_inner((name,), f"the {name} {registry.kind} takes no options"))
            continue
        try:
            plugins.options_of(factory.options, value)
        except ValidationError as exc:
            problems += inner_errors(exc, (name,))
    return problems
