"""The OpenAI-compatible gateway, built by `create_app` (no module-level state).

Each charter is a model, named by its id. `POST /v1/chat/completions` runs the whole turn
through the charter's pipeline: the same guards, critique and trace as `charter chat`, on the
plain and the streamed path alike (a streamed reply is released only after the output guards
passed it). Every response says which guards ran, in the `X-Charter-Guards` header and in
the `charter` object of the body (the last SSE chunk, when streaming).
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

from charter.assistant import Charter, Reply
from charter.gateway.auth import LOCAL_TENANT, Caller, authenticate
from charter.gateway.metrics import GatewayMetrics
from charter.gateway.telemetry import turn_span
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
    WireMessage,
    WireToolCall,
    WireUsage,
)
from charter.models.base import Message
from charter.store.records import AuditRecord, GatewayRecords
from charter.store.sqlite import Store
from charter.tools.registry import ToolError, client_tools

GUARD_STAGES = ("input_guards", "output_guards")


def error(status: int, message: str, kind: str, param: str | None = None) -> JSONResponse:
    body = ErrorResponse(error=ErrorBody(message=message, type=kind, param=param))
    return JSONResponse(body.model_dump(), status_code=status)


def guards_ran(reply: Reply) -> list[str]:
    """`input:injection=allow`, ... for every guard verdict of the turn, in order."""
    out: list[str] = []
    for record in reply.trace.records:
        if record.stage not in GUARD_STAGES:
            continue
        side = record.stage.split("_")[0]
        for verdict in record.detail.get("guards", []):
            out.append(f"{side}:{verdict['guard']}={verdict['action']}")
    return out


def planned_guards(charter: Charter) -> str:
    """The guards the charter enables (streamed responses send headers before they run;
    the verdicts are in the last chunk)."""
    guards = charter.spec.guards
    names = [f"input:{g}" for g in guards.input] + [f"output:{g}" for g in guards.output]
    return ",".join(names) or "none"


def to_turn(wire: list[WireMessage]) -> list[Message]:
    """The request's messages as the pipeline reads them. A tool result becomes a user-side
    message that says where it comes from (so the input guards check it like any untrusted
    text: indirect injection); an assistant's tool calls become a note of what it called."""
    names = {c.id: c.function.name for m in wire for c in m.tool_calls or []}
    messages: list[Message] = []
    for m in wire:
        if m.role == "tool":
            name = names.get(m.tool_call_id or "", "a tool")
            content = f"(Result of {name}, from a tool, not from the user: {m.content})"
            messages.append(Message(role="user", content=content))
        elif m.role == "assistant" and m.tool_calls:
            called = ", ".join(f"{c.function.name}({c.function.arguments})" for c in m.tool_calls)
            messages.append(Message(role="assistant", content=m.content or f"(I called {called})"))
        else:
            messages.append(Message(role=m.role, content=m.content or ""))
    return messages


def wire_calls(reply: Reply) -> list[WireToolCall]:
    return [
        WireToolCall(
            id=f"call_{uuid.uuid4().hex[:12]}",
            function=WireFunctionCall(name=c["name"], arguments=json.dumps(c["arguments"])),
        )
        for c in reply.tool_calls
    ]


def finish_reason(reply: Reply) -> Literal["stop", "content_filter", "tool_calls"]:
    if reply.blocked:
        return "content_filter"
    return "tool_calls" if reply.tool_calls else "stop"


def retry_after(reply: Reply) -> int | None:
    """Seconds to wait, when the rate limit stopped this turn."""
    if "rate_limit" not in reply.trace:
        return None
    record = reply.trace["rate_limit"]
    if record.verdict != "block":
        return None
    return max(1, math.ceil(float(record.detail.get("retry_after_s", 1))))


def charter_info(reply: Reply) -> CharterInfo:
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
    async def __call__(
        self,
        caller: Caller,
        charter_id: str,
        body: ChatCompletionRequest,
        reply: Reply | None,
        *,
        stream: bool,
        failure: str | None = None,
    ) -> None: ...


def _build_pipeline(charter: Charter) -> None:
    _ = charter.pipeline  # loads the model and the guards


