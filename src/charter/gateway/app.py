"""The OpenAI-compatible gateway, built by `create_app` (no module-level state).

Each charter is a model, named by its id. `POST /v1/chat/completions` runs the whole turn
through the charter's pipeline: the same guards, critique and trace as `charter chat`, on the
plain and the streamed path alike (a streamed reply is released only after the output guards
passed it). Every response says which guards ran, in the `X-Charter-Guards` header and in
the `charter` object of the body (the SSE chunk with the finish reason, when streaming).
How each request field is honoured or refused: turn.py.

The app can be mounted in a team's own FastAPI app (`parent.mount("/charter", gateway)`);
Starlette does not run a mounted app's lifespan, so the parent enters `charter_lifespan`
in its own (docs/gateway.md, "Mounting in your own app").
"""

from __future__ import annotations

import asyncio
import json
import math
import time
import uuid
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from importlib import resources
from pathlib import Path
from typing import Any, Literal, Protocol

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import (
    FileResponse,
    HTMLResponse,
    JSONResponse,
    Response,
    StreamingResponse,
)

from charter.assistant import Charter
from charter.gateway.auth import LOCAL_TENANT, Caller, authenticate
from charter.gateway.history import TurnMemory
from charter.gateway.metrics import GatewayMetrics
from charter.gateway.recall import kept, recalled
from charter.gateway.telemetry import turn_span
from charter.gateway.turn import Refused, Turn, prepare
from charter.gateway.wire import (
    AuditEntry,
    AuditList,
    CharterInfo,
    ChatCompletion,
    ChatCompletionRequest,
    Choice,
    ChoiceMessage,
    ErrorBody,
    ErrorResponse,
    EscalationEntry,
    EscalationList,
    ModelCard,
    ModelList,
    WireFunctionCall,
    WireToolCall,
    WireUsage,
)
from charter.pipeline import StageRecord
from charter.reply import Reply
from charter.store.records import AuditRecord, GatewayRecords
from charter.store.sqlite import Store


def error(status: int, message: str, kind: str, param: str | None = None) -> JSONResponse:
    """An error response in OpenAI's format, with HTTP status `status`.

    `kind` is the error's `type` ("invalid_request_error", ...); `param` names the request field at
    fault, if any.
    """
    body = ErrorResponse(error=ErrorBody(message=message, type=kind, param=param))
    return JSONResponse(body.model_dump(), status_code=status)


def _tag(part: object) -> bool:
    """Whether a part of an error location is a pydantic union member's name, not a field.

    Such names look like "str", "list[ContentPart]" or "constrained-str".
    """
    return isinstance(part, str) and (
        part in ("str", "int", "float", "bool") or "[" in part or "-" in part
    )


def guards_ran(reply: Reply) -> list[str]:
    """`input:injection=allow`, ... for every guard verdict of the turn, in order."""
    return [f"{g.side}:{g.guard}={g.action}" for g in reply.guards]


def planned_guards(charter: Charter) -> str:
    """The guards the charter enables, comma-separated ("none" when there are none).

    Streamed responses send their headers before the guards run; the verdicts are in the last chunk.
    """
    guards = charter.spec.guards
    names = [f"input:{g}" for g in guards.input] + [f"output:{g}" for g in guards.output]
    return ",".join(names) or "none"


def wire_calls(reply: Reply, turn: Turn) -> list[WireToolCall]:
    """The turn's calls in the wire format (the first only, with parallel_tool_calls off)."""
    calls = reply.tool_calls[:1] if turn.single_call else reply.tool_calls
    return [
        WireToolCall(
            id=f"call_{uuid.uuid4().hex[:12]}",
            function=WireFunctionCall(name=c["name"], arguments=json.dumps(c["arguments"])),
        )
        for c in calls
    ]


def settle(charter: Charter, turn: Turn, reply: Reply, memory: TurnMemory) -> None:
    """After the turn: put its `gateway` record in the trace and remember its drift decision.

    The `gateway` record goes first in the trace (what the request asked and what was derived from
    its history); the drift decision is remembered for the next request of the conversation
    (history.py).
    """
    detail = dict(turn.detail)
    if turn.single_call and len(reply.tool_calls) > 1:
        detail["tool_calls_dropped"] = len(reply.tool_calls) - 1
    reply.trace.records.insert(0, StageRecord("gateway", detail=detail))
    if reply.text and turn.messages:
        memory.record(
            charter.spec.id,
            turn.messages[-1].content,
            reply.text,
            reanchor_next=reply.carry.reanchor,
        )


