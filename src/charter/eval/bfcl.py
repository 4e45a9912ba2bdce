"""BFCL (Berkeley Function Calling Leaderboard) cases, both ways of calling, and AST checking.

Categories: `simple_python`, `multiple` (pick one function among several), `parallel`
(several calls in one answer), `live_simple` (user-contributed), and `irrelevance` (no
function fits: the right answer is no call). Each case is the user's question, the
functions offered (BFCL's JSON-Schema dialect) and, except for `irrelevance`, the accepted
values of each argument (`possible_answer/`).

- **raw**: the model is shown the functions and asked, as in BFCL's prompting mode, to answer
  with a Python-style list of calls `[f(a=1), g(b="x")]`, or to say that none fits; the
  answer is parsed leniently (a JSON list of {"name", "arguments"} objects also counts).
- **charter**: the same functions go through Charter's tool layer as the tools stage uses it
  (`charter.tools.service.ToolUse` with `RunHere`): relevance gate, schema-forced
  decisions, the argument checks, validation with retries, loop stop. Calls are recorded,
  not executed (each returns `{"status": "done"}`).

Checking follows BFCL's AST rules: the function name must match; required arguments must be
present; no argument outside the accepted ones; each value must be one of the accepted values
(strings compared without case, spaces and `,./-_*^`; an integer is accepted for a float; ""
among the accepted values marks an optional argument); parallel calls match in any order.

Split: rows with an even index are the development half (what the tool layer was tried on
while it was built), odd rows are the test half that reports use.
"""

from __future__ import annotations

import ast
import json
import re
from dataclasses import dataclass
from itertools import permutations
from typing import TYPE_CHECKING, Any

from charter.datasets.locate import dataset_path
from charter.models.base import ChatRequest, Message
from charter.spec.models import ToolLimits
from charter.tools.executors import RunHere
from charter.tools.registry import LoadedTool, client_tools
from charter.tools.service import ToolUse

if TYPE_CHECKING:
    from charter.models.base import ChatModel, Usage

CATEGORIES = ("simple_python", "multiple", "parallel", "irrelevance", "live_simple")
Call = dict[str, Any]
"""{"name": str, "arguments": dict}"""


@dataclass(frozen=True)
class BfclCase:
    """One BFCL question: its messages, the functions offered and the accepted calls."""

    category: str
    id: str
    index: int
    messages: tuple[Message, ...]
    functions: tuple[dict[str, Any], ...]
    answers: tuple[dict[str, dict[str, list[Any]]], ...] | None
    """One {function name: {argument: accepted values}} per expected call; None: no call."""

    @property
    def question(self) -> str:
        return next(m.content for m in reversed(self.messages) if m.role == "user")


def load(category: str) -> list[BfclCase]:
    """The cases of a BFCL category, in row order; an unknown category is a ValueError."""
    if category not in CATEGORIES:
        raise ValueError(f"unknown BFCL category {category!r}; known: {', '.join(CATEGORIES)}")
    rows = _jsonl(f"BFCL_v4_{category}.json")
    answers: dict[str, Any] = {}
    if category != "irrelevance":
        expected = _jsonl("possible_answer", f"BFCL_v4_{category}.json")
        answers = {r["id"]: r["ground_truth"] for r in expected}
    cases = []
    for index, row in enumerate(rows):
        turn = row["question"][0]
        cases.append(
            BfclCase(
                category=category,
                id=row["id"],
                index=index,
                messages=tuple(Message(role=m["role"], content=m["content"]) for m in turn),
                functions=tuple(row["function"]),
                answers=tuple(answers[row["id"]]) if category != "irrelevance" else None,
            )
        )
    return cases


def _jsonl(*parts: str) -> list[dict[str, Any]]:
    text = dataset_path("bfcl", *parts).read_text(encoding="utf-8")
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def split(cases: list[BfclCase]) -> tuple[list[BfclCase], list[BfclCase]]:
    """(development, test): even and odd row indices."""
    return [c for c in cases if c.index % 2 == 0], [c for c in cases if c.index % 2 == 1]


# --- BFCL's schema dialect → JSON Schema ---------------------------------------------------

_TYPES = {"dict": "object", "float": "number", "tuple": "array"}


