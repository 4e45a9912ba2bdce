"""Tool-call values with digits must come from the conversation or earlier tool results."""

from __future__ import annotations

import json
from pathlib import Path

from charter import Charter, FakeModel
from charter.spec import CharterSpec
from charter.tools.provenance import (
    given,
    ground_arguments,
    numbers_in,
    redundant,
    unsupported_values,
    variants,
)
from tests.tools.test_tools import spec

SCHEMA = {
    "type": "object",
    "properties": {
        "amount": {"type": "number"},
        "rate": {"type": "number"},
        "date": {"type": "string"},
        "language": {"type": "string"},
        "tier": {"type": "integer", "enum": [1, 2, 3]},
        "pages": {"type": "integer", "default": 20},
        "items": {"type": "array", "items": {"type": "integer"}},
    },
}


def test_values_given_in_any_common_form_are_supported() -> None:
    text = "Send 1,250.50 EUR at 7% from 15 March 2024, in Spanish; three copies of 12 and 40."
    assert {1250.5, 7.0, 2024.0, 3.0, 12.0} <= numbers_in(text)
    # a minus sign written apart from its number ("5x^2 - 7x") still makes it negative
    assert {5.0, 7.0, -7.0, 3.0} <= numbers_in("5x^2 - 7x + 3 = 0")
    assert -3.0 not in numbers_in("5x^2 - 7x + 3 = 0")
    arguments = {
        "amount": 1250.5,
        "rate": 0.07,  # a percentage written as a fraction
        "date": "2024-03-15",  # two-digit parts may be derived
        "language": "es-ES",  # text without digits is not checked
        "tier": 3,  # an enum member
        "pages": 20,  # the default
        "items": [3, 12, 40],
    }
    assert unsupported_values(arguments, SCHEMA, text) == []


def test_invented_figures_are_found_wherever_they_are() -> None:
    text = "What was the weather like yesterday?"
    arguments = {"amount": 12, "date": "2023-04-15", "items": [1000], "tier": 4}
    assert unsupported_values(arguments, SCHEMA, text) == [
        ("amount", "amount=12"),
        ("date", "date='2023-04-15'"),
        ("items", "items[0]=1000"),
        ("tier", "tier=4"),
    ]


NAMED = {
    "type": "object",
    "properties": {
        "team": {"type": "string"},
        "city": {"type": "string"},
        "region": {"type": "string"},
        "symbol": {"type": "string"},
        "filters": {"type": "object"},
        "places": {"type": "array", "items": {"type": "string"}},
    },
}


def test_invented_names_are_found_and_names_given_in_other_forms_are_not() -> None:
    text = "Who won the last world cup? Also the weather in NYC and Apple's share price."
    arguments = {
        "team": "Manchester United",  # nobody named it
        "city": "New York City",  # spelled out from "NYC"
        "region": "worldwide",  # lower-case text is not judged
        "symbol": "AAPL",  # a code
        "filters": {"league": "Premier League"},  # an object's fields are not judged
        "places": ["Paris", "Cup of the World"],  # one word given is enough
    }
    assert unsupported_values(arguments, NAMED, text) == [
        ("team", "team='Manchester United'"),
        ("places", "places[0]='Paris'"),
    ]
    assert unsupported_values({"team": "Manchester United"}, NAMED, "Did Manchester win?") == []


def test_names_are_not_judged_against_a_request_in_another_script() -> None:
    request = "请帮我检索一下'红星科技'公司目前所有未解决的工单"
    assert unsupported_values({"team": "Red Star Technology"}, NAMED, request) == []


def test_a_guessed_card_number_is_not_run_and_the_model_is_told_to_ask() -> None:
    guess = json.dumps({"tool": "freeze_card", "arguments": {"last4": "4821"}})
    model = FakeModel([guess, json.dumps({"calls": []}), "Which card should I freeze?"])
    reply = Charter(spec(), model=model).respond("Please freeze my card")
    steps = reply.trace["tools"].detail["steps"]
    assert [s["action"] for s in steps] == ["invalid", "answer"]
    assert "values nobody gave" in steps[0]["error"]
    told = model.calls[1].messages[-1].content
    assert "last4='4821' appear nowhere" in told and "ask the user" in told
    assert not reply.escalations  # no approval was asked for a card nobody named


