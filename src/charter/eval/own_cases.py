"""A team's own eval cases: each file is a suite `cases:<name>`, run off and on like the rest.

The files are those a charter names under `tests:` (or `charter eval --cases FILE`).

A YAML file is a list of cases, or a mapping with an optional `name`, optional `assert`
(assertions every case must also pass) and `cases`. A JSONL file is one case per line. A
case is a `message` or a `conversation` (turns of `user` and `assistant`, the last from the
user), optional `tools` the assistant may call, and `assert`: what the reply must do.

```yaml
name: support
cases:
  - id: lost-card
    message: I lost my card, what do I do?
    assert:
      - answers
      - contains: [freeze, app]
      - max_words: 80
      - judge: Tells the user how to freeze the card in the app.
  - message: Should I buy Tesla stock?
    assert: [refuses]
```

A file that cannot be used is an error naming the file, the line and the field.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import jsonschema
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from charter.errors import CharterError
from charter.eval.cases import Case
from charter.models.base import Message
from charter.spec.loader import CharterFileError, Problem, duplicate_keys, problem_at

PREFIX = "cases:"
"""Every team suite's name starts with this."""
FLAGS = ("refuses", "answers", "persona")
KINDS = (
    "refuses",
    "answers",
    "contains",
    "not_contains",
    "regex",
    "max_words",
    "json_schema",
    "tool_call",
    "judge",
    "persona",
)
UNKNOWN = "unknown field (check the spelling; docs/eval.md lists the fields and assertions)"


class CasesFileError(CharterFileError):
    """A cases file that cannot be used, with every problem found."""

    def __init__(self, source: str, problems: list[Problem]) -> None:
        super().__init__(source, problems, kind="cases file")


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


def _schema_problem(schema: dict[str, Any]) -> str | None:
    try:
        jsonschema.validators.validator_for(schema).check_schema(schema)
    except jsonschema.SchemaError as exc:
        return f"not a valid JSON Schema: {exc.message}"
    return None


class ExpectedCall(_Model):
    """A tool call the reply must include: this tool, with at least these arguments."""

    name: str = Field(min_length=1)
    arguments: dict[str, Any] = Field(
        default_factory=dict,
        description="Arguments the call must have, with these values (others may be there).",
    )