def finish_reason(reply: Reply) -> Literal["stop", "content_filter", "tool_calls"]:
    """The reply's OpenAI finish reason: "content_filter" (blocked), "tool_calls" or "stop"."""
    if reply.blocked:
        return "content_filter"
    return "tool_calls" if reply.tool_calls else "stop"


def retry_after(reply: Reply) -> int | None:
    """Seconds to wait, when the rate limit stopped this turn."""
    if reply.retry_after_s is None:
        return None
    return max(1, math.ceil(reply.retry_after_s))


def charter_info(reply: Reply) -> CharterInfo:
    """The `charter` object of a response: verdict, guard verdicts, trace, escalations and cost."""
    return CharterInfo(
        blocked=reply.blocked,
        block_reason=reply.block_reason,
        guards=guards_ran(reply),
        trace=reply.trace.to_list(),
        escalations=[
            {"id": e["id"], "trigger": e["trigger"], "reason": e["reason"]}
            for e in reply.escalations
        ],
        cost=reply.cost,
    )


class Auditor(Protocol):
    """Writes a turn's audit record (`reply` None: the turn failed, with `failure` as the error)."""

    async def __call__(
        self,
        caller: Caller,
        charter_id: str,
        turn: Turn,
        reply: Reply | None,
        *,
        stream: bool,
        failure: str | None = None,
    ) -> None: ...


def _build_pipeline(charter: Charter) -> None:
    _ = charter.pipeline  # loads the model and the guards