def test_a_held_back_call_can_be_made_again_with_the_requests_words() -> None:
    """The model is told which value nobody gave: a second call with the request's own
    words for it is checked like any other, and runs."""
    guess = json.dumps({"tool": "freeze_card", "arguments": {"last4": "4821"}})
    fixed = json.dumps({"tool": "freeze_card", "arguments": {"last4": "7310"}})
    model = FakeModel([guess, fixed, "It awaits approval."])
    reply = Charter(spec(), model=model).respond("Please freeze my card ending 7310")
    steps = reply.trace["tools"].detail["steps"]
    assert [s["action"] for s in steps] == ["invalid", "awaiting_approval"]
    assert steps[1]["decision"]["arguments"] == {"last4": "7310"}


def test_a_number_the_user_gave_goes_through() -> None:
    given = json.dumps({"tool": "freeze_card", "arguments": {"last4": "4821"}})
    model = FakeModel([given, "It awaits approval."])
    reply = Charter(spec(), model=model).respond("Freeze the card ending 4821")
    steps = reply.trace["tools"].detail["steps"]
    assert [s["action"] for s in steps] == ["awaiting_approval"]
    assert reply.escalations and reply.escalations[0]["trigger"] == "approval"


def test_an_optional_value_nobody_gave_is_left_out_and_the_call_runs() -> None:
    guess = json.dumps({"tool": "get_balance", "arguments": {"account": "premium", "year": 2019}})
    model = FakeModel([guess, json.dumps({"calls": []}), "ok"])
    optional_year = spec()
    tool = optional_year.tools[0]
    parameters = {
        **tool.parameters,
        "properties": {**tool.parameters["properties"], "year": {"type": "integer"}},
        "additionalProperties": True,
    }
    tools = [tool.model_copy(update={"parameters": parameters}), *optional_year.tools[1:]]
    reply = Charter(optional_year.model_copy(update={"tools": tools}), model=model).respond(
        "premium balance?"
    )
    step = reply.trace["tools"].detail["steps"][0]
    assert step["action"] == "ran" and step["dropped"] == ["year=2019"]
    assert step["decision"]["arguments"] == {"account": "premium"}


def test_a_guess_repeated_after_feedback_is_still_refused() -> None:
    guess = json.dumps({"tool": "freeze_card", "arguments": {"last4": "4821"}})
    model = FakeModel([guess, guess, guess, "Which card?"])
    reply = Charter(spec(max_retries=1), model=model).respond("Please freeze my card")
    actions = [s["action"] for s in reply.trace["tools"].detail["steps"]]
    assert actions == ["invalid", "invalid"] and not reply.escalations


TODO = {
    "todo": {
        "type": "object",
        "properties": {
            "type": {"type": "string", "enum": ["add", "delete", "mark_done"]},
            "content": {"type": "string"},
            "urgent": {"type": "boolean"},
        },
    }
}


def todo(**arguments: object) -> dict[str, object]:
    return {"tool": "todo", "arguments": arguments}


def test_calls_that_only_fan_out_over_options_nobody_asked_for_are_found() -> None:
    asked = "can you create a todo for 'go shopping at 9 pm'"
    add = todo(type="add", content="go shopping at 9 pm")
    # Another enum member, a flipped flag, an argument left out: none was asked for.
    fanned = [
        add,
        todo(type="delete", content="go shopping at 9 pm"),
        todo(type="mark_done", content="go shopping at 9 pm"),
    ]
    found = variants(fanned, TODO, asked)
    assert sorted(found) == [1, 2]
    assert "type='delete'" in found[1]
    flagged = {**add, "arguments": {**add["arguments"], "urgent": True}}
    assert variants([flagged, {**add}], TODO, asked) == {
        1: found[1].replace("type='delete'", "urgent='(left out)'")
    }
    flipped = {**add, "arguments": {**add["arguments"], "urgent": False}}
    assert list(variants([flagged, flipped], TODO, asked)) == [1]


