"""`Charter.respond` and `Conversation.send` are blocking calls that work both from plain
code and inside a running event loop (a Jupyter cell, an async framework's sync hook)."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

from charter import Charter, Conversation, FakeModel
from charter.models.base import Sampling
from charter.spec import CharterSpec
from charter.store.sqlite import Store

SPEC = CharterSpec.model_validate(
    {
        "id": "bank",
        "persona": {"name": "Penny", "role": "support assistant"},
        "guards": {"input": ["extraction"], "output": []},
        "critique": {"enabled": False},
    }
)


def test_respond_outside_an_event_loop_runs_on_this_thread() -> None:
    threads: list[str] = []
    charter = Charter(SPEC, model=FakeModel(default="We open at 9."))
    reply = charter.respond(
        "When do you open?", on_delta=lambda _: threads.append(threading.current_thread().name)
    )
    assert reply.text == "We open at 9."
    assert set(threads) == {threading.current_thread().name}


def test_respond_inside_a_running_loop_runs_on_a_worker_thread() -> None:
    model = FakeModel(default="We open at 9.")
    charter = Charter(SPEC, model=model)
    threads: list[str] = []

    async def notebook_cell() -> str:
        # What a Jupyter cell does: a plain call while the kernel's loop is running.
        reply = charter.respond(
            "When do you open?",
            on_delta=lambda _: threads.append(threading.current_thread().name),
            operator_instructions="Be brief.",
            sampling=Sampling(temperature=0.5),
        )
        awaited = await charter.arespond("And on Sunday?")  # the loop still works
        return f"{reply.text} / {awaited.text}"

    assert asyncio.run(notebook_cell()) == "We open at 9. / We open at 9."
    assert threads and all(name.startswith("charter-respond") for name in threads)
    assert model.calls[0].temperature == 0.5
    assert "Be brief." in model.calls[0].messages[0].content


def test_conversation_send_inside_and_outside_a_running_loop(tmp_path: Path) -> None:
    store = Store(tmp_path / "c.db")
    chat = Conversation(Charter(SPEC, model=FakeModel(default="We open at 9.")), store)
    assert chat.send("When do you open?").text == "We open at 9."

    async def cell() -> str:
        return chat.send("And on Sunday?").text

    assert asyncio.run(cell()) == "We open at 9."
    assert len(store.context_messages(chat.id)) == 4
    store.close()
