"""From an OpenAI chat-completions request to a Charter turn.

Every field a client may rely on is either honoured or refused with a 400 that names it
and says why; none is dropped silently:
- `system` and `developer` messages become operator instructions (stages/operator.py),
  or a 400 when the charter says `gateway.client_system: reject`;
- `content` may be an array of parts: text parts are joined with newlines; any other part
  (image_url, input_audio, file) is refused, naming the message, the part and its type;
- `temperature`, `top_p`, `stop` and `seed` go to the model call that writes the reply;
  `max_tokens` / `max_completion_tokens` may lower the charter's `max_tokens`, not raise it;
- `n` must be 1 and `logprobs` is not available; `stream_options` needs `stream`;
- `tool_choice`: auto, none, required, or one named function (which must be in `tools`);
  `parallel_tool_calls: false` keeps the first call only;
- `user` keys the rate limit; `metadata` is recorded in the trace;
- the blocked streak and the persona re-anchor come from the history sent (history.py);
  the memory of its left-out messages, from the store (recall.py).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, Literal

from charter.gateway.history import ConversationState, TurnMemory, derive
from charter.gateway.wire import TEXT_PARTS, ChatCompletionRequest, NamedToolChoice, WireMessage
from charter.models.base import Message, Sampling
from charter.tools.registry import ToolError, client_tools

if TYPE_CHECKING:
    from charter.assistant import Charter
    from charter.persona.memory import ConversationMemory

OPERATOR_ROLES = ("system", "developer")


class Refused(Exception):
    """A request the gateway will not run, and why (a 400)."""

    def __init__(self, message: str, param: str | None) -> None:
        super().__init__(message)
        self.param = param


@dataclass(frozen=True)
class Turn:
    """What the charter's pipeline gets for one request, and what the gateway records."""

    messages: list[Message]
    operator_instructions: str | None
    functions: list[dict[str, Any]]
    tool_choice: Literal["auto", "required"]
    json_schema: dict[str, Any] | None
    sampling: Sampling
    conversation: ConversationState
    include_usage: bool
    single_call: bool
    transcript: list[dict[str, str]]
    """The request's messages as text, roles kept (the audit log's copy)."""
    detail: dict[str, Any]
    """The `gateway` record of the turn's trace."""
    memory: ConversationMemory | None = None
    """The memory of the history's left-out messages the store keeps (recall.py)."""

    def options(self) -> dict[str, Any]:
        """The keyword arguments of `Charter.arespond` (besides messages, user, on_delta)."""
        return {
            "client_tools": self.functions,
            "tool_choice": self.tool_choice,
            "json_schema": self.json_schema,
            "operator_instructions": self.operator_instructions,
            "sampling": self.sampling,
            "carry": replace(self.conversation.carry, memory=self.memory),
        }


def message_text(message: WireMessage, index: int) -> str:
    """A message's content as text.

    A string as it is; an array's text parts joined with newlines. Any other part raises Refused,
    naming the message, the part and its type.
    """
    content = message.content
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    texts: list[str] = []
    for at, part in enumerate(content):
        where = f"messages[{index}].content[{at}]"
        if part.type not in TEXT_PARTS:
            raise Refused(
                f"{where}: {part.type!r} parts are not supported: this gateway's charters read "
                "text only (no images, audio or files); send the content as text",
                where,
            )
        value = part.text if part.type == "text" else part.refusal
        if value is None:
            raise Refused(f"{where}: a {part.type!r} part needs its {part.type!r} field", where)
        texts.append(value)
    return "\n".join(texts)


def to_turn(wire: list[WireMessage], texts: list[str]) -> list[Message]:
    """The request's messages (no operator ones) as the pipeline reads them.

    A tool result becomes a user-side message that says where it comes from (so the input guards
    check it like any untrusted text: indirect injection); an assistant's tool calls become a note
    of what it called.
    """
    names = {c.id: c.function.name for m in wire for c in m.tool_calls or []}
    messages: list[Message] = []
    for m, text in zip(wire, texts, strict=True):
        if m.role == "tool":
            name = names.get(m.tool_call_id or "", "a tool")
            content = f"(Result of {name}, from a tool, not from the user: {text})"
            messages.append(Message(role="user", content=content))
        elif m.role == "assistant" and m.tool_calls:
            called = ", ".join(f"{c.function.name}({c.function.arguments})" for c in m.tool_calls)
            messages.append(Message(role="assistant", content=text or f"(I called {called})"))
        elif m.role in ("user", "assistant"):
            messages.append(Message(role=m.role, content=text))
    return messages


def answer_limit(charter: Charter) -> tuple[int, str]:
    """The most tokens a reply may have, and the field that sets it.

    The limit is the largest `max_tokens` of the models that may answer.
    """
    models = charter.spec.models
    if models.strong is not None and models.strong.max_tokens > models.chat.max_tokens:
        return models.strong.max_tokens, "models.strong.max_tokens"
    return models.chat.max_tokens, "models.chat.max_tokens"