def create_app(  # noqa: C901 - the routes close over the app state
    charters: Mapping[str, Charter],
    *,
    load: bool = True,
    store: GatewayRecords | None = None,
    report: Path | None = None,
) -> FastAPI:
    """The gateway over `charters` (id -> Charter).

    With `load`, every charter's model and guards load at start-up, and /readyz answers 200 once
    they have. `store` (default: the Charter home's database) holds the API keys, the audit log and
    escalations. When it has any live key, every /v1 call needs one; otherwise every call is the
    `local` tenant (and `charter serve` binds to loopback only). Mounted in another app, its
    start-up runs only inside `charter_lifespan(app)`.
    """
    started = asyncio.Event()
    ready = asyncio.Event()
    created = int(time.time())
    metrics = GatewayMetrics()
    memory = TurnMemory()
    state = store if store is not None else Store()
    keys_required = state.has_api_keys()

    def caller_of(request: Request) -> Caller | JSONResponse:
        if not keys_required:
            return Caller(LOCAL_TENANT, None, None)
        found = authenticate(state, request.headers.get("authorization"))
        if isinstance(found, str):
            metrics.rejected.labels("401").inc()
            return error(401, found, "authentication_error")
        return found

    async def audit(
        caller: Caller,
        charter_id: str,
        turn: Turn,
        reply: Reply | None,
        *,
        stream: bool,
        failure: str | None = None,
    ) -> None:
        """One audit record per turn, written before the response completes.

        The turn's escalations are recorded with it, under the caller's tenant.
        """
        record = AuditRecord(
            tenant=caller.tenant,
            key_id=caller.key_id,
            charter_id=charter_id,
            stream=stream,
            request=turn.transcript,
            reply=reply.text if reply else "",
            blocked=reply.blocked if reply else True,
            block_reason=reply.block_reason if reply else None,
            prompt_tokens=reply.usage.prompt_tokens if reply else 0,
            completion_tokens=reply.usage.completion_tokens if reply else 0,
            cost=reply.cost if reply else None,
            ms=reply.ms if reply else 0.0,
            trace=reply.trace.to_list() if reply else [],
            error=failure,
        )

        def write() -> None:
            state.record_audit(record)
            for item in reply.escalations if reply else []:
                state.add_escalation(
                    item, conversation_id=None, charter_id=charter_id, tenant=caller.tenant
                )

        await asyncio.to_thread(write)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        started.set()
        for charter in charters.values():
            charter.share_connections()  # one keep-alive pool per upstream, on this loop
            if load:
                await asyncio.to_thread(_build_pipeline, charter)
        ready.set()
        try:
            yield
        finally:
            ready.clear()
            started.clear()
            for charter in charters.values():
                await charter.aclose()

    app = FastAPI(title="Charter gateway", version="1", lifespan=lifespan)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        metrics.rejected.labels("400").inc()
        first = exc.errors()[0] if exc.errors() else {}
        where = ".".join(str(p) for p in first.get("loc", ()) if p != "body" and not _tag(p))
        return error(
            400,
            f"invalid request: {where or 'body'}: {first.get('msg', 'malformed')}",
            "invalid_request_error",
            where or None,
        )

    page = resources.files("charter.gateway").joinpath("playground.html").read_text("utf-8")

    @app.get("/", include_in_schema=False)
    async def playground() -> HTMLResponse:
        """The web playground, which holds no data: it calls the API like any client.

        It shows a chat with a charter, each turn's trace, the escalation queue and the latest eval
        report.
        """
        return HTMLResponse(page)

    @app.api_route("/report", methods=["GET", "HEAD"], include_in_schema=False)
    async def eval_report() -> Response:
        """The eval report given to `charter serve --report` (404 without one)."""
        if report is None or not report.is_file():
            return error(404, "no eval report configured (charter serve --report)", "not_found")
        return FileResponse(report, media_type="text/html")

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz", response_model=None)
    async def readyz() -> dict[str, str] | JSONResponse:
        if not started.is_set():  # mounted, and the parent never entered charter_lifespan
            return JSONResponse({"status": "not started"}, status_code=503)
        if not ready.is_set():
            return JSONResponse({"status": "loading"}, status_code=503)
        return {"status": "ready"}

    @app.get("/metrics")
    async def prometheus() -> Response:
        return Response(metrics.render(), media_type="text/plain; version=0.0.4")

    @app.get("/v1/models", response_model=None)
    async def models(request: Request) -> ModelList | JSONResponse:
        caller = caller_of(request)
        if isinstance(caller, JSONResponse):
            return caller
        return ModelList(
            data=[ModelCard(id=cid, created=created) for cid in charters if caller.may_use(cid)]
        )

    @app.get("/v1/audit", response_model=None)
    async def audit_log(request: Request, limit: int = 50) -> AuditList | JSONResponse:
        """The caller's tenant's latest turns, newest first (no other tenant's, ever)."""
        caller = caller_of(request)
        if isinstance(caller, JSONResponse):
            return caller
        if not 1 <= limit <= 1000:
            return error(400, "limit must be 1-1000", "invalid_request_error", "limit")
        rows = await asyncio.to_thread(state.audit, caller.tenant, limit=limit)
        return AuditList(data=[AuditEntry.of(r) for r in rows])

    @app.get("/v1/escalations", response_model=None)
    async def escalation_queue(request: Request) -> EscalationList | JSONResponse:
        """The caller's tenant's open hand-offs to a human."""
        caller = caller_of(request)
        if isinstance(caller, JSONResponse):
            return caller
        rows = await asyncio.to_thread(state.escalations, "open", tenant=caller.tenant)
        return EscalationList(data=[EscalationEntry.of(r) for r in rows])

    @app.post("/v1/chat/completions", response_model=None)
    async def chat_completions(request: Request, body: ChatCompletionRequest) -> Any:
        caller = caller_of(request)
        if isinstance(caller, JSONResponse):
            return caller
        charter = charters.get(body.model)
        if charter is not None and not caller.may_use(body.model):
            metrics.rejected.labels("403").inc()
            return error(
                403,
                f"this API key may not use the model {body.model!r}",
                "permission_error",
                "model",
            )
        if charter is None:
            metrics.rejected.labels("404").inc()
            return error(
                404,
                f"unknown model {body.model!r}; this gateway serves: {', '.join(charters)}",
                "not_found_error",
                "model",
            )
        try:
            turn = prepare(charter, body, memory)
        except Refused as exc:
            metrics.rejected.labels("400").inc()
            return error(400, str(exc), "invalid_request_error", exc.param)
        if charter.spec.memory.enabled:
            turn = await recalled(state, body.model, turn)
        if body.stream:
            return _stream(
                charter, body, turn, metrics, audit=audit, caller=caller, memory=memory, store=state
            )
        with turn_span(body.model, caller.tenant, stream=False) as span:
            try:
                reply = await charter.arespond(
                    turn.messages, user=caller.user(body.user), **turn.options()
                )
            except Exception as exc:  # the failure policy handles stage errors; not these
                await audit(caller, body.model, turn, None, stream=False, failure=repr(exc))
                return error(500, "the turn failed; it is in the audit log", "server_error")
            await kept(state, body.model, turn, reply)
            settle(charter, turn, reply, memory)
            span.record(reply)
        await audit(caller, body.model, turn, reply, stream=False)
        metrics.observe(body.model, reply, stream=False, guards=guards_ran(reply))
        limited = retry_after(reply)
        if limited is not None:
            metrics.rejected.labels("429").inc()
            response = error(429, reply.text, "rate_limit_error")
            response.headers["Retry-After"] = str(limited)
            return response
        calls = wire_calls(reply, turn)
        completion = ChatCompletion(
            id=f"chatcmpl-{uuid.uuid4().hex}",
            created=int(time.time()),
            model=body.model,
            choices=[
                Choice(
                    message=ChoiceMessage(
                        content=None if calls else reply.text,
                        tool_calls=calls or None,
                    ),
                    finish_reason=finish_reason(reply),
                )
            ],
            usage=WireUsage(
                prompt_tokens=reply.usage.prompt_tokens,
                completion_tokens=reply.usage.completion_tokens,
                total_tokens=reply.usage.prompt_tokens + reply.usage.completion_tokens,
            ),
            charter=charter_info(reply),
        )
        return Response(
            completion.model_dump_json(),  # pydantic's serialiser: no dict round trip
            media_type="application/json",
            headers={"X-Charter-Guards": ",".join(completion.charter.guards) or "none"},
        )

    return app