def test_calls_the_request_asks_for_are_not_variants() -> None:
    # The differing enum member is named (spelled with a space for "mark_done"); free text
    # and other tools are not judged.
    both = "add 'call mum' and mark done 'pay rent'"
    calls = [todo(type="add", content="call mum"), todo(type="mark_done", content="call mum")]
    assert variants(calls, TODO, both) == {}
    texts = [todo(type="add", content="call mum"), todo(type="add", content="pay rent")]
    assert variants(texts, TODO, "add two todos") == {}
    other = [todo(type="add", content="x"), {"tool": "notes", "arguments": {"type": "delete"}}]
    assert variants(other, TODO, "add x") == {}
    # "both", "all", "each", "every": every option may be meant.
    fanned = [todo(type="add", content="x"), todo(type="delete", content="x")]
    assert list(variants(fanned, TODO, "add x")) == [1]
    assert variants(fanned, TODO, "do both with x") == {}
    # Codes are named in other words: not judged.
    money = {"convert": {"properties": {"to": {"type": "string", "enum": ["EUR", "JPY"]}}}}
    codes = [{"tool": "convert", "arguments": {"to": t}} for t in ("EUR", "JPY")]
    assert variants(codes, money, "100 dollars in euros and yen") == {}


def test_a_fanned_out_call_is_not_run_and_the_model_is_told_why() -> None:
    decision = json.dumps(
        {
            "calls": [
                {"tool": "get_balance", "arguments": {"account": "everyday"}},
                {"tool": "get_balance", "arguments": {"account": "premium"}},
            ]
        }
    )
    model = FakeModel([decision, json.dumps({"calls": []}), "Your everyday balance."])
    reply = Charter(spec(), model=model).respond("What is my everyday balance?")
    steps = reply.trace["tools"].detail["steps"]
    assert [s["action"] for s in steps] == ["ran", "variant", "answer"]
    assert "account='premium'" in steps[1]["error"]
    fed_back = model.calls[1].messages[-1].content
    assert "not run: only account='premium' differs" in fed_back

    # Asked for both: both run.
    model = FakeModel([decision, json.dumps({"calls": []}), "Both balances."])
    reply = Charter(spec(), model=model).respond("Balances of my everyday and premium accounts?")
    steps = reply.trace["tools"].detail["steps"]
    assert [s["action"] for s in steps] == ["ran", "ran", "answer"]


def test_earlier_calls_of_the_turn_count_and_every_counts_only_in_the_request() -> None:
    asked = "add a todo 'go to Goa'"
    add = todo(type="add", content="go to Goa")
    delete = todo(type="delete", content="go to Goa")
    assert list(variants([delete], TODO, asked, earlier=[add])) == [0]
    # "all" in a tool result is not the user asking for every option.
    sources = asked + '\n{"todos": "all saved"}'
    assert list(variants([delete], TODO, sources, request=asked, earlier=[add])) == [0]
    assert variants([delete], TODO, sources, earlier=[add]) == {}


