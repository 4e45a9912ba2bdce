"""Dynamic instructions: signals computed each turn pick the charter's instructions."""

from __future__ import annotations

from pathlib import Path

import pytest

from charter import Charter, Conversation, FakeModel, Store
from charter.models.base import Message
from charter.persona.signals import code_language, compute, expertise, language, sentiment
from charter.spec import CharterSpec, load_charter, parse_charter

EXAMPLES = Path(__file__).parent.parent / "examples"


def given(spec: CharterSpec, model: FakeModel) -> set[str]:
    """The charter's instructions (by id) whose text the model was given for its latest
    reply."""
    system = model.calls[-1].messages[0].content
    return {i.id for i in spec.instructions if i.then.strip() in system}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("def add(a, b):\n    return a + b\nprint(add(1, 2))", "python"),
        ("const add = (a, b) => a + b;\nconsole.log(add(1, 2));", "javascript"),
        ("How do loops work?", None),
    ],
)
def test_code_language(text: str, expected: str | None) -> None:
    assert code_language(text)[0] == expected


def test_expertise_sentiment_and_language() -> None:
    assert expertise(["I'm new to coding, what is a variable?"])[0] == "beginner"
    assert expertise(["What's the time complexity of this generator?"])[0] == "expert"
    assert sentiment("This is UNACCEPTABLE, I was charged twice!!")[0] == "negative"
    assert sentiment("Thanks, that was helpful")[0] == "positive"
    assert sentiment("What are your hours?")[0] == "neutral"
    assert language("¿Cuál es el horario de la oficina para mi cuenta?")[0] == "es"
    assert language("What are the opening hours for my account?")[0] == "en"


def test_stored_profile_fills_in_expertise() -> None:
    signals = compute([Message(role="user", content="Fix this please")], {"expertise": "expert"})
    assert signals.expertise == "expert"
    assert signals.expertise_source == "profile"


def test_upset_customer_gets_the_apology_first_instruction() -> None:
    spec = load_charter(EXAMPLES / "acme-bank" / "charter.yaml")
    model = FakeModel(default="I'm so sorry about that. Let me help.")
    charter = Charter(spec, model=model)
    charter.respond("I was charged twice and this is unacceptable!!")
    assert given(spec, model) == {"apologise-first"}
    system = model.calls[-1].messages[0].content
    assert system.endswith("then give one concrete next step. Do not argue.")  # placed last
    assert "For this reply:" in system
    charter.respond("What are your opening hours?")
    assert given(spec, model) == set()
    assert "For this reply:" not in model.calls[-1].messages[0].content


def test_tutor_adapts_to_python_and_a_beginner() -> None:
    spec = load_charter(EXAMPLES / "code-tutor" / "charter.yaml")
    model = FakeModel(default="Let's look at line 2 together. What does it return?")
    charter = Charter(spec, model=model)
    charter.respond("I'm new to this. Why does this fail?\ndef f(x):\n    print(x)\nf()")
    assert given(spec, model) == {"python", "beginner"}
    charter.respond("Why is this undefined?\nconst x = () => { let y; console.log(y); };")
    assert given(spec, model) == {"javascript"}


def test_expertise_is_remembered_across_conversations(tmp_path: Path) -> None:
    spec = load_charter(EXAMPLES / "code-tutor" / "charter.yaml")
    model = FakeModel(default="Good question. What do you expect it to print?")
    store = Store(tmp_path / "c.db")
    try:
        first = Conversation(Charter(spec, model=model), store, user="lena")
        first.send("I'm a beginner, what is a list?")
        assert store.profile("lena") == {"expertise": "beginner"}
        second = Conversation(Charter(spec, model=model), store, user="lena")
        reply = second.send("How do I sort it?")
        assert "beginner" in given(spec, model)
        assert reply.signals is not None
        assert (reply.signals.expertise, reply.signals.expertise_source) == ("beginner", "profile")
    finally:
        store.close()


def test_profile_conditions() -> None:
    spec = parse_charter(
        "id: x\npersona: {name: A, role: helper}\nguards: {input: [], output: []}\n"
        "instructions:\n  - id: vip\n    when: {profile: {plan: premium}}\n"
        "    then: Thank them for being a Premium customer.\n"
    )
    model = FakeModel(default="Hello!")
    charter = Charter(spec, model=model)
    charter.respond("hi", profile={"plan": "premium"})
    assert given(spec, model) == {"vip"}
    charter.respond("hi", profile={"plan": "basic"})
    assert given(spec, model) == set()


def test_bad_conditions_are_caught_when_loading() -> None:
    from charter.spec import CharterFileError

    with pytest.raises(CharterFileError) as info:
        parse_charter(
            "id: x\npersona: {name: A, role: helper}\ninstructions:\n"
            "  - id: a\n    when: {mood: angry}\n    then: x\n"
            "  - id: b\n    when: {message_matches: '(unclosed'}\n    then: y\n"
        )
    fields = {p.field for p in info.value.problems}
    assert fields == {"instructions.0.when.mood", "instructions.1.when.message_matches"}


def test_three_negative_messages_in_a_row_escalate(tmp_path: Path) -> None:
    spec = load_charter(EXAMPLES / "acme-bank" / "charter.yaml")
    spec = spec.model_copy(update={"tools": [], "knowledge": None})  # escalation logic only
    store = Store(tmp_path / "c.db")
    try:
        chat = Conversation(Charter(spec, model=FakeModel(default="I'm sorry.")), store)
        chat.send("This is terrible, my card is blocked!")
        chat.send("Still blocked, this is ridiculous.")
        reply = chat.send("Worst bank ever, I'm furious.")
        assert [e["trigger"] for e in reply.escalations] == ["negative_sentiment"]
    finally:
        store.close()
