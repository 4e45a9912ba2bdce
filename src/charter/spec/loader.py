"""Load a charter from YAML, with errors that name the field, the line and what was expected.

PyYAML's node tree keeps a source position for every key and value; pydantic's errors carry
the location of the offending field as a path. Walking that path through the node tree gives
the line. Duplicate keys, which YAML parsers usually accept silently (last one wins), are
reported too: in a charter they are almost always a mistake.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from charter.errors import CharterError
from charter.spec.models import BUILTIN_BACKENDS, NESTED, CharterSpec


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a charter file."""

    field: str
    message: str
    line: int | None = None  # 1-based
    column: int | None = None  # 1-based

    def render(self, source: str) -> str:
        where = source if self.line is None else f"{source}:{self.line}"
        field = f" {self.field}:" if self.field else ""
        return f"{where}:{field} {self.message}"


class CharterFileError(CharterError):
    """A charter file (or a file it names, `kind`) that cannot be used, with every problem found."""

    def __init__(self, source: str, problems: list[Problem], *, kind: str = "charter") -> None:
        self.source = source
        self.problems = problems
        lines = "\n".join("  " + p.render(source) for p in problems)
        count = f"{len(problems)} problem{'s' if len(problems) != 1 else ''}"
        super().__init__(f"invalid {kind} {source} ({count}):\n{lines}")


def load_charter(path: str | Path) -> CharterSpec:
    """Read and validate a charter file."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise CharterFileError(str(path), [Problem("", "file not found")]) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise CharterFileError(str(path), [Problem("", f"cannot read file: {exc}")]) from None
    spec = parse_charter(text, source=str(path))
    if spec.knowledge is not None:
        # Knowledge paths are relative to the charter file, wherever it is run from.
        paths = [str((path.parent / p).resolve()) for p in spec.knowledge.paths]
        knowledge = spec.knowledge.model_copy(update={"paths": paths})
        spec = spec.model_copy(update={"knowledge": knowledge})
    if spec.tools:
        # 'file.py:function' implementations live next to the charter file.
        tools = [
            t.model_copy(update={"implementation": str((path.parent / t.implementation).resolve())})
            if t.implementation.split(":", 1)[0].endswith(".py")
            and not Path(t.implementation.split(":", 1)[0]).is_absolute()
            else t
            for t in spec.tools
        ]
        spec = spec.model_copy(update={"tools": tools})
    if spec.tests:
        # Cases files, like knowledge, live next to the charter file.
        spec = spec.model_copy(update={"tests": [str(path.parent / p) for p in spec.tests]})
    return spec


def parse_charter(text: str, *, source: str = "<charter>") -> CharterSpec:
    """Validate charter YAML given as text."""
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        message = f"YAML syntax error: {exc.problem or exc.context}"
        line = mark.line + 1 if mark else None
        column = mark.column + 1 if mark else None
        raise CharterFileError(source, [Problem("", message, line, column)]) from None
    if node is None:
        raise CharterFileError(source, [Problem("", "the file is empty; expected a mapping")])
    if not isinstance(node, yaml.MappingNode):
        raise CharterFileError(
            source, [Problem("", "expected a mapping at the top level", node.start_mark.line + 1)]
        )
    duplicates = list(duplicate_keys(node, ()))
    if duplicates:
        raise CharterFileError(source, duplicates)
    data = yaml.SafeLoader(text).get_single_data()
    try:
        return CharterSpec.model_validate(data)
    except ValidationError as exc:
        raise CharterFileError(source, problems_at(node, exc.errors())) from None


UNKNOWN_FIELD = "unknown field (check the spelling; see `charter schema`)"


def problems_at(root: yaml.Node, errors: Any, *, unknown: str = UNKNOWN_FIELD) -> list[Problem]:
    """Each pydantic error as a Problem (`problem_at`).

    An error about a part another package registers (its options, its model spec) gives one Problem
    per error of that part, each at its own line.
    """
    problems: list[Problem] = []
    for err in errors:
        if err["type"] == NESTED:
            for inner in err["ctx"]["errors"]:
                located = {**inner, "loc": (*err["loc"], *inner["loc"])}
                problems.append(problem_at(root, located, unknown=unknown))
        else:
            problems.append(problem_at(root, err, unknown=unknown))
    return problems


def problem_at(root: yaml.Node, err: Any, *, unknown: str = UNKNOWN_FIELD) -> Problem:
    """One pydantic error as a Problem with the line of the value (or key) it is about.

    `unknown` is what an unknown key is called.
    """
    loc: tuple[str | int, ...] = tuple(err["loc"])
    node, path = _locate(root, loc)
    message = str(err["msg"])
    if err["type"] == "extra_forbidden":
        message = unknown
        key_node = _key_node(root, path)
        if key_node is not None:
            node = key_node
    elif err["type"] == "missing":
        message = "required field is missing"
    elif (
        "input" in err
        and err["type"] not in ("missing",)
        and not isinstance(err["input"], dict | list)
    ):
        message = f"{message} (got {err['input']!r})"
    mark = node.start_mark
    return Problem(".".join(str(p) for p in path), message, mark.line + 1, mark.column + 1)


def _locate(root: yaml.Node, loc: tuple[str | int, ...]) -> tuple[yaml.Node, list[str | int]]:
    """Follow a pydantic error location through the node tree as far as it goes.

    Location items that are not keys of the current mapping (such as the tag pydantic adds
    for a discriminated union) are skipped; for a missing field the walk stops at the
    mapping that should have held it.
    """
    node = root
    path: list[str | int] = []
    for part in loc:
        if isinstance(node, yaml.MappingNode):
            value = next(
                (v for k, v in node.value if isinstance(k, yaml.ScalarNode) and k.value == part),
                None,
            )
            if value is None:
                if isinstance(part, str) and part not in _UNION_TAGS:
                    path.append(part)
                continue
            node = value
            path.append(part)
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int):
            if part < len(node.value):
                node = node.value[part]
            path.append(part)
        else:
            continue
    return node, path


# Tags pydantic inserts in the locations of discriminated-union members (the `backend` of a
# model spec); they are not keys in the file.
_UNION_TAGS = set(BUILTIN_BACKENDS)


def _key_node(root: yaml.Node, path: list[str | int]) -> yaml.Node | None:
    """The node of the last key in `path` (for pointing at an unknown key itself)."""
    if not path:
        return None
    parent, _ = _locate(root, tuple(path[:-1]))
    if isinstance(parent, yaml.MappingNode):
        for key, _value in parent.value:
            if isinstance(key, yaml.ScalarNode) and key.value == path[-1]:
                return key
    return None


def duplicate_keys(node: yaml.Node, path: tuple[str | int, ...]) -> Any:
    """Problems for keys given twice in one mapping, anywhere under `node`."""
    if isinstance(node, yaml.MappingNode):
        seen: set[str] = set()
        for key, value in node.value:
            name = key.value if isinstance(key, yaml.ScalarNode) else str(key)
            if name in seen:
                field = ".".join(str(p) for p in (*path, name))
                yield Problem(
                    field,
                    "duplicate key (YAML would silently keep only the last one)",
                    key.start_mark.line + 1,
                    key.start_mark.column + 1,
                )
            seen.add(name)
            yield from duplicate_keys(value, (*path, name))
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            yield from duplicate_keys(item, (*path, index))
