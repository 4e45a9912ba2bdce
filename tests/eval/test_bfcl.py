"""BFCL: the raw answer parser, the schema dialect, AST checking, and both ways of calling."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from charter import FakeModel
from charter.eval import bfcl
from charter.eval.cases import Case
from charter.eval.scoring import Context, Outcome, tools
from charter.models.base import ChatRequest, Message
from charter.spec.models import ToolLimits

AREA = {
    "name": "geometry.area_circle",
    "description": "Area of a circle.",
    "parameters": {
        "type": "dict",
        "properties": {
            "radius": {"type": "float", "description": "Radius."},
            "units": {"type": "string", "description": "Units."},
        },
        "required": ["radius"],
    },
}
SONG = {
    "name": "spotify.play",
    "description": "Play songs of an artist for some minutes.",
    "parameters": {
        "type": "dict",
        "properties": {"artist": {"type": "string"}, "duration": {"type": "integer"}},
        "required": ["artist", "duration"],
    },
}


def case(
    functions: list[dict[str, Any]],
    answers: list[dict[str, dict[str, list[Any]]]] | None,
    category: str = "simple_python",
) -> bfcl.BfclCase:
    return bfcl.BfclCase(
        category=category,
        id="t",
        index=1,
        messages=(Message(role="user", content="What is the area of a circle of radius 5 cm?"),),
        functions=tuple(functions),
        answers=None if answers is None else tuple(answers),
    )


CIRCLE = case([AREA], [{"geometry.area_circle": {"radius": [5], "units": ["cm", ""]}}])


@pytest.mark.parametrize(
    ("text", "calls"),
    [
        ("[geometry.area_circle(radius=5)]", [("geometry.area_circle", {"radius": 5})]),
        (
            "Here you go:\n```python\n[f(a='x'), g(b=[1, 2])]\n```",
            [("f", {"a": "x"}), ("g", {"b": [1, 2]})],
        ),
        ('[{"name": "f", "arguments": {"a": 1}}]', [("f", {"a": 1})]),
        ('{"tool": "f", "arguments": {"a": 1}}', [("f", {"a": 1})]),
        ("None of the functions can compute this.", None),
        ("[f(5)]", None),  # positional arguments cannot be checked by name
        ("f(a=some_variable)", None),  # not a literal
    ],
)
def test_raw_answers_parse_leniently(text: str, calls: list[tuple[str, Any]] | None) -> None:
    parsed = bfcl.parse_calls(text)
    if calls is None:
        assert parsed is None
    else:
        assert parsed == [{"name": n, "arguments": a} for n, a in calls]


def test_bfcl_schemas_become_json_schema() -> None:
    schema = bfcl.json_schema(
        {
            "type": "dict",
            "properties": {
                "x": {"type": "float", "optional": True},
                "pair": {"type": "tuple", "items": {"type": "integer"}},
                "anything": {"type": "any"},
                "type": {"type": "string"},  # a property may be called "type"
            },
        }
    )
    assert schema == {
        "type": "object",
        "properties": {
            "x": {"type": "number"},
            "pair": {"type": "array", "items": {"type": "integer"}},
            "anything": {},
            "type": {"type": "string"},
        },
    }
    assert bfcl.safe_name("math.factorial") == "math_factorial"


def call(name: str, **arguments: Any) -> bfcl.Call:
    return {"name": name, "arguments": arguments}


@pytest.mark.parametrize(
    ("calls", "why"),
    [
        ([call("geometry.area_circle", radius=5)], None),
        ([call("geometry.area_circle", radius=5.0, units="CM")], None),
        ([call("geometry.area_circle", radius=6)], "radius=6 is not one of"),
        ([call("geometry.area_circle", radius=5, colour="red")], "unexpected argument colour"),
        ([call("geometry.area_circle", units="cm")], "required argument radius missing"),
        ([call("area_circle", radius=5)], "expected geometry.area_circle"),
        ([], "no call made"),
        ([call("geometry.area_circle", radius=5)] * 2, "2 call(s), expected 1"),
        ([call("geometry.area_circle", radius=True)], "radius=True"),  # a bool is no number
    ],
)
def test_ast_checking(calls: list[bfcl.Call], why: str | None) -> None:
    result = bfcl.check(CIRCLE, calls)
    if why is None:
        assert result is None
    else:
        assert result is not None and why in result


def test_parallel_calls_match_in_any_order_and_irrelevance_wants_none() -> None:
    parallel = case(
        [SONG],
        [
            {"spotify.play": {"artist": ["Taylor Swift"], "duration": [20]}},
            {"spotify.play": {"artist": ["Maroon 5"], "duration": [15]}},
        ],
        "parallel",
    )
    swapped = [
        call("spotify.play", artist="maroon 5", duration=15),
        call("spotify.play", artist="Taylor Swift", duration=20),
    ]
    assert bfcl.check(parallel, swapped) is None
    assert bfcl.check(parallel, [swapped[0], swapped[0]]) is not None
    irrelevant = case([SONG], None, "irrelevance")
    assert bfcl.check(irrelevant, []) is None
    assert "called spotify.play" in (bfcl.check(irrelevant, swapped[:1]) or "")


def test_nested_dict_values_are_checked_key_by_key() -> None:
    fetch = case(
        [{"name": "db.fetch", "parameters": {"type": "dict", "properties": {}}}],
        [{"db.fetch": {"where": [{"dept": ["Science"], "school": ["Bluebird HS", ""]}]}}],
    )
    assert bfcl.check(fetch, [call("db.fetch", where={"dept": "science"})]) is None
    assert bfcl.check(fetch, [call("db.fetch", where={"dept": "Art"})]) is not None
    assert bfcl.check(fetch, [call("db.fetch", where={"dept": "Science", "x": 1})]) is not None


def test_lists_of_objects_are_checked_item_by_item() -> None:
    query = case(
        [{"name": "db.query", "parameters": {"type": "dict", "properties": {}}}],
        [
            {
                "db.query": {
                    "conditions": [[{"field": ["age"], "value": ["25", 25]}, {"field": ["job"]}]]
                }
            }
        ],
    )
    right = [{"field": "age", "value": 25}, {"field": "job"}]
    assert bfcl.check(query, [call("db.query", conditions=right)]) is None
    assert bfcl.check(query, [call("db.query", conditions=right[:1])]) is not None
    swapped = [{"field": "job"}, {"field": "age", "value": 25}]
    assert bfcl.check(query, [call("db.query", conditions=swapped)]) is not None


def _first_accepted(accepted: list[Any]) -> Any:
    value = next(v for v in accepted if v != "")
    if isinstance(value, dict):
        return {k: _first_accepted(v) for k, v in value.items() if any(x != "" for x in v)}
    if isinstance(value, list) and any(isinstance(v, dict) for v in value):
        return [_first_accepted([v]) for v in value]
    return value


def test_the_checker_accepts_the_datasets_own_answers_and_rejects_changed_ones() -> None:
    accepted = rejected = total = 0
    for category in bfcl.CATEGORIES:
        for item in bfcl.load(category):
            if item.answers is None:
                continue
            total += 1
            calls = []
            for answer in item.answers:
                ((name, arguments),) = answer.items()
                values = {
                    k: _first_accepted(v) for k, v in arguments.items() if any(x != "" for x in v)
                }
                calls.append({"name": name, "arguments": values})
            accepted += bfcl.check(item, calls[::-1]) is None
            wrong = [{**c, "name": c["name"] + "_x"} for c in calls]
            rejected += bfcl.check(item, wrong) is not None
    assert total == 1058
    # Two live_simple answers leave out an argument the function itself requires.
    assert accepted == total - 2
    assert rejected == total


def test_the_test_half_is_the_odd_rows() -> None:
    dev, test = bfcl.split(bfcl.load("multiple"))
    assert len(dev) == len(test) == 100
    assert all(c.index % 2 == 1 for c in test)


def decide(*decisions: dict[str, Any]) -> FakeModel:
    return FakeModel([json.dumps(d) for d in decisions])


def test_charter_calls_go_through_the_tool_layer_and_keep_bfcl_names() -> None:
    model = decide(
        {"tool": "geometry_area_circle", "arguments": {"radius": "five"}},  # invalid: retried
        {"tool": "geometry_area_circle", "arguments": {"radius": 5}},
        {"tool": "none"},
    )
    limits = ToolLimits(min_relevance=-1)
    calls, account, usage = asyncio.run(bfcl.charter_calls(model, CIRCLE, limits))
    assert calls == [call("geometry.area_circle", radius=5)]
    assert "invalid" in account and usage.prompt_tokens > 0
    assert model.calls[0].json_schema is not None
    assert bfcl.check(CIRCLE, calls) is None


def test_charter_asks_no_model_when_no_function_is_relevant() -> None:
    irrelevant = bfcl.BfclCase(
        "irrelevance",
        "t",
        1,
        (Message(role="user", content="Who won the football world cup in 1998?"),),
        (SONG,),
        None,
    )
    model = FakeModel()  # any call would raise: nothing queued
    calls, account, _ = asyncio.run(
        bfcl.charter_calls(model, irrelevant, ToolLimits(min_relevance=0.5))
    )
    assert calls == [] and "no function relevant" in account and not model.calls


def test_raw_calls_prompt_with_the_functions_and_score_through_the_suite() -> None:
    def answer(request: ChatRequest) -> str:
        assert "geometry.area_circle" in request.messages[0].content
        return "[geometry.area_circle(radius=5, units='cm')]"

    calls, text, _ = asyncio.run(bfcl.raw_calls(FakeModel([answer]), CIRCLE))
    item = Case("tools", "bfcl:t", CIRCLE.question, {"family": "simple_python", "bfcl": CIRCLE})
    ctx = Context(canary="c", private_prompt="p", own_answers=())
    assert not tools(item, Outcome(text=text, calls=calls), ctx).failed
    assert tools(item, Outcome(text="", calls=[]), ctx).failed