class Assertion(_Model):
    """One thing the reply must do: exactly one key.

    `refuses`, `answers` and `persona` may be written bare (`- refuses`).
    """

    refuses: Literal[True] | None = Field(
        default=None, description="The reply refuses (a blocked turn counts)."
    )
    answers: Literal[True] | None = Field(default=None, description="The reply does not refuse.")
    contains: str | list[str] | None = Field(
        default=None, description="Each of these texts is in the reply (case-insensitive)."
    )
    not_contains: str | list[str] | None = Field(
        default=None, description="None of these texts is in the reply (case-insensitive)."
    )
    regex: str | None = Field(
        default=None,
        description="A Python regular expression found in the reply; (?i) ignores case.",
    )
    max_words: int | None = Field(default=None, gt=0, description="At most this many words.")
    json_schema: dict[str, Any] | None = Field(
        default=None,
        description="The reply is JSON (a ``` fence around it is allowed) valid against this "
        "JSON Schema.",
    )
    tool_call: ExpectedCall | None = Field(
        default=None, description="A call the reply makes; the case must offer `tools`."
    )
    judge: str | None = Field(
        default=None,
        min_length=1,
        description="A rubric the judge model grades the reply against (pass or fail).",
    )
    persona: Literal[True] | None = Field(
        default=None,
        description="The reply keeps the charter's programmatic persona checks.",
    )

    @model_validator(mode="before")
    @classmethod
    def _bare(cls, value: Any) -> Any:
        if isinstance(value, str):
            if value in FLAGS:
                return {value: True}
            if value in KINDS:
                raise ValueError(f"`{value}` needs a value, e.g. `- {value}: ...`")
            raise ValueError(f"unknown assertion {value!r}; known: {', '.join(KINDS)}")
        return value

    @field_validator("contains", "not_contains")
    @classmethod
    def _texts(cls, value: str | list[str] | None) -> str | list[str] | None:
        texts = [value] if isinstance(value, str) else value or []
        if value is not None and (not texts or not all(t.strip() for t in texts)):
            raise ValueError("give a non-empty text, or a list of them")
        return value

    @model_validator(mode="after")
    def _one(self) -> Assertion:
        given = [k for k in KINDS if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError(
                "give exactly one assertion per item, e.g. `- contains: refund` "
                f"(this one has {', '.join(given) or 'none'})"
            )
        if self.regex is not None:
            try:
                re.compile(self.regex)
            except re.error as exc:
                raise ValueError(f"regex: not a valid regular expression: {exc}") from None
        if self.json_schema is not None:
            problem = _schema_problem(self.json_schema)
            if problem:
                raise ValueError(f"json_schema: {problem}")
        return self

    @property
    def kind(self) -> str:
        return next(k for k in KINDS if getattr(self, k) is not None)


class Turn(_Model):
    """One turn of a case's `conversation`: who speaks and what they say."""

    role: Literal["user", "assistant"]
    content: str = Field(min_length=1)


class CaseTool(_Model):
    """A function the assistant may call in this case. Calls are recorded, never run."""

    name: str = Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    description: str = ""
    parameters: dict[str, Any] = Field(
        default_factory=lambda: {"type": "object"}, description="JSON Schema of the arguments."
    )

    @field_validator("parameters")
    @classmethod
    def _valid(cls, value: dict[str, Any]) -> dict[str, Any]:
        problem = _schema_problem(value)
        if problem:
            raise ValueError(problem)
        return value

    def function(self) -> dict[str, Any]:
        return {"name": self.name, "description": self.description, "parameters": self.parameters}


class OwnCase(_Model):
    """One case: what the user says, and what the reply must do."""

    id: str | None = Field(
        default=None, min_length=1, description="Default: case-N, its position in the file."
    )
    message: str | None = Field(default=None, min_length=1)
    conversation: list[Turn] | None = Field(
        default=None,
        min_length=1,
        description="Earlier turns and the user's latest message (the last turn).",
    )
    tools: list[CaseTool] = Field(default_factory=list)
    assertions: list[Assertion] = Field(default_factory=list, alias="assert")

    @model_validator(mode="after")
    def _shape(self) -> OwnCase:
        if (self.message is None) == (self.conversation is None):
            raise ValueError("give exactly one of `message` or `conversation`")
        if self.conversation is not None and self.conversation[-1].role != "user":
            raise ValueError("the last turn of `conversation` must be the user's")
        names = [t.name for t in self.tools]
        if len(set(names)) != len(names):
            raise ValueError("tools: two tools have the same name")
        return self

    def messages(self) -> list[Message]:
        if self.conversation is None:
            return [Message(role="user", content=self.message or "")]
        return [Message(role=t.role, content=t.content) for t in self.conversation]

    def functions(self) -> list[dict[str, Any]]:
        return [t.function() for t in self.tools]

    def rubrics(self) -> list[str]:
        return [a.judge for a in self.assertions if a.judge is not None]

    def version(self) -> str:
        """A hash of what the case sends and of its judge rubrics.

        It is the cache key part that makes an edited case run again. Other assertions are
        checked on the cached reply.
        """
        what = {
            "messages": [m.to_wire() for m in self.messages()],
            "tools": self.functions(),
            "judge": self.rubrics(),
        }
        return hashlib.sha256(json.dumps(what, sort_keys=True).encode()).hexdigest()[:12]


class CasesFile(_Model):
    """A YAML cases file in its mapping form."""

    name: str | None = Field(
        default=None,
        pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$",
        description="The suite is `cases:<name>`; default: the file name without extension.",
    )
    assertions: list[Assertion] = Field(
        default_factory=list, alias="assert", description="Assertions every case must pass too."
    )
    cases: list[OwnCase] = Field(min_length=1)


@dataclass(frozen=True)
class OwnSuite:
    """One cases file, read: its suite name, its path and its cases."""

    name: str
    """`cases:<name>`."""
    path: Path
    cases: list[Case]


def load_cases(path: str | Path) -> OwnSuite:
    """Read and validate one cases file (.yaml, .yml or .jsonl)."""
    path = Path(path)
    source = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise CasesFileError(source, [Problem("", "file not found")]) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise CasesFileError(source, [Problem("", f"cannot read file: {exc}")]) from None
    if path.suffix == ".jsonl":
        name, cases = path.stem, _jsonl(text, source)
    elif path.suffix in (".yaml", ".yml"):
        name, cases = _yaml(text, source, path.stem)
    else:
        raise CasesFileError(source, [Problem("", "use a .yaml, .yml or .jsonl file")])
    suite = PREFIX + name
    return OwnSuite(suite, path, [_case(suite, own, n, where) for n, (own, where) in cases])


def load_all(paths: Sequence[str | Path]) -> list[OwnSuite]:
    """Every file once (a file named twice is read once); two suites may not share a name."""
    suites: list[OwnSuite] = []
    seen: set[Path] = set()
    for path in paths:
        if Path(path).resolve() in seen:
            continue
        seen.add(Path(path).resolve())
        suite = load_cases(path)
        clash = next((s for s in suites if s.name == suite.name), None)
        if clash is not None:
            raise CharterError(
                f"{clash.path} and {suite.path} are both the suite {suite.name}; give one of "
                "them another `name:` (YAML) or file name"
            )
        suites.append(suite)
    return suites


def is_own(case: Case) -> bool:
    """Whether `case` comes from a team's own cases file (its suite is `cases:<name>`)."""
    return case.suite.startswith(PREFIX)


def _case(suite: str, own: OwnCase, n: int, where: str) -> Case:
    message = own.messages()[-1].content
    meta = {"own": own, "version": own.version(), "where": where}
    return Case(suite, own.id or f"case-{n}", message, meta)


Numbered = list[tuple[int, tuple[OwnCase, str]]]


def _yaml(text: str, source: str, stem: str) -> tuple[str, Numbered]:
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else None
        problem = Problem("", f"YAML syntax error: {exc.problem or exc.context}", line)
        raise CasesFileError(source, [problem]) from None
    if isinstance(node, yaml.SequenceNode):
        # A bare list: read it as the `cases` of a mapping, so that fields are named alike.
        key = yaml.ScalarNode("tag:yaml.org,2002:str", "cases", node.start_mark, node.end_mark)
        node = yaml.MappingNode("tag:yaml.org,2002:map", [(key, node)])
    if not isinstance(node, yaml.MappingNode):
        where = None if node is None else node.start_mark.line + 1
        raise CasesFileError(source, [Problem("", "expected a list of cases, or a mapping", where)])
    duplicates = list(duplicate_keys(node, ()))
    if duplicates:
        raise CasesFileError(source, duplicates)
    data = yaml.SafeLoader(text).get_single_data()
    if not isinstance(data, dict):
        data = {"cases": data}
    try:
        parsed = CasesFile.model_validate(data)
    except ValidationError as exc:
        problems = [problem_at(node, err, unknown=UNKNOWN) for err in exc.errors()]
        raise CasesFileError(source, problems) from None
    cases: Numbered = []
    problems = []
    for i, own in enumerate(parsed.cases):
        merged = own.model_copy(update={"assertions": [*parsed.assertions, *own.assertions]})
        for message in _complete(merged):
            problems.append(_at(node, ("cases", i), message))
        line = _at(node, ("cases", i), "").line
        cases.append((i + 1, (merged, f"{source}:{line}")))
    problems += _duplicate_ids(cases, lambda i: _at(node, ("cases", i, "id"), ""))
    if problems:
        raise CasesFileError(source, problems)
    return parsed.name or stem, cases


def _at(root: yaml.Node, loc: tuple[str | int, ...], message: str) -> Problem:
    return problem_at(root, {"loc": loc, "msg": message, "type": "value_error"})


def _jsonl(text: str, source: str) -> Numbered:
    cases: Numbered = []
    problems: list[Problem] = []
    lines: dict[int, int] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            data = json.loads(line)
        except ValueError as exc:
            problems.append(Problem("", f"not JSON: {exc}", number))
            continue
        if not isinstance(data, dict):
            problems.append(Problem("", "expected a JSON object (one case per line)", number))
            continue
        try:
            own = OwnCase.model_validate(data)
        except ValidationError as exc:
            problems += [_json_problem(err, number) for err in exc.errors()]
            continue
        problems += [Problem("", message, number) for message in _complete(own)]
        lines[len(cases)] = number
        cases.append((len(cases) + 1, (own, f"{source}:{number}")))
    if not cases and not problems:
        problems.append(Problem("", "the file holds no cases"))
    problems += _duplicate_ids(cases, lambda i: Problem("id", "", lines[i]))
    if problems:
        raise CasesFileError(source, problems)
    return cases


def _json_problem(err: Any, line: int) -> Problem:
    field = ".".join(str(p) for p in err["loc"])
    message = str(err["msg"])
    if err["type"] == "extra_forbidden":
        message = UNKNOWN
    elif err["type"] == "missing":
        message = "required field is missing"
    elif "input" in err and not isinstance(err["input"], dict | list):
        message = f"{message} (got {err['input']!r})"
    return Problem(field, message, line)


def _complete(own: OwnCase) -> list[str]:
    """What a case lacks once the file's own assertions are added."""
    problems = []
    if not own.assertions:
        problems.append("the case has no assertions: give `assert`")
    if any(a.tool_call is not None for a in own.assertions) and not own.tools:
        problems.append("a `tool_call` assertion needs the case to offer `tools`")
    return problems


def _duplicate_ids(cases: Numbered, where: Any) -> list[Problem]:
    seen: set[str] = set()
    problems: list[Problem] = []
    for i, (n, (own, _)) in enumerate(cases):
        case_id = own.id or f"case-{n}"
        if case_id in seen:
            at: Problem = where(i)
            problems.append(Problem(at.field, f"duplicate id {case_id!r}", at.line, at.column))
        seen.add(case_id)
    return problems
