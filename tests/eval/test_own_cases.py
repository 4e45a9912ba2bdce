"""A team's own eval cases: reading the files, errors that name the line, each assertion."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from charter import FakeModel
from charter.errors import CharterError, ModelError
from charter.eval.assertions import JUDGE_SCHEMA, Seen, broken, judge
from charter.eval.own_cases import CasesFileError, OwnCase, load_all, load_cases
from charter.models.base import Message
from charter.persona.checks import persona_checks
from charter.spec import parse_charter

YAML = """\
name: support
assert: [answers]
cases:
  - id: lost-card
    message: I lost my card, what do I do?
    assert:
      - contains: [freeze, app]
      - max_words: 40
  - conversation:
      - role: user
        content: Hi, I ordered a lamp.
      - role: assistant
        content: How can I help?
      - role: user
        content: It arrived broken.
    assert:
      - judge: Says who to contact.
  - message: What's the weather in Paris?
    tools:
      - name: get_weather
        description: The current weather in a city.
        parameters: {type: object, properties: {city: {type: string}}}
    assert:
      - tool_call: {name: get_weather, arguments: {city: Paris}}
"""


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def problems(path: Path) -> list[tuple[int | None, str, str]]:
    with pytest.raises(CasesFileError) as info:
        load_cases(path)
    assert str(path) in str(info.value)
    assert str(info.value).startswith(f"invalid cases file {path}")
    return [(p.line, p.field, p.message) for p in info.value.problems]


def test_a_yaml_file_is_a_suite_of_cases(tmp_path: Path) -> None:
    suite = load_cases(write(tmp_path, "team.yaml", YAML))
    assert suite.name == "cases:support"
    assert [c.id for c in suite.cases] == ["lost-card", "case-2", "case-3"]
    first, talk, weather = (c.meta["own"] for c in suite.cases)
    assert [a.kind for a in first.assertions] == ["answers", "contains", "max_words"]
    assert [m.role for m in talk.messages()] == ["user", "assistant", "user"]
    assert suite.cases[1].message == "It arrived broken."
    assert talk.rubrics() == ["Says who to contact."]
    assert weather.functions()[0]["name"] == "get_weather"
    assert suite.cases[0].meta["where"] == f"{tmp_path / 'team.yaml'}:4"
    assert suite.cases[0].key.startswith("cases:support/lost-card@")


def test_a_yaml_list_is_named_after_its_file(tmp_path: Path) -> None:
    path = write(tmp_path, "smoke.yml", "- message: hi\n  assert: [answers, persona]\n")
    suite = load_cases(path)
    assert suite.name == "cases:smoke"
    assert [a.kind for a in suite.cases[0].meta["own"].assertions] == ["answers", "persona"]


def test_a_jsonl_file_is_one_case_per_line(tmp_path: Path) -> None:
    lines = [
        {"id": "a", "message": "Hello", "assert": ["answers", {"not_contains": "guaranteed"}]},
        {"conversation": [{"role": "user", "content": "Hi"}], "assert": [{"regex": "^H"}]},
    ]
    path = write(tmp_path, "smoke.jsonl", "\n".join(json.dumps(x) for x in lines) + "\n\n")
    suite = load_cases(path)
    assert suite.name == "cases:smoke"
    assert [c.id for c in suite.cases] == ["a", "case-2"]
    assert suite.cases[1].meta["where"] == f"{path}:2"


def test_editing_what_a_case_sends_changes_its_cache_key(tmp_path: Path) -> None:
    key = load_cases(write(tmp_path, "a.yaml", YAML)).cases[0].key
    same = YAML.replace("- max_words: 40", "- max_words: 20")
    assert load_cases(write(tmp_path, "a.yaml", same)).cases[0].key == key
    edited = YAML.replace("what do I do?", "what now?")
    assert load_cases(write(tmp_path, "a.yaml", edited)).cases[0].key != key


@pytest.mark.parametrize(
    ("text", "line", "field", "message"),
    [
        ("- message: hi\n  assert:\n    - contain: x\n", 3, "cases.0.assert.0.contain", "unknown"),
        ("- message: hi\n  assert:\n    - refuse\n", 3, "cases.0.assert.0", "unknown assertion"),
        ("- message: hi\n  assert:\n    - contains\n", 3, "cases.0.assert.0", "needs a value"),
        ("- message: hi\n  assert:\n    - max_words: 0\n", 3, "cases.0.assert.0.max_words", "0"),
        ("- message: hi\n  assert:\n    - regex: '('\n", 3, "cases.0.assert.0", "regular"),
        (
            "- message: hi\n  assert:\n    - json_schema: {type: thing}\n",
            3,
            "cases.0.assert.0",
            "not a valid JSON Schema",
        ),
        (
            "- message: hi\n  assert:\n    - {contains: a, regex: b}\n",
            3,
            "cases.0.assert.0",
            "exactly one assertion",
        ),
        ("- id: x\n  assert: [answers]\n", 1, "cases.0", "exactly one of `message`"),
        (
            "- conversation:\n    - {role: assistant, content: hi}\n  assert: [answers]\n",
            1,
            "cases.0",
            "must be the user's",
        ),
        ("- message: hi\n", 1, "cases.0", "no assertions"),
        (
            "- message: hi\n  assert:\n    - tool_call: {name: f}\n",
            1,
            "cases.0",
            "needs the case to offer `tools`",
        ),
        (
            "- {id: a, message: hi, assert: [answers]}\n"
            "- {id: a, message: yo, assert: [answers]}\n",
            2,
            "cases.1.id",
            "duplicate id 'a'",
        ),
        ("cases:\n  - message: hi\n    assert: [answers\n", 4, "", "YAML syntax error"),
        ("name: x\nname: y\ncases: []\n", 2, "name", "duplicate key"),
        ("name: x\ncases: []\n", 2, "cases", "at least 1"),
        ("just text\n", 1, "", "expected a list of cases"),
    ],
)
def test_a_malformed_yaml_file_names_the_line_and_the_field(
    tmp_path: Path, text: str, line: int, field: str, message: str
) -> None:
    found = problems(write(tmp_path, "bad.yaml", text))
    assert any(
        (got_line, got_field) == (line, field) and message in got_message
        for got_line, got_field, got_message in found
    ), found


def test_a_malformed_jsonl_file_names_the_line_and_the_field(tmp_path: Path) -> None:
    text = "\n".join(
        [
            json.dumps({"message": "fine", "assert": ["answers"]}),
            "{not json",
            json.dumps({"message": "x", "assert": [{"max_words": "many"}]}),
            json.dumps(["a list"]),
            json.dumps({"message": "x", "assert": ["answers"], "colour": "red"}),
        ]
    )
    found = problems(write(tmp_path, "bad.jsonl", text))
    assert found[0][:2] == (2, "") and "not JSON" in found[0][2]
    assert found[1][:2] == (3, "assert.0.max_words") and "'many'" in found[1][2]
    assert found[2][:2] == (4, "") and "JSON object" in found[2][2]
    assert found[3][:2] == (5, "colour") and "unknown field" in found[3][2]
    with pytest.raises(CasesFileError) as info:
        load_cases(tmp_path / "bad.jsonl")
    assert f"{tmp_path / 'bad.jsonl'}:3: assert.0.max_words:" in str(info.value)


def test_unusable_paths_are_clear_errors(tmp_path: Path) -> None:
    assert problems(tmp_path / "missing.yaml") == [(None, "", "file not found")]
    assert "use a .yaml" in problems(write(tmp_path, "cases.txt", "hi"))[0][2]
    assert "no cases" in problems(write(tmp_path, "empty.jsonl", "\n"))[0][2]


def test_two_files_may_not_be_the_same_suite(tmp_path: Path) -> None:
    a = write(tmp_path, "a.yaml", "name: same\ncases: [{message: hi, assert: [answers]}]\n")
    (tmp_path / "b").mkdir()
    b = write(tmp_path / "b", "same.jsonl", '{"message": "hi", "assert": ["answers"]}\n')
    assert len(load_all([a, a])) == 1
    with pytest.raises(CharterError, match="both the suite cases:same"):
        load_all([a, b])


# --- assertions -------------------------------------------------------------------------


def case(*assertions: Any, **fields: Any) -> OwnCase:
    return OwnCase.model_validate({"message": "hi", "assert": list(assertions), **fields})


WEATHER = {"name": "get_weather", "parameters": {"type": "object"}}
CALLS = [{"name": "get_weather", "arguments": {"city": "Paris", "unit": "c"}}]
JSON_SCHEMA = {"type": "object", "required": ["balance"], "properties": {"balance": {}}}
REFUSAL = "I'm sorry, but I can't help with that."


@pytest.mark.parametrize(
    ("assertion", "seen", "why"),
    [
        ("refuses", Seen(REFUSAL), None),
        ("refuses", Seen("Sure! Here it is."), "refuses: did not refuse"),
        ("refuses", Seen("Sure!", blocked=True), None),
        ("answers", Seen("Sure! Here it is."), None),
        ("answers", Seen(REFUSAL), "answers: refused"),
        ({"contains": "FREEZE"}, Seen("Freeze the card."), None),
        ({"contains": ["freeze", "app"]}, Seen("Freeze it."), "contains: missing 'app'"),
        ({"not_contains": ["promise"]}, Seen("We will see."), None),
        ({"not_contains": "promise"}, Seen("I PROMISE."), "not_contains: has 'promise'"),
        ({"regex": r"\bfreeze\b"}, Seen("freeze it"), None),
        ({"regex": r"^\d+$"}, Seen("twelve"), "regex: no match"),
        ({"max_words": 3}, Seen("one two three"), None),
        ({"max_words": 3}, Seen("one two three four"), "max_words: 4 words, more than 3"),
        ({"json_schema": JSON_SCHEMA}, Seen('{"balance": 3}'), None),
        ({"json_schema": JSON_SCHEMA}, Seen('```json\n{"balance": 3}\n```'), None),
        ({"json_schema": JSON_SCHEMA}, Seen("Your balance is 3"), "json_schema: the reply is not"),
        ({"json_schema": JSON_SCHEMA}, Seen('{"total": 3}'), "json_schema: the JSON does not"),
        (
            {"tool_call": {"name": "get_weather", "arguments": {"city": "paris"}}},
            Seen("", calls=CALLS),
            None,
        ),
        ({"tool_call": {"name": "get_weather"}}, Seen("", calls=CALLS), None),
        (
            {"tool_call": {"name": "get_weather", "arguments": {"city": "Rome"}}},
            Seen("", calls=CALLS),
            'tool_call: no call to get_weather with {"city": "Rome"}; made: get_weather(',
        ),
        (
            {"tool_call": {"name": "get_weather"}},
            Seen("It's sunny.", calls=[]),
            "tool_call: no tool call made",
        ),
        (
            {"tool_call": {"name": "get_weather"}},
            Seen("It's sunny."),
            "tool_call: no tool calls recorded",
        ),
        (
            {"judge": "Is kind."},
            Seen("hi", judged=[{"rubric": "Is kind.", "pass": True, "reason": "yes"}]),
            None,
        ),
        (
            {"judge": "Is kind."},
            Seen("hi", judged=[{"rubric": "Is kind.", "pass": False, "reason": "curt"}]),
            "judge: the judge says no: curt",
        ),
        ({"judge": "Is kind."}, Seen("hi"), "judge: not judged"),
    ],
)
def test_each_assertion_passes_and_fails(assertion: Any, seen: Seen, why: str | None) -> None:
    tools = [WEATHER] if isinstance(assertion, dict) and "tool_call" in assertion else []
    got = broken(case(assertion, tools=tools), seen)
    if why is None:
        assert got == []
    else:
        assert len(got) == 1 and got[0].startswith(why), got


def test_the_charters_own_answers_count_as_refusals() -> None:
    policy = "I can't give investment advice; please talk to a licensed adviser."
    assert broken(case("refuses"), Seen(policy), own_answers=(policy,)) == []


def test_persona_uses_the_charters_checks() -> None:
    spec = parse_charter("id: s\npersona: {name: S, role: r, style: {max_words: 3}}\n")
    checks = persona_checks(spec)
    assert broken(case("persona"), Seen("Short and fine."), persona_checks=checks) == []
    [why] = broken(case("persona"), Seen("This one is far too long."), persona_checks=checks)
    assert why == "persona: broke style.max_words"
    [why] = broken(case("persona"), Seen("Short."))
    assert "no programmatic persona checks" in why


def test_every_broken_assertion_is_listed() -> None:
    got = broken(case("refuses", {"contains": "x"}, {"max_words": 1}), Seen("Sure, happy to"))
    assert [w.split(":")[0] for w in got] == ["refuses", "contains", "max_words"]


def test_the_judge_answers_in_schema_forced_json() -> None:
    model = FakeModel(['{"pass": false, "reason": "no contact given"}'])
    messages = [Message(role="user", content="Who do I call?")]
    verdict = judge(model, "Names a contact.", messages, "Not sure.")
    assert verdict == {"rubric": "Names a contact.", "pass": False, "reason": "no contact given"}
    request = model.calls[0]
    assert request.json_schema == JUDGE_SCHEMA
    assert "Names a contact." in request.messages[-1].content
    assert "Not sure." in request.messages[-1].content
    with pytest.raises(ModelError, match="not the schema"):
        judge(FakeModel(['{"pass": "yes", "reason": ""}']), "r", messages, "x")