def test_another_option_after_a_result_runs_only_when_the_result_was_empty(
    tmp_path: Path,
) -> None:
    shops = tmp_path / "shops.py"
    shops.write_text(
        "def find(city, open_now=True):\n"
        "    return [] if open_now else [{'name': 'Late Books'}]\n"
        "def todo(type, content):\n"
        "    return {'done': type}\n"
    )
    tools = [
        {
            "name": "find_shops",
            "description": "Find bookshops in a city",
            "parameters": {
                "type": "object",
                "properties": {"city": {"type": "string"}, "open_now": {"type": "boolean"}},
                "required": ["city"],
            },
            "implementation": f"{shops}:find",
        },
        {
            "name": "todo",
            "description": "Add or delete a todo",
            "parameters": {
                "type": "object",
                "properties": {
                    "type": {"type": "string", "enum": ["add", "delete"]},
                    "content": {"type": "string"},
                },
                "required": ["type", "content"],
            },
            "implementation": f"{shops}:todo",
        },
    ]
    charter = CharterSpec.model_validate({**spec().model_dump(), "tools": tools})

    def decision(tool: str, **arguments: object) -> str:
        return json.dumps({"calls": [{"tool": tool, "arguments": arguments}]})

    # An empty result: trying the other value of the flag is a fair retry.
    model = FakeModel(
        [
            decision("find_shops", city="Leeds", open_now=True),
            decision("find_shops", city="Leeds", open_now=False),
            json.dumps({"calls": []}),
            "Late Books.",
        ]
    )
    reply = Charter(charter, model=model).respond("Bookshops in Leeds open now?")
    assert [s["action"] for s in reply.trace["tools"].detail["steps"]] == ["ran", "ran", "answer"]

    # A result: undoing it with an option nobody asked for does not run.
    model = FakeModel(
        [
            decision("todo", type="add", content="go to Goa"),
            decision("todo", type="delete", content="go to Goa"),
            json.dumps({"calls": []}),
            "Added.",
        ]
    )
    reply = Charter(charter, model=model).respond("I need to remember to 'go to Goa'")
    steps = reply.trace["tools"].detail["steps"]
    assert [s["action"] for s in steps] == ["ran", "variant", "answer"]


def test_a_value_the_system_prompt_gives_goes_through() -> None:
    given = json.dumps({"tool": "freeze_card", "arguments": {"last4": "4821"}})
    charter = spec()
    persona = charter.persona.model_copy(
        update={"description": "The signed-in customer has one card, ending 4821."}
    )
    charter = charter.model_copy(update={"persona": persona})
    model = FakeModel([given, "It awaits approval."])
    reply = Charter(charter, model=model).respond("Please freeze my card")
    steps = reply.trace["tools"].detail["steps"]
    assert [s["action"] for s in steps] == ["awaiting_approval"]


def test_commas_are_thousands_only_in_groups_of_three() -> None:
    assert {1250.5} <= numbers_in("1,250.50 EUR") and 250.5 not in numbers_in("1,250.50")
    assert {1.0, 5.0, 1.5, 10.0} <= numbers_in("for 1,5 and 10 years")
    assert 15.0 not in numbers_in("for 1,5 and 10 years")  # not fifteen


def test_percentages_read_either_way() -> None:
    assert given(0.08, {8.0}) and given(5.0, {0.05}) and given(100.0, {1.0})


def test_a_single_unit_of_time_gives_one() -> None:
    assert 1.0 in numbers_in("Predict the house prices for the next month in New York.")
    assert 1.0 in numbers_in("Set it to cool at 20 degrees. Power off after an hour")
    assert 1.0 not in numbers_in("A deck of cards, a king: the odds?")  # no unit of time


FREE_TEXT = {
    "type": "object",
    "properties": {
        "command": {"type": "string"},
        "soil": {"type": "string"},
        "currency": {"type": "string"},
        "kind": {"type": "string", "enum": ["sandy", "clay"]},
        "note": {"type": "string"},
        "data": {"type": "array", "items": {"type": "number"}},
    },
    "required": ["command", "soil", "currency", "kind", "data"],
}


def test_required_free_text_must_share_a_word_with_the_conversation() -> None:
    text = "Close firefox using the taskkill command, then tell me about my garden's soil."
    arguments = {
        "command": "taskkill /F /IM firefox.exe",  # shares "taskkill" and "firefox"
        "soil": "sandy",  # nobody said it, and the argument is required free text
        "currency": "USD",  # a code is not judged
        "kind": "clay",  # an enum member is the schema's own value
        "note": "string",  # optional: lower-case text there is not judged
        "data": [1.0],
    }
    assert unsupported_values(arguments, FREE_TEXT, text) == [
        ("soil", "soil='sandy'"),
        ("data", "data[0]=1.0"),
    ]
    given = {**arguments, "soil": "garden soil", "data": []}
    assert unsupported_values(given, FREE_TEXT, text) == [("data", "data=[] (empty)")]
    # mostly another script: the value may be a translation
    assert unsupported_values({"soil": "sandy"}, FREE_TEXT, "我的花园土壤是什么类型") == []


