"""Rules the user states in the message become checks for that turn, with repairs."""

from __future__ import annotations

from charter import Charter, FakeModel
from charter.persona.checks import failed, repair
from charter.persona.requested import requested_checks
from charter.spec import CharterSpec


def ids(message: str) -> list[str]:
    return [c.id for c in requested_checks(message)]


def test_ordinary_messages_ask_for_nothing() -> None:
    assert ids("What are your opening hours on Saturday?") == []
    assert ids("Why does my loop print the last comma twice?") == []


def test_common_phrasings_are_recognised() -> None:
    assert ids("Explain DNS in less than 50 words, without using any commas.") == [
        "asked.max_words",
        "asked.no_comma",
    ]
    assert "asked.min_words" in ids("Write at least 300 words about tea.")
    assert "asked.lowercase" in ids("Answer in all lowercase letters.")
    assert "asked.uppercase" in ids(
        "Your entire response should be in English, in all capital letters."
    )
    assert "asked.json" in ids("Wrap your entire output in JSON format.")
    assert "asked.ends_with" in ids('End your reply with "Any other questions?"')
    assert "asked.postscript" in ids("Add a postscript starting with P.S.")
    assert "asked.bullets" in ids("Use exactly 3 bullet points.")
    assert "asked.forbidden_words" in ids('Do not include the words "cheap" or "free".')
    assert "asked.language" in ids(
        "Your entire response should be in French language, no other language."
    )


def test_a_negated_keyword_rule_forbids_the_words_whatever_the_case() -> None:
    for message in (
        "Do not use words 'ours' or 'have' in your answer.",
        "Please do NOT include keywords 'BC' or 'AD' in the response.",
    ):
        assert ids(message) == ["asked.forbidden_words"]
    assert ids("Include the keywords 'tea' and 'milk'.") == ["asked.keywords"]


def test_limits_are_checked_exactly() -> None:
    (check,) = requested_checks("Answer in less than 5 words.")
    assert check.passes("one two three four")
    assert not check.passes("one two three four five")


def test_repairs_compose_in_order() -> None:
    message = (
        'Tell me a joke without using any commas and end with "Bye now." '
        "First repeat the request word for word."
    )
    checks = requested_checks(message)
    fixed = repair(checks, "Well, here it is, a joke.")
    assert failed([c for c in checks if c.repair], fixed) == []
    assert "," not in fixed
    assert fixed.startswith("Tell me a joke")
    assert fixed.endswith("Bye now.")


def test_the_critique_stage_revises_then_repairs_what_the_user_asked() -> None:
    spec = CharterSpec.model_validate(
        {
            "id": "plain",
            "persona": {"name": "Pat", "role": "assistant"},
            "guards": {"input": [], "output": []},
        }
    )
    model = FakeModel(["Sure, Paris is the capital.", "Paris, of course, is the capital."])
    reply = Charter(spec, model=model).respond(
        "What is the capital of France? Answer in lowercase letters and don't use any commas."
    )
    revision = model.calls[1].messages[-1].content
    assert "asked.no_comma" in revision and "asked.lowercase" in revision
    assert reply.text == "paris of course is the capital."
    critique = reply.trace["critique"]
    assert critique.detail["user_requests"] == ["asked.no_comma", "asked.lowercase"]
    assert critique.detail["repaired"] is True
    assert critique.detail["final_violations"] == []


def test_user_requests_can_be_turned_off() -> None:
    spec = CharterSpec.model_validate(
        {
            "id": "plain",
            "persona": {"name": "Pat", "role": "assistant"},
            "guards": {"input": [], "output": []},
            "critique": {"user_requests": False},
        }
    )
    model = FakeModel(["Sure, Paris."])
    reply = Charter(spec, model=model).respond("Capital of France? Don't use any commas.")
    assert reply.text == "Sure, Paris."
    assert len(model.calls) == 1


PLAIN = {
    "id": "plain",
    "persona": {"name": "Pat", "role": "assistant"},
    "guards": {"input": [], "output": []},
}


def test_a_missing_postscript_is_asked_for_in_the_revision_not_written_in_code() -> None:
    message = "What is the capital of France? At the end, add a postscript starting with P.S."
    revised = "Paris is the capital of France.\n\nP.S. The Louvre is worth a visit."
    model = FakeModel(["Paris is the capital of France.", revised])
    reply = Charter(CharterSpec.model_validate(PLAIN), model=model).respond(message)
    revision = model.calls[1].messages[-1].content
    assert "asked.postscript: the user asked: a postscript at the end starting with P.S." in (
        revision
    )
    assert reply.text == revised
    assert reply.trace["critique"].detail["final_violations"] == []

    # a revision that still has none goes out as the model wrote it: no P.S. is made up
    model = FakeModel(["Paris is the capital of France.", "Paris, of course."])
    reply = Charter(CharterSpec.model_validate(PLAIN), model=model).respond(message)
    assert reply.text == "Paris, of course."
    assert reply.trace["critique"].detail["final_violations"] == ["asked.postscript"]


def test_all_capitals_are_asked_for_in_the_revision_not_forced_in_code() -> None:
    message = "What is the capital of France? Answer in English, in all capital letters."
    model = FakeModel(["Paris is the capital.", "PARIS IS THE CAPITAL."])
    reply = Charter(CharterSpec.model_validate(PLAIN), model=model).respond(message)
    assert "asked.uppercase" in model.calls[1].messages[-1].content
    assert reply.text == "PARIS IS THE CAPITAL."

    model = FakeModel(["Paris is the capital.", "Paris, in France."])
    reply = Charter(CharterSpec.model_validate(PLAIN), model=model).respond(message)
    assert reply.text == "Paris, in France."  # not upper-cased in code
    assert reply.trace["critique"].detail["final_violations"] == ["asked.uppercase"]