def sampling_of(charter: Charter, body: ChatCompletionRequest) -> Sampling:
    """The sampling settings the request asks for: temperature, top_p, stop, seed and max_tokens.

    Raises Refused for `n` above 1, for logprobs, for `max_tokens` and `max_completion_tokens` that
    disagree, and for a token limit above the charter's.
    """
    if body.n is not None and body.n > 1:
        raise Refused(
            f"n={body.n} is not supported: each request is one turn through the charter, with "
            "one choice; send n=1 (or leave it out) and repeat the request for more",
            "n",
        )
    if body.logprobs or (body.top_logprobs or 0) > 0:
        param = "logprobs" if body.logprobs else "top_logprobs"
        raise Refused(
            f"{param} is not supported: the reply is checked and may be revised after the "
            "model wrote it, so the model's token probabilities would not describe it",
            param,
        )
    asked = body.max_completion_tokens or body.max_tokens
    if (
        body.max_tokens is not None
        and body.max_completion_tokens is not None
        and body.max_tokens != body.max_completion_tokens
    ):
        raise Refused(
            f"max_tokens ({body.max_tokens}) and max_completion_tokens "
            f"({body.max_completion_tokens}) disagree; send one of them",
            "max_completion_tokens",
        )
    limit, field = answer_limit(charter)
    if asked is not None and asked > limit:
        param = "max_completion_tokens" if body.max_completion_tokens else "max_tokens"
        raise Refused(
            f"{param}={asked} is above this charter's limit of {limit} tokens ({field}); "
            f"send at most {limit}, or leave it out for {limit}",
            param,
        )
    stop = (body.stop,) if isinstance(body.stop, str) else tuple(body.stop or ())
    return Sampling(
        temperature=body.temperature,
        top_p=body.top_p,
        max_tokens=asked,
        stop=stop,
        seed=body.seed,
    )


def tools_of(
    body: ChatCompletionRequest,
) -> tuple[list[dict[str, Any]], Literal["auto", "required"]]:
    """The functions offered this turn and whether a call is required."""
    functions = [t.function.model_dump() for t in body.tools or []]
    choice = body.tool_choice
    mode: Literal["auto", "required"] = "auto"
    if choice == "none":
        return [], mode
    if choice == "required" or isinstance(choice, NamedToolChoice):
        if not functions:
            raise Refused("tool_choice asks for a tool call, but the request has no tools", "tools")
        mode = "required"
    if isinstance(choice, NamedToolChoice):
        name = choice.function.name
        named = [f for f in functions if f["name"] == name]
        if not named:
            offered = ", ".join(f["name"] for f in functions)
            raise Refused(
                f"tool_choice names the function {name!r}, which is not in tools ({offered})",
                "tool_choice",
            )
        functions = named
    try:
        client_tools(functions)  # a schema that is not JSON Schema is the caller's error
    except (ToolError, ValueError) as exc:
        raise Refused(f"invalid tools: {exc}", "tools") from None
    return functions, mode


def prepare(charter: Charter, body: ChatCompletionRequest, memory: TurnMemory) -> Turn:
    """The turn for `body`, or `Refused`."""
    texts = [message_text(m, i) for i, m in enumerate(body.messages)]
    operator_at = [i for i, m in enumerate(body.messages) if m.role in OPERATOR_ROLES]
    if operator_at and charter.spec.gateway.client_system == "reject":
        first = operator_at[0]
        raise Refused(
            f"messages[{first}] is a {body.messages[first].role} message, and this charter "
            "takes none (gateway.client_system: reject): its instructions come from the "
            "charter file; remove the system and developer messages",
            "messages",
        )
    rest = [
        (m, t) for m, t in zip(body.messages, texts, strict=True) if m.role not in OPERATOR_ROLES
    ]
    if not rest or rest[-1][0].role not in ("user", "tool"):
        raise Refused("the last message must be from the user (or a tool result)", "messages")
    if body.stream_options is not None and not body.stream:
        raise Refused("stream_options is only allowed with stream: true", "stream_options")
    sampling = sampling_of(charter, body)
    functions, tool_choice = tools_of(body)
    operator = "\n\n".join(texts[i].strip() for i in operator_at if texts[i].strip()) or None
    messages = to_turn([m for m, _ in rest], [t for _, t in rest])
    conversation = derive(charter, messages, memory)
    include_usage = bool(body.stream and body.stream_options and body.stream_options.include_usage)
    detail: dict[str, Any] = {"conversation": conversation.to_dict()}
    if operator_at:
        detail["operator_messages"] = len(operator_at)
    if sampling.to_dict():
        detail["sampling"] = sampling.to_dict()
    if body.tool_choice is not None:
        choice = body.tool_choice
        detail["tool_choice"] = (
            choice if isinstance(choice, str) else {"function": choice.function.name}
        )
    if body.parallel_tool_calls is False:
        detail["parallel_tool_calls"] = False
    if body.response_format is not None:
        detail["response_format"] = body.response_format.type
    if body.user is not None:
        detail["user"] = body.user
    if body.metadata:
        detail["metadata"] = dict(body.metadata)
    if include_usage:
        detail["include_usage"] = True
    return Turn(
        messages=messages,
        operator_instructions=operator,
        functions=functions,
        tool_choice=tool_choice,
        json_schema=body.response_format.schema_or_none() if body.response_format else None,
        sampling=sampling,
        conversation=conversation,
        include_usage=include_usage,
        single_call=body.parallel_tool_calls is False,
        transcript=[
            {"role": m.role, "content": t} for m, t in zip(body.messages, texts, strict=True)
        ],
        detail=detail,
    )
