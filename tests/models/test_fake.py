from __future__ import annotations

import asyncio

import pytest

from charter.errors import ModelError
from charter.models import ChatRequest, Completion, FakeModel, Message, TextDelta, collect

REQ = ChatRequest(messages=[Message(role="user", content="hi there")])


def test_replies_in_order_then_default_and_calls_recorded() -> None:
    model = FakeModel(["one", "two"], default="again")
    assert [model.complete(REQ).text for _ in range(4)] == ["one", "two", "again", "again"]
    assert len(model.calls) == 4
    assert model.calls[0].messages[0].content == "hi there"


def test_empty_queue_without_default_raises() -> None:
    with pytest.raises(ModelError, match="no reply queued"):
        FakeModel().complete(REQ)


def test_queued_exception_is_raised() -> None:
    model = FakeModel([ModelError("down"), "ok"])
    with pytest.raises(ModelError, match="down"):
        model.complete(REQ)
    assert model.complete(REQ).text == "ok"


def test_stream_yields_deltas_then_completion() -> None:
    events = list(FakeModel(["a b c"]).stream(REQ))
    assert [e.text for e in events if isinstance(e, TextDelta)] == ["a", " b", " c"]
    assert isinstance(events[-1], Completion)
    assert events[-1].text == "a b c"


def test_async_pair_matches_sync() -> None:
    model = FakeModel(["x y", "x y"])

    async def go() -> tuple[str, list[str]]:
        whole = await model.acomplete(REQ)
        deltas = [e.text async for e in model.astream(REQ) if isinstance(e, TextDelta)]
        return whole.text, deltas

    assert asyncio.run(go()) == ("x y", ["x", " y"])


def test_async_stream_propagates_errors() -> None:
    model = FakeModel([ModelError("stream broke")])

    async def go() -> None:
        async for _ in model.astream(REQ):
            pass

    with pytest.raises(ModelError, match="stream broke"):
        asyncio.run(go())


def test_json_schema_requests_need_json() -> None:
    schema_req = ChatRequest(messages=REQ.messages, json_schema={"type": "object"})
    assert FakeModel(['{"a": 1}']).complete(schema_req).text == '{"a": 1}'
    with pytest.raises(ModelError, match="not JSON"):
        FakeModel(["nope"]).complete(schema_req)


def test_collect_needs_a_final_completion() -> None:
    assert collect(FakeModel(["done"]).stream(REQ)).text == "done"
    with pytest.raises(ModelError):
        collect(iter([TextDelta("x")]))