@asynccontextmanager
async def charter_lifespan(gateway: FastAPI) -> AsyncIterator[None]:
    """The start-up and shut-down of a gateway from `create_app`, for a parent app that mounts it.

    Starlette runs only the outermost app's lifespan, so the parent enters this in its own. Inside
    it the charters' models and guards load (then /readyz says ready) and their connection pools
    stay open; leaving it closes them.

        gateway = create_app(charters)
        app = FastAPI(lifespan=lambda app: charter_lifespan(gateway))
        app.mount("/charter", gateway)
    """
    async with gateway.router.lifespan_context(gateway):
        yield


def _stream(
    charter: Charter,
    body: ChatCompletionRequest,
    turn: Turn,
    metrics: GatewayMetrics,
    *,
    audit: Auditor,
    caller: Caller,
    memory: TurnMemory,
    store: GatewayRecords,
) -> StreamingResponse:
    """SSE in OpenAI's chunk format.

    Text arrives only once the output guards released it; the chunk with the finish reason carries
    the `charter` object, and the usage: with `stream_options.include_usage`, the usage comes
    instead in one more chunk, with no choices, as OpenAI sends it.
    """
    completion_id = f"chatcmpl-{uuid.uuid4().hex}"
    created = int(time.time())
    messages = turn.messages

    def chunk(
        delta: dict[str, Any], finish: str | None = None, *, choices: bool = True, **extra: Any
    ) -> str:
        data = {
            "id": completion_id,
            "object": "chat.completion.chunk",
            "created": created,
            "model": body.model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}] if choices else [],
            **({"usage": None} if turn.include_usage else {}),
            **extra,
        }
        return f"data: {json.dumps(data)}\n\n"

    async def events() -> AsyncIterator[str]:
        queue: asyncio.Queue[str | None] = asyncio.Queue()
        loop = asyncio.get_running_loop()

        def on_delta(text: str) -> None:
            loop.call_soon_threadsafe(queue.put_nowait, text)

        async def run() -> Reply:
            with turn_span(body.model, caller.tenant, stream=True) as span:
                try:
                    reply = await charter.arespond(
                        messages,
                        user=caller.user(body.user),
                        on_delta=on_delta,
                        **turn.options(),
                    )
                finally:
                    loop.call_soon_threadsafe(queue.put_nowait, None)
                await kept(store, body.model, turn, reply)
                settle(charter, turn, reply, memory)
                span.record(reply)
                return reply

        task = asyncio.create_task(run())
        yield chunk({"role": "assistant", "content": ""})
        sent = False
        while (piece := await queue.get()) is not None:
            sent = True
            yield chunk({"content": piece})
        try:
            reply = await task
        except Exception as exc:
            await audit(caller, body.model, turn, None, stream=True, failure=repr(exc))
            yield chunk({}, "error")
            yield "data: [DONE]\n\n"
            return
        await audit(caller, body.model, turn, reply, stream=True)
        metrics.observe(body.model, reply, stream=True, guards=guards_ran(reply))
        calls = wire_calls(reply, turn)
        if calls:
            deltas = [{"index": i, **c.model_dump()} for i, c in enumerate(calls)]
            yield chunk({"tool_calls": deltas})
        elif not sent and reply.text:
            yield chunk({"content": reply.text})  # a blocked turn's persona reply
        usage = {
            "prompt_tokens": reply.usage.prompt_tokens,
            "completion_tokens": reply.usage.completion_tokens,
            "total_tokens": reply.usage.prompt_tokens + reply.usage.completion_tokens,
        }
        info = charter_info(reply).model_dump()
        if turn.include_usage:
            yield chunk({}, finish_reason(reply), charter=info)
            yield chunk({}, usage=usage, choices=False)
        else:
            yield chunk({}, finish_reason(reply), usage=usage, charter=info)
        yield "data: [DONE]\n\n"

    return StreamingResponse(
        events(),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Charter-Guards": planned_guards(charter)},
    )
