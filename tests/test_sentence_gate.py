"""Streaming: sentences are released only after the output guards passed them."""

from __future__ import annotations

import asyncio

from charter import Charter, FakeModel
from charter.guards.base import GuardVerdict
from charter.spec import CharterSpec
from charter.stages.guarding import GuardRun
from charter.stages.output_guard import SentenceGate


def gate_for(check_text: dict[str, GuardRun] | None = None) -> tuple[SentenceGate, list[str]]:
    released: list[str] = []

    async def check(text: str) -> GuardRun:
        if check_text and text in check_text:
            return check_text[text]
        return GuardRun(text=text)

    return SentenceGate(released.append, check), released


def test_whole_sentences_are_released_and_the_rest_waits_for_the_end() -> None:
    gate, released = gate_for()

    async def go() -> str:
        for delta in ["Hel", "lo there. How", " are you?\nFine", " thanks"]:
            await gate(delta)
        assert released == ["Hello there. ", "How are you?\n"]
        return await gate.finish("Hello there. How are you?\nFine thanks", None)

    assert asyncio.run(go()) == "Hello there. How are you?\nFine thanks"
    assert released[-1] == "Fine thanks" and gate.checks == 2


def test_a_block_stops_the_stream_and_the_refusal_ends_it() -> None:
    verdict = GuardVerdict(guard="leak", action="block", score=1.0, reason="canary")
    gate, released = gate_for({"Hi. The secret is x. ": GuardRun(text="", blocked_by=verdict)})

    async def go() -> str:
        for delta in ["Hi. ", "The secret is x. ", "More text. "]:
            await gate(delta)
        return await gate.finish("I can't help with that.", "I can't help with that.")

    shown = asyncio.run(go())
    assert released == ["Hi. ", "I can't help with that."]
    assert gate.blocked_by is verdict and shown == "Hi. I can't help with that."


def test_a_rewritten_sentence_is_released_rewritten() -> None:
    gate, released = gate_for({"Mail a@b.co now. ": GuardRun(text="Mail <EMAIL> now. ")})

    async def go() -> None:
        await gate("Mail a@b.co now. ")
        await gate("Bye. ")

    asyncio.run(go())
    assert released == ["Mail <EMAIL> now. "]
    assert gate.stopped  # the next check saw raw text that no longer matches what was shown


def test_with_critique_on_only_the_final_reply_is_streamed() -> None:
    spec = CharterSpec.model_validate(
        {
            "id": "s",
            "persona": {"name": "Penny", "role": "assistant", "style": {"max_words": 5}},
            "guards": {"input": [], "output": ["leak"]},
        }
    )
    draft = "This draft is far too long for the five word limit."
    model = FakeModel([draft, "Short and sweet."])
    pieces: list[str] = []
    reply = asyncio.run(Charter(spec, model=model).arespond("Hi", on_delta=pieces.append))
    assert "".join(pieces) == reply.text == "Short and sweet."
    assert draft not in "".join(pieces)


def test_a_stream_that_ends_in_whitespace_is_not_sent_twice() -> None:
    """The model's deltas end in a space or newline; the reply is trimmed: the user gets the
    text once."""
    released: list[str] = []

    async def check(text: str) -> GuardRun:
        return GuardRun(text=text)

    async def run() -> str:
        gate = SentenceGate(released.append, check)
        for word in "Open at 9 on weekdays. Call us any time.\n".split(" "):
            await gate(word + " ")
        return await gate.finish("Open at 9 on weekdays. Call us any time.", None)

    shown = asyncio.run(run())
    assert "".join(released) == shown
    assert shown.strip() == "Open at 9 on weekdays. Call us any time."