def json_schema(node: Any) -> Any:
    """BFCL's parameter schema as JSON Schema.

    "dict" → "object", "float" → "number", "tuple" → "array", "any" → no type; BFCL's own
    "optional" flag is dropped.
    """
    if isinstance(node, list):
        return [json_schema(n) for n in node]
    if not isinstance(node, dict):
        return node
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key == "optional":
            continue
        if key == "type" and isinstance(value, str):
            if value == "any":
                continue
            out[key] = _TYPES.get(value, value)
        elif key == "properties" and isinstance(value, dict):
            out[key] = {name: json_schema(prop) for name, prop in value.items()}
        else:
            out[key] = json_schema(value)
    return out


def safe_name(name: str) -> str:
    """A function name as a tool name (letters, digits, underscores), as OpenAI requires."""
    return re.sub(r"[^A-Za-z0-9_]", "_", name)


# --- the raw way: a prompt and a lenient parser -----------------------------------------------


def raw_system_prompt(functions: tuple[dict[str, Any], ...]) -> str:
    """The raw way's system prompt: BFCL-style calling instructions and the functions as JSON."""
    listing = json.dumps(list(functions), ensure_ascii=False)
    return (
        "You are an expert at composing function calls. You are given a question and a set of "
        "functions. Make the function call(s) that answer the question. If none of the "
        "functions can be used, say so and make no call. If the question lacks an argument "
        "a function requires, say so too.\n"
        "When you make calls, answer with nothing but a list in this format: "
        "[func_name1(param_a=value_a, param_b=value_b), func_name2(param=value)]\n\n"
        f"The functions, as JSON:\n{listing}"
    )


_FENCE = re.compile(r"```[a-zA-Z]*\n?(.*?)```", re.S)


def parse_calls(text: str) -> list[Call] | None:
    """The calls in a raw answer, or None when it holds no parsable call (an abstention)."""
    candidates = [m.group(1).strip() for m in _FENCE.finditer(text)]
    candidates.append(text.strip())
    candidates += [line.strip() for line in text.splitlines() if line.strip()]
    for candidate in candidates:
        calls = _python_calls(candidate)
        if calls is None:
            calls = _json_calls(candidate)
        if calls:
            return calls
    return None


def _python_calls(text: str) -> list[Call] | None:
    try:
        tree = ast.parse(text, mode="eval").body
    except (SyntaxError, ValueError):
        return None
    nodes = tree.elts if isinstance(tree, (ast.List, ast.Tuple)) else [tree]
    calls: list[Call] = []
    for node in nodes:
        if not isinstance(node, ast.Call) or node.args:
            return None
        try:
            arguments = {
                kw.arg: ast.literal_eval(kw.value) for kw in node.keywords if kw.arg is not None
            }
        except (ValueError, SyntaxError, TypeError):
            return None
        calls.append({"name": ast.unparse(node.func), "arguments": arguments})
    return calls or None


def _json_calls(text: str) -> list[Call] | None:
    start = min((i for i in (text.find("["), text.find("{")) if i >= 0), default=-1)
    if start < 0:
        return None
    try:
        value, _ = json.JSONDecoder().raw_decode(text[start:])
    except ValueError:
        return None
    items = value if isinstance(value, list) else [value]
    calls: list[Call] = []
    for item in items:
        if not isinstance(item, dict):
            return None
        name = item.get("name", item.get("tool", item.get("function")))
        arguments = item.get("arguments", item.get("parameters", {}))
        if not isinstance(name, str) or not isinstance(arguments, dict):
            return None
        calls.append({"name": name, "arguments": arguments})
    return calls or None


async def raw_calls(
    model: ChatModel, case: BfclCase, *, max_tokens: int = 256
) -> tuple[list[Call], str, Usage]:
    """The calls the raw model answers with (none when it abstains), its answer and usage."""
    system = raw_system_prompt(case.functions)
    own = [m for m in case.messages if m.role != "system"]
    extra = "\n\n".join(m.content for m in case.messages if m.role == "system")
    request = ChatRequest(
        messages=[
            Message(role="system", content=f"{system}\n\n{extra}" if extra else system),
            *own,
        ],
        max_tokens=max_tokens,
        temperature=0.0,
    )
    completion = await model.acomplete(request)
    return parse_calls(completion.text) or [], completion.text, completion.usage


# --- the Charter way: the tool layer with recorded calls --------------------------------------


def _recorded(arguments: dict[str, Any]) -> Any:
    return {"status": "done"}


def loaded_tools(case: BfclCase) -> tuple[dict[str, LoadedTool], dict[str, str]]:
    """The case's functions as Charter tools (calls recorded, not run), and their BFCL names.

    The second mapping is tool name → BFCL name.
    """
    functions = [
        {
            "name": safe_name(f["name"]),
            "description": f.get("description", ""),
            "parameters": json_schema(f.get("parameters", {"type": "object"})),
        }
        for f in case.functions
    ]
    names = {safe_name(f["name"]): f["name"] for f in case.functions}
    return client_tools(functions, run=_recorded), names