def create_app(
    charters: Mapping[str, Charter],
    *,
    load: bool = True,
    store: GatewayRecords | None = None,
    report: Path | None = None,
) -> FastAPI:
    """The gateway over `charters` (id -> Charter). With `load`, every charter's model and
    guards load at start-up, and /readyz answers 200 once they have. `store` (default: the
    Charter home's database) holds the API keys, the audit log and escalations. When it has
    any live key, every /v1 call needs one; otherwise every call is the `local` tenant (and
    `charter serve` binds to loopback only)."""
    ready = asyncio.Event()
    created = int(time.time())
    metrics = GatewayMetrics()
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
        body: ChatCompletionRequest,
        reply: Reply | None,
        *,
        stream: bool,
        failure: str | None = None,
    ) -> None:
        """One audit record per turn (and the turn's escalations, under the caller's tenant),
        written before the response completes."""
        record = AuditRecord(
            tenant=caller.tenant,
            key_id=caller.key_id,
            charter_id=charter_id,
            stream=stream,
            request=[{"role": m.role, "content": m.content or ""} for m in body.messages],
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
        for charter in charters.values():
            charter.share_connections()  # one keep-alive pool per upstream, on this loop
            if load:
                await asyncio.to_thread(_build_pipeline, charter)
        ready.set()
        try:
            yield
        finally:
            for charter in charters.values():
                await charter.aclose()

    app = FastAPI(title="Charter gateway", version="1", lifespan=lifespan)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        metrics.rejected.labels("400").inc()
        first = exc.errors()[0] if exc.errors() else {}
        where = ".".join(str(p) for p in first.get("loc", ()) if p != "body")
        return error(
            400,
            f"invalid request: {where or 'body'}: {first.get('msg', 'malformed')}",
            "invalid_request_error",
            where or None,
        )

    page = resources.files("charter.gateway").joinpath("playground.html").read_text("utf-8")

    @app.get("/", include_in_schema=False)
    async def playground() -> HTMLResponse:
        """The web playground: chat with a charter, each turn's trace, the escalation queue
        and the latest eval report. It holds no data: it calls the API like any client."""
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
        if any(m.role == "system" for m in body.messages):
            metrics.rejected.labels("400").inc()
            return error(
                400,
                "system messages come from the charter; remove them from the request",
                "invalid_request_error",
                "messages",
            )
        if body.messages[-1].role not in ("user", "tool"):
            metrics.rejected.labels("400").inc()
            return error(
                400,
                "the last message must be from the user (or a tool result)",
                "invalid_request_error",
                "messages",
            )
        functions = [t.function.model_dump() for t in body.tools or []]
        if body.tool_choice == "none":
            functions = []
        try:
            client_tools(functions)  # a schema that is not JSON Schema is the caller's error
        except (ToolError, ValueError) as exc:
            metrics.rejected.labels("400").inc()
            return error(400, f"invalid tools: {exc}", "invalid_request_error", "tools")
        messages = to_turn(body.messages)
        options: dict[str, Any] = {
            "client_tools": functions,
            "json_schema": body.response_format.schema_or_none() if body.response_format else None,
        }
        if body.stream:
            return _stream(
                charter, body, messages, metrics, audit=audit, caller=caller, options=options
            )
        with turn_span(body.model, caller.tenant, stream=False) as span:
            try:
                reply = await charter.arespond(messages, user=body.user or caller.tenant, **options)
            except Exception as exc:  # the failure policy handles stage errors; not these
                await audit(caller, body.model, body, None, stream=False, failure=repr(exc))
                return error(500, "the turn failed; it is in the audit log", "server_error")
            span.record(reply)
        await audit(caller, body.model, body, reply, stream=False)
        metrics.observe(body.model, reply, stream=False, guards=guards_ran(reply))
        limited = retry_after(reply)
        if limited is not None:
            metrics.rejected.labels("429").inc()
            response = error(429, reply.text, "rate_limit_error")
            response.headers["Retry-After"] = str(limited)
            return response
        completion = ChatCompletion(
            id=f"chatcmpl-{uuid.uuid4().hex}",
            created=int(time.time()),
            model=body.model,
            choices=[
                Choice(
                    message=ChoiceMessage(
                        content=None if reply.tool_calls else reply.text,
                        tool_calls=wire_calls(reply) or None,
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


def _stream(
    charter: Charter,
    body: ChatCompletionRequest,
    messages: list[Message],
    metrics: GatewayMetrics,
    *,
    audit: Auditor,
    caller: Caller,
    options: dict[str, Any],
) -> StreamingResponse:
    """SSE in OpenAI's chunk format. Text arrives only once the output guards released it;
    the last chunk carries the finish reason, the usage and the `charter` object."""
    completion_id = f"chatcmpl-{uuid.uuid4().hex}"
    created = int(time.time())

    def chunk(delta: dict[str, Any], finish: str | None = None, **extra: Any) -> str:
        data = {
            "id": completion_id,
            "object": "chat.completion.chunk",
            "created": created,
            "model": body.model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
            **extra,
        }
        return f"data: {json.dumps(data)}\n\n"

    async def events() -> AsyncIterator[str]:
        queue: asyncio.Queue[str | None] = asyncio.Queue()
        loop = asyncio.get_running_loop()

        def on_delta(text: str) -> None:
            loop.call_soon_threadsafe(queue.put_nowait, text)

        async def turn() -> Reply:
            with turn_span(body.model, caller.tenant, stream=True) as span:
                try:
                    reply = await charter.arespond(
                        messages, user=body.user or caller.tenant, on_delta=on_delta, **options
                    )
                finally:
                    loop.call_soon_threadsafe(queue.put_nowait, None)
                span.record(reply)
                return reply

        task = asyncio.create_task(turn())
        yield chunk({"role": "assistant", "content": ""})
        sent = False
        while (piece := await queue.get()) is not None:
            sent = True
            yield chunk({"content": piece})
        try:
            reply = await task
        except Exception as exc:
            await audit(caller, body.model, body, None, stream=True, failure=repr(exc))
            yield chunk({}, "error")
            yield "data: [DONE]\n\n"
            return
        await audit(caller, body.model, body, reply, stream=True)
        metrics.observe(body.model, reply, stream=True, guards=guards_ran(reply))
        calls = wire_calls(reply)
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
        yield chunk(
            {},
            finish_reason(reply),
            usage=usage,
            charter=charter_info(reply).model_dump(),
        )
        yield "data: [DONE]\n\n"

    return StreamingResponse(
        events(),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Charter-Guards": planned_guards(charter)},
    )
