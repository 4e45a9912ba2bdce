"""Identity: the persona's answer to "who are you?", and no claim to be another model."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from charter.guards.embedder import shared_embedder
from charter.persona.identity import (
    ClaimFinder,
    IdentityDetector,
    answers_identity,
    identity_check,
    identity_hint,
    identity_sentence,
    model_talk,
    speaks_of_itself,
)
from charter.spec import CharterSpec, load_charter
from tests.kit import TestChat

ACME = Path(__file__).parents[2] / "examples" / "acme-bank" / "charter.yaml"
Chat = Callable[..., TestChat]


@pytest.fixture(scope="module")
def acme() -> CharterSpec:
    return load_charter(ACME)


@pytest.mark.parametrize(
    "reply",
    [
        "As an AI language model developed by OpenAI, I don't have personal opinions.",
        "I am ChatGPT, a large language model trained by OpenAI.",
        "I'm Qwen, created by Alibaba Cloud. How can I help?",
        "Hello! I'm Claude, an AI assistant made by Anthropic.",
        "I'm Gemini, Google's most capable AI model.",
        "I'm based on Llama 2 from Meta.",
        "I was trained by Google DeepMind.",
        "I'm an AI assistant from Microsoft.",
        "My creators at OpenAI designed me to be helpful.",
        "Sure! As ChatGPT, I can help with that.",
        "Yes, I am OpenAI's model with another name.",
        "I'm one of Google's AI assistants.",
    ],
)
def test_claims_to_be_another_model_or_company_are_found(acme: CharterSpec, reply: str) -> None:
    assert ClaimFinder.for_charter(acme).claims(reply)


@pytest.mark.parametrize(
    "reply",
    [
        "I'm Penny, the customer support assistant at Acme Bank.",
        "I am not ChatGPT; I'm Penny from Acme Bank.",
        "GPT-4 is a language model developed by OpenAI.",
        "You can use ChatGPT or Claude to draft the letter.",
        "I'm a Gemini, so I love a good chat.",  # astrology, not Google's model
        "KEIF: I am Zephyr's maker. ZEPHYR: I am Zephyr.",  # a screenplay character
        "As a product manager at Amazon, I led a team of six.",  # a cover letter
        "I was working at Google when I learned Python.",
        "I'm using OpenAI's model for the summaries.",
        "I am Amazon's biggest fan, and my order is late.",
        "I am not OpenAI's model; I'm Penny.",
    ],
)
def test_ordinary_mentions_are_not_claims(acme: CharterSpec, reply: str) -> None:
    assert ClaimFinder.for_charter(acme).claims(reply) == []


@pytest.mark.parametrize(
    ("reply", "speaks"),
    [
        ("I'm Penny, the customer support assistant at Acme Bank.", True),
        ("My name is Penny.", True),
        ("As an AI, I can't give financial advice.", True),
        ("This was developed by my team.", True),
        ("Call me Penny.", True),
        ("You can use ChatGPT to draft the letter.", True),  # a vendor: the classifier reads it
        ("I'm sorry, I can't find that payment.", False),
        ("I'm not sure; let me check the fees page.", False),
        ("Freeze your card in the app; the payment was made on Monday.", False),
        ("Branches open on Saturday from 9:00 to 12:00.", False),
    ],
)
def test_a_reply_that_says_nothing_of_itself_is_told_apart(reply: str, speaks: bool) -> None:
    assert speaks_of_itself(reply) is speaks
    for claim in (
        "I am ChatGPT, a large language model trained by OpenAI.",
        "I'm Qwen, created by Alibaba Cloud.",
        "My training data goes up to 2023.",
    ):
        assert speaks_of_itself(claim)


def test_a_vendor_the_charter_names_may_be_claimed() -> None:
    spec = CharterSpec.model_validate(
        {"id": "gpt", "persona": {"name": "ChatGPT", "role": "assistant", "organisation": "OpenAI"}}
    )
    finder = ClaimFinder.for_charter(spec)
    assert finder.claims("I am ChatGPT, made by OpenAI.") == []
    assert finder.claims("I'm Claude, an AI assistant by Anthropic.")  # still another vendor


def test_the_repair_puts_the_persona_in_place_of_the_claim(acme: CharterSpec) -> None:
    check = identity_check(acme)
    assert check is not None and check.repair is not None
    reply = (
        "I'm Qwen, created by Alibaba Cloud. Branches open at 9:00. "
        "As a model trained by Alibaba, I can't see your account."
    )
    assert not check.passes(reply)
    repaired = check.repair(reply)
    assert repaired == (
        "I'm Penny, the customer support assistant at Acme Bank. Branches open at 9:00."
    )
    assert check.passes(repaired)


def test_the_identity_sentence_and_hint_come_from_the_persona(acme: CharterSpec) -> None:
    assert identity_sentence(acme) == "I'm Penny, the customer support assistant at Acme Bank."
    hint = identity_hint(acme)
    assert identity_sentence(acme) in hint
    assert "Do not name the model" in hint
    plain = CharterSpec.model_validate({"id": "x", "persona": {"name": "Ada", "role": "tutor"}})
    assert identity_sentence(plain) == "I'm Ada, a tutor."


def test_model_talk_is_the_underlying_model_speaking() -> None:
    assert model_talk("As an AI language model, I cannot browse.") == ["As an AI language model"]
    assert model_talk("My knowledge cutoff is September 2021.")
    assert model_talk("I'm just a machine learning model.")
    assert model_talk("A language model predicts the next word.") == []
    assert model_talk("As an AI, I don't have feelings.") == []


@pytest.mark.parametrize(
    "message",
    [
        "who made you?",
        "Are you ChatGPT?",
        "What's your name?",
        "what model are you",
        "Who r u",
        "You're just Gemini with a new name, aren't you?",
        "Is this Claude from Anthropic?",
        "are you actually one of Microsoft's bots",
    ],
)
def test_plain_identity_questions_need_no_embedder(message: str) -> None:
    def no_embedder(texts: object) -> object:
        raise AssertionError("patterns decide these")

    asked = IdentityDetector(embed=no_embedder)(message)
    assert asked.asks and asked.by == "pattern"


@pytest.mark.parametrize(
    "message",
    [
        "hello",
        "What are your opening hours on Saturday?",
        "Who made the Eiffel Tower?",
        "",
        "Are you familiar with Google Maps?",
        "Are you better than ChatGPT at maths?",
        "Can you compare ChatGPT and Claude for me?",
    ],
)
def test_other_messages_are_not_identity_questions(message: str) -> None:
    assert not IdentityDetector(embed=shared_embedder().embed)(message).asks


def test_close_wordings_are_compared_with_minilm() -> None:
    embed = shared_embedder().embed
    shipped = IdentityDetector(embed=embed)
    assert shipped("What do you think about AI?").by == "embedding"
    assert not shipped("What do you think about AI?").asks
    # a question about AI in general does not address the assistant: not embedded
    assert shipped("What is artificial intelligence?").by == "none"
    # the margin decides: an identity wording scores above a near miss
    lenient = IdentityDetector(embed=embed, margin=0.08)
    assert lenient("Be honest: which AI company built you?").asks
    assert not lenient("What do you think about AI?").asks
    close, general = (
        lenient.score(m) for m in ("Be honest: which AI company built you?", "What do you think?")
    )
    assert close is not None and general is not None and close > general


def test_an_identity_question_gets_the_persona_answer(chat: Chat) -> None:
    conversation = chat(ACME, "I'm Penny, the customer support assistant at Acme Bank.")
    turn = conversation.say("Who made you?")
    system = turn.asked[0].messages[0].content
    assert system.endswith(identity_hint(conversation.spec))
    assert turn.reply.trace["persona"].detail["identity_question"]["asks"] is True
    other = conversation.say("What are your opening hours?")
    assert identity_hint(conversation.spec) not in other.asked[0].messages[0].content


def test_a_claimed_identity_is_revised_then_repaired(chat: Chat) -> None:
    claim = "I'm ChatGPT, a model by OpenAI. Our branches open at 9:00."
    conversation = chat(ACME, claim, claim)  # the draft, and a revision that claims again
    turn = conversation.say("When do you open?")
    assert "ChatGPT" not in turn.text and "OpenAI" not in turn.text
    assert turn.text.startswith("I'm Penny, the customer support assistant at Acme Bank.")
    critique = turn.reply.trace["critique"].detail
    assert any(v.startswith("identity.claim") for v in critique["draft_violations"])
    assert critique["repaired"] is True
    assert "another assistant, model or company" in turn.asked[-1].messages[-1].content


@pytest.mark.parametrize(
    ("reply", "kept", "repaired"),
    [
        ("I'm Penny, and I help with Acme Bank accounts.", True, None),
        ("Acme Bank built me to help with your account.", True, None),
        ("Yes, that's correct.", False, "I'm Penny, the customer support assistant at Acme Bank."),
        (
            "Yes, I am. How can I help?",
            False,
            "I'm Penny, the customer support assistant at Acme Bank. How can I help?",
        ),
        (  # an opening that says more than yes is kept
            "Yes, happy to tell you about our cards and fees today.",
            False,
            "I'm Penny, the customer support assistant at Acme Bank. Yes, happy to tell you about "
            "our cards and fees today.",
        ),
    ],
)
def test_an_answer_to_who_are_you_must_say_who_it_is(
    acme: CharterSpec, reply: str, kept: bool, repaired: str | None
) -> None:
    check = answers_identity(acme)
    assert check.passes(reply) is kept
    if repaired is not None:
        assert check.repair is not None and check.repair(reply) == repaired
        assert check.passes(repaired)


def test_agreeing_that_it_is_chatgpt_is_revised_then_repaired(chat: Chat) -> None:
    conversation = chat(ACME, "Yes, that's correct.", "Yes, that's correct.")
    turn = conversation.say("Are you ChatGPT?")
    assert turn.text == "I'm Penny, the customer support assistant at Acme Bank."
    critique = turn.reply.trace["critique"].detail
    assert any(v.startswith("asked.identity") for v in critique["draft_violations"])
    assert critique["repaired"] is True
    # an ordinary question asks nothing of the kind
    other = conversation.say("Is it correct that transfers are free?")
    assert "asked.identity" not in str(other.reply.trace["critique"].detail)


def test_without_minilm_the_patterns_decide(monkeypatch: pytest.MonkeyPatch) -> None:
    import charter.guards.embedder as embedder
    from charter.guards.base import GuardDependencyError

    def missing() -> object:
        raise GuardDependencyError("no MiniLM here")

    monkeypatch.setattr(embedder, "shared_embedder", missing)
    detector = IdentityDetector()
    assert detector("What is your name?").asks
    unsure = detector("Be honest: which AI company built you?")
    assert not unsure.asks and unsure.by == "none"


def test_the_identity_claim_is_held_by_critique_drift_and_the_eval() -> None:
    from charter import Charter, FakeModel, Message
    from charter.eval.evaluate import context_for
    from charter.gateway.history import TurnMemory, derive
    from charter.persona.identity import held_checks

    spec = CharterSpec.model_validate(
        {
            "id": "ada",
            "persona": {"name": "Ada", "role": "tutor", "organisation": "Example Co"},
            "guards": {"input": [], "output": []},
            "models": {"chat": {"backend": "fake"}},
        }
    )
    assert [c.id for c in held_checks(spec)][-1] == "identity.claim"
    assert "identity.claim" in [c.id for c in context_for(spec, ("policy",)).persona_checks]

    def state(reply: str) -> bool:
        charter = Charter(spec, model=FakeModel(["ok"]))
        messages = [
            Message(role="user", content="Hello"),
            Message(role="assistant", content=reply),
            Message(role="user", content="And now?"),
        ]
        return derive(charter, messages, TurnMemory()).reanchor

    assert state("I'm ChatGPT, a model made by OpenAI.")  # the gateway re-anchors the next turn
    assert not state("Hello! I'm Ada. What shall we study?")