async def charter_calls(
    model: ChatModel, case: BfclCase, limits: ToolLimits | None = None
) -> tuple[list[Call], str, Usage]:
    """The calls Charter's tool layer makes, and a readable account of its steps."""
    from charter.models.base import Usage

    limits = limits or ToolLimits()
    tools, names = loaded_tools(case)
    system = "\n\n".join(m.content for m in case.messages if m.role == "system")
    own = [m for m in case.messages if m.role != "system"]
    used = await ToolUse(model, limits)(
        tools, system or "You are a helpful assistant.", own, RunHere()
    )
    if used.loop is None:
        return [], "no function relevant to the question: no call asked", Usage()
    out = used.loop
    calls = [
        {"name": names.get(str(c.get("tool")), str(c.get("tool"))), "arguments": c["arguments"]}
        for c in out.calls
    ]
    account = "; ".join(
        f"{s.action}: {json.dumps(s.decision, ensure_ascii=False)}"
        + (f" ({s.error})" if s.error else "")
        for s in out.steps
    )
    return calls, account + (f" [{out.reason}]" if out.reason else ""), out.usage


# --- AST checking -----------------------------------------------------------------------------


def _norm(value: Any) -> Any:
    if isinstance(value, bool):
        return ("bool", value)
    if isinstance(value, (int, float)):
        return ("number", float(value))
    if isinstance(value, str):
        return ("str", re.sub(r"[\s,./\-_*^]", "", value.lower()))
    if isinstance(value, (list, tuple)):
        return ("list", tuple(_norm(v) for v in value))
    if isinstance(value, dict):
        return ("dict", tuple(sorted((k, _norm(v)) for k, v in value.items())))
    return ("other", repr(value))


def _accepted(value: Any, accepted: list[Any]) -> bool:
    for option in accepted:
        if option == "":
            continue
        if isinstance(option, dict) and isinstance(value, dict):
            if _dict_accepted(value, option):
                return True
        elif _dict_list(option) and isinstance(value, list):
            # a list of objects whose fields list their accepted values, item by item
            if len(value) == len(option) and all(
                _accepted(v, [o]) for v, o in zip(value, option, strict=True)
            ):
                return True
        elif _norm(value) == _norm(option):
            return True
    return False


def _dict_list(option: Any) -> bool:
    return isinstance(option, list) and any(isinstance(o, dict) for o in option)


def _dict_accepted(value: dict[str, Any], option: dict[str, Any]) -> bool:
    if any(key not in option for key in value):
        return False
    for key, accepted in option.items():
        accepted = accepted if isinstance(accepted, list) else [accepted]
        if key not in value:
            if "" not in accepted:
                return False
        elif not _accepted(value[key], accepted):
            return False
    return True


def check_call(
    call: Call, answer: dict[str, dict[str, list[Any]]], functions: tuple[dict[str, Any], ...]
) -> str | None:
    """None when `call` matches the expected one, else why not."""
    ((name, expected),) = answer.items()
    if call["name"] != name:
        return f"called {call['name']}, expected {name}"
    arguments = call["arguments"]
    function = next((f for f in functions if f["name"] == name), {})
    for required in function.get("parameters", {}).get("required", []):
        if required not in arguments:
            return f"{name}: required argument {required} missing"
    for key, value in arguments.items():
        if key not in expected:
            return f"{name}: unexpected argument {key}"
        if not _accepted(value, expected[key]):
            return f"{name}: {key}={value!r} is not one of {expected[key]!r}"
    for key, accepted in expected.items():
        if key not in arguments and "" not in accepted:
            return f"{name}: argument {key} missing"
    return None


def check(case: BfclCase, calls: list[Call]) -> str | None:
    """None when the calls are right for the case, else why not."""
    if case.answers is None:
        if calls:
            return f"no function fits, yet it called {', '.join(c['name'] for c in calls)}"
        return None
    if not calls:
        return "no call made"
    if len(calls) != len(case.answers):
        return f"{len(calls)} call(s), expected {len(case.answers)}"
    first_reason: str | None = None
    for order in permutations(calls):
        reasons = [
            check_call(c, a, case.functions) for c, a in zip(order, case.answers, strict=True)
        ]
        wrong = [r for r in reasons if r is not None]
        if not wrong:
            return None
        first_reason = first_reason or wrong[0]
    return first_reason
