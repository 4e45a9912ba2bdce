"""A minimal OpenAI-compatible upstream that answers at once (plain and streamed), so that
bench_gateway.py measures what the gateway adds, not a model. Each reply ends with a new
reference number.

    .venv/bin/python bench/gateway/fake_upstream.py PORT
"""

from __future__ import annotations

import json
import sys
from collections.abc import AsyncIterator
from typing import Any

import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, StreamingResponse

REPLY = "Our branches open at 9 on weekdays. You can also call us any time."
_served = [0]


def reply() -> str:
    """A reply never sent before, so that the output guards' embedding cache does not answer
    for them (a real model's replies differ)."""
    _served[0] += 1
    return f"{REPLY} Your reference is {_served[0]}."


app = FastAPI()


@app.post("/v1/chat/completions", response_model=None)
async def complete(request: Request) -> Any:
    body = await request.json()
    usage = {"prompt_tokens": 40, "completion_tokens": 16, "total_tokens": 56}
    if not body.get("stream"):
        return JSONResponse(
            {
                "id": "x",
                "object": "chat.completion",
                "model": "fake",
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": reply()},
                        "finish_reason": "stop",
                    }
                ],
                "usage": usage,
            }
        )

    async def events() -> AsyncIterator[str]:
        for word in reply().split(" "):
            chunk = {"choices": [{"index": 0, "delta": {"content": word + " "}}]}
            yield f"data: {json.dumps(chunk)}\n\n"
        final = {"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}], "usage": usage}
        yield f"data: {json.dumps(final)}\n\ndata: [DONE]\n\n"

    return StreamingResponse(events(), media_type="text/event-stream")


if __name__ == "__main__":
    uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), log_level="warning")