OPTIONS = {
    "type": "object",
    "properties": {
        "city": {"type": "string"},
        "preferences": {
            "type": "array",
            "items": {"type": "string", "enum": ["Pet-friendly", "Disabled Access", "Cafe Inside"]},
        },
        "features": {
            "type": "array",
            "items": {"type": "string", "enum": ["SqFt", "Bedrooms", "Location"]},
        },
    },
    "required": ["city"],
}


def test_lists_of_options_keep_only_the_options_the_request_names() -> None:
    padded = {
        "city": "New York",
        "preferences": ["Pet-friendly", "Disabled Access", "Cafe Inside"],
        "features": ["SqFt", "Bedrooms", "Location"],
    }
    request = "Find me a pet-friendly library with facilities for disabled people in New York"
    grounded = ground_arguments(padded, OPTIONS, request, request)
    # "disabled" names "Disabled Access"; no feature is named, so the optional list goes
    assert grounded.arguments == {
        "city": "New York",
        "preferences": ["Pet-friendly", "Disabled Access"],
    }
    assert grounded.dropped[0] == "preferences[2]='Cafe Inside'" and not grounded.refused
    every = "A library in New York with all the facilities, please"
    assert ground_arguments(padded, OPTIONS, every, every).arguments == padded
    required = {**OPTIONS, "required": ["city", "features"]}
    assert ground_arguments(padded, required, request, request).arguments["features"] == [
        "SqFt",
        "Bedrooms",
        "Location",
    ]


def test_an_optional_option_nobody_named_is_left_out_for_the_default() -> None:
    schema = {
        "type": "object",
        "properties": {
            "command": {"type": "string"},
            "unit": {"type": "string", "enum": ["seconds", "milliseconds"], "default": "N/A"},
            "language": {"type": "string", "enum": ["en-US", "es-ES"]},
        },
        "required": ["command"],
    }
    request = "close firefox using taskkill, and answer me in Spanish"
    guessed = {"command": "taskkill /IM firefox.exe", "unit": "seconds", "language": "es-ES"}
    grounded = ground_arguments(guessed, schema, request, request)
    # "es-ES" is a code, judged by nobody; "seconds" was never asked for
    assert grounded.arguments == {"command": "taskkill /IM firefox.exe", "language": "es-ES"}
    assert grounded.dropped == ["unit='seconds'"]
    timed = "close firefox with taskkill and tell me how many seconds it took"
    assert ground_arguments(guessed, schema, timed, timed).arguments == guessed


def test_a_call_that_asks_nothing_new_is_redundant() -> None:
    schemas = {
        "update_user": {
            "type": "object",
            "properties": {
                "user_id": {"type": "integer"},
                "update_info": {"type": "object"},
                "database": {"type": "string", "default": "CustomerInfo"},
            },
        }
    }
    full = {"user_id": 43523, "update_info": {"name": "John Doe", "email": "j@d.com"}}
    calls = [
        {"tool": "update_user", "arguments": full},
        # only the e-mail again, with the default database: nothing new
        {
            "tool": "update_user",
            "arguments": {
                "user_id": 43523,
                "update_info": {"email": "j@d.com"},
                "database": "CustomerInfo",
            },
        },
        {"tool": "update_user", "arguments": {"user_id": 7, "update_info": {"email": "j@d.com"}}},
        {"tool": "update_user", "arguments": full},  # the same call again is a loop, not this
    ]
    assert list(redundant(calls, schemas)) == [1]
    # against a call of an earlier decision, too
    assert list(redundant(calls[1:2], schemas, earlier=calls[:1])) == [0]
