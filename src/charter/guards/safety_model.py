"""The `safety_model` guard: ask a dedicated safety model whether a message or a reply is unsafe.

The safety models are Llama Guard, Qwen3Guard, Granite Guardian and ShieldGemma.

It sits at the end of the cascade, after the cheap classifiers: one model call per check
(`cost = 100`, like the LLM judge). With `when: uncertain` the guard stage asks it only when
an earlier guard's verdict has `detail["uncertain"]` true; the guard itself only exposes
`when` and always answers when asked.

Each format is a small class with two halves: `question` builds what to send and `read`
maps the model's answer to Charter's hazard names (`charter.guards.hazards`). The
conversation goes out as plain chat messages (the user's latest message; on the output side
that message and the reply): every one of these models ships a chat template that wraps
the messages in its own task prompt (Llama Guard's category list, ShieldGemma's policy
question, ...), and Ollama, vLLM and llama.cpp apply it. Writing the task prompt into a
user message ourselves would wrap it twice on those servers.

An answer that does not parse, an HTTP error and a timeout all raise `ModelError`; the guard
runner turns that into a block (the default failure policy is closed) with the error in the
trace. Nothing is retried: a retry would spend the guard's time budget on a server that
already failed once.
"""

from __future__ import annotations

import math
import os
import re
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import httpx

from charter.errors import CharterError, ModelError, ModelNotAvailableError
from charter.guards.base import Direction, GuardVerdict, Subject, allow, block
from charter.guards.hazards import LLAMA_GUARD_CODES
from charter.models.base import ChatModel, ChatRequest, Message, latest_user
from charter.spec.models import CharterSpec, Harm, Hazard, SafetyModel

RAW_CHARS = 200
"""How much of the model's answer the verdict keeps."""


@dataclass(frozen=True)
class Question:
    """What one check sends."""

    messages: tuple[Message, ...]
    max_tokens: int = 20
    extra_body: dict[str, Any] = field(default_factory=dict)
    """Request fields only an HTTP server reads (logprobs, chat template arguments)."""


@dataclass(frozen=True)
class Answer:
    """A model's answer: its text, and its first token's candidates if the server sent logprobs."""

    text: str
    first_token: dict[str, float] = field(default_factory=dict)
    """Probability of each candidate first token (from the server's `top_logprobs`; token
    text stripped), or empty when the server gave no logprobs."""


@dataclass(frozen=True)
class Reading:
    """A format's reading of an answer."""

    unsafe: bool
    score: float
    categories: tuple[Hazard, ...] = ()
    codes: tuple[str, ...] = ()
    """The model's own labels (S1, 'Violent', ...)."""
    detail: dict[str, Any] = field(default_factory=dict)


class SafetyFormat(Protocol):
    """A safety model's format: `question` builds what to send, `read` maps the answer."""

    name: str

    def question(self, conversation: Sequence[Message], direction: Direction) -> Question: ...

    def read(self, answer: Answer) -> Reading: ...


def unreadable(format_name: str, text: str, expected: str) -> ModelError:
    """The ModelError for an answer a format cannot read, quoting up to RAW_CHARS of it."""
    return ModelError(
        f"safety_model ({format_name}) answered {text[:RAW_CHARS]!r}, expected {expected}"
    )


# --- Llama Guard 3 and 4 -------------------------------------------------------------------


class LlamaGuardFormat:
    """Llama Guard's answers: `safe`, or `unsafe` and a second line of comma-separated codes.

    Llama Guard's template (the S1-S14 category list, 'User' or 'Agent' chosen by the last
    message's role) is applied by the server from plain user/assistant messages.
    """

    name = "llama_guard"

    def question(self, conversation: Sequence[Message], direction: Direction) -> Question:
        # Up to 14 codes can come back ("S1,S2,...", ~3 tokens each).
        return Question(tuple(conversation), max_tokens=48)

    def read(self, answer: Answer) -> Reading:
        lines = [line.strip() for line in answer.text.strip().splitlines() if line.strip()]
        head = lines[0].lower() if lines else ""
        if head == "safe":
            return Reading(unsafe=False, score=0.0)
        # The codes belong on the second line; a server that folds them onto the first
        # ("unsafe S1") is read the same way.
        unsafe = re.fullmatch(r"unsafe[\s,:]*((?:s\d+[\s,]*)*)", head)
        if unsafe is None:
            raise unreadable(self.name, answer.text, "'safe' or 'unsafe'")
        listed = unsafe.group(1) + " " + (lines[1] if len(lines) > 1 else "")
        codes = tuple(dict.fromkeys(re.findall(r"S\d+", listed.upper())))
        return Reading(unsafe=True, score=1.0, categories=_hazards(codes), codes=codes)


def _hazards(codes: Sequence[str]) -> tuple[Hazard, ...]:
    found: list[Hazard] = []
    for code in codes:
        hazard = LLAMA_GUARD_CODES.get(code, "other")
        if hazard not in found:
            found.append(hazard)
    return tuple(found) or ("other",)


# --- Qwen3Guard-Gen ------------------------------------------------------------------------

QWEN3GUARD_CATEGORIES: dict[str, Hazard | None] = {
    "violent": "violent_crime",
    "non-violent illegal acts": "nonviolent_crime",
    "sexual content or sexual acts": "sexual_content",
    "pii": "privacy",
    "suicide & self-harm": "self_harm",
    # Bias, hate speech, harassment, insults and defamation together: wider than any one
    # of Charter's hazards.
    "unethical acts": "other",
    # Qwen3Guard's definition: false information about governments, historical events or
    # public figures.
    "politically sensitive topics": "misinformation",
    "copyright violation": "ip",
    # An attack on the assistant rather than a harm; the verdict says `jailbreak: true`.
    "jailbreak": "other",
    "none": None,
}


class Qwen3GuardFormat:
    """Qwen3Guard-Gen answers `Safety: Safe|Unsafe|Controversial` and `Categories: ...`.

    For a reply it also answers `Refusal: Yes|No`. Controversial blocks only with `strict`
    sensitivity.
    """

    name = "qwen3guard"

    def __init__(self, *, strict: bool = False) -> None:
        self.strict = strict

    def question(self, conversation: Sequence[Message], direction: Direction) -> Question:
        return Question(tuple(conversation), max_tokens=64)

    def read(self, answer: Answer) -> Reading:
        safety = re.search(r"Safety:\s*(Safe|Unsafe|Controversial)\b", answer.text, re.I)
        if safety is None:
            raise unreadable(self.name, answer.text, "'Safety: Safe|Unsafe|Controversial'")
        label = safety.group(1).capitalize()
        listed = re.search(r"Categories:\s*(.*)", answer.text, re.I)
        codes = tuple(
            name.strip()
            for name in (listed.group(1).split(",") if listed else [])
            if name.strip() and name.strip().lower() != "none"
        )
        categories: list[Hazard] = []
        for code in codes:
            hazard = QWEN3GUARD_CATEGORIES.get(code.lower(), "other") or "other"
            if hazard not in categories:
                categories.append(hazard)
        detail: dict[str, Any] = {"safety": label}
        if any(code.lower() == "jailbreak" for code in codes):
            detail["jailbreak"] = True
        refusal = re.search(r"Refusal:\s*(Yes|No)\b", answer.text, re.I)
        if refusal is not None:
            detail["refusal"] = refusal.group(1).lower() == "yes"
        if label == "Safe":
            return Reading(unsafe=False, score=0.0, codes=codes, detail=detail)
        if label == "Controversial":
            detail["controversial"] = True
            if not self.strict:
                return Reading(unsafe=False, score=0.5, codes=codes, detail=detail)
        score = 1.0 if label == "Unsafe" else 0.5
        return Reading(True, score, tuple(categories) or ("other",), codes, detail)


# --- Granite Guardian 3.x ------------------------------------------------------------------


class GraniteGuardianFormat:
    """Granite Guardian answers `Yes` (the risk is present) or `No`.

    3.2 adds `<confidence> High </confidence>`, 3.3 answers `<score> yes </score>`.

    The risk asked about is `harm`, which is the default of Granite Guardian's chat
    templates when no risk is named (Ollama's and IBM's GGUF templates read the risk from a
    system message, the Hugging Face template vLLM applies reads `guardian_config`). So the
    guard sends the conversation alone: no system message, because the Hugging Face 3.x
    template reads a three-message conversation as [tools, user, assistant].
    """

    name = "granite_guardian"

    def question(self, conversation: Sequence[Message], direction: Direction) -> Question:
        return Question(tuple(conversation), max_tokens=20)

    def read(self, answer: Answer) -> Reading:
        # 3.3 puts the verdict in <score> (after a <think> block in thinking mode);
        # earlier versions answer it as the first word.
        found = re.search(r"<score>\s*(\w+)\s*</score>", answer.text, re.I) or re.match(
            r"\s*([A-Za-z]+)", answer.text
        )
        word = found.group(1).lower() if found else ""
        if word not in ("yes", "no"):
            raise unreadable(self.name, answer.text, "'Yes' or 'No'")
        detail: dict[str, Any] = {"risk": "harm"}
        confidence = re.search(r"<confidence>\s*(\w+)\s*</confidence>", answer.text, re.I)
        if confidence is not None:
            detail["confidence"] = confidence.group(1)
        if word == "no":
            return Reading(unsafe=False, score=0.0, codes=("No",), detail=detail)
        return Reading(True, 1.0, ("other",), ("Yes",), detail)


# --- ShieldGemma ---------------------------------------------------------------------------

SHIELDGEMMA_POLICIES: dict[str, str] = {
    "No Dangerous Content": (
        "content that harming oneself and/or others (e.g., accessing or building firearms "
        "and explosive devices, promotion of terrorism, instructions for suicide)."
    ),
    "No Harassment": (
        "content that is malicious, intimidating, bullying, or abusive content targeting "
        "another individual (e.g., physical threats, denial of tragic events, disparaging "
        "victims of violence)."
    ),
    "No Hate Speech": (
        "content that targeting identity and/or protected attributes (e.g., racial slurs, "
        "promotion of discrimination, calls to violence against protected groups) or "
        "dehumanizing/belittling/vilifying on the bases of race, ethnicity, religion, "
        "disability, age, nationality, veteran status, sexual orientation, gender, gender "
        "identity, caste, or any other protected status. We do allow content that includes "
        "a reference to a protected individual or group in a positive manner."
    ),
    "No Sexually Explicit Information": (
        "content that contains references to sexual acts or other lewd content (e.g., "
        "sexually graphic descriptions, content aimed at causing arousal). Medical or "
        "scientific terms related to human anatomy or sex education are permitted."
    ),
}
"""ShieldGemma's four published policies, worded as its model card words them (the wording
is the model's, grammar included; only the sentence's subject differs between a prompt and
a reply, see `shieldgemma_guideline`)."""


def shieldgemma_guideline(direction: Direction) -> str:
    """The policies as ShieldGemma's prompt lists them, one `* "Name": ...` line each."""
    subject = (
        "The prompt shall not contain or seek generation of"
        if direction == "input"
        else "The chatbot shall not generate"
    )
    return "\n".join(f'* "{name}": {subject} {text}' for name, text in SHIELDGEMMA_POLICIES.items())


class ShieldGemmaFormat:
    """ShieldGemma answers whether the message violates its policies.

    The answer starts with `Yes` or `No`. When the server returns logprobs for the first token,
    the probability of Yes (against No) is compared with `threshold` instead.

    The policy question ("You are a policy expert trying to help determine whether a user
    prompt is in violation of the defined safety policies ... Does the human question
    violate the above principle?") comes from the chat template: Ollama's `shieldgemma`
    template asks about all four policies itself; the Hugging Face template (the one vLLM
    applies) takes the policies as a `guideline` argument, sent here in
    `chat_template_kwargs` (as the model card calls it; not tried against a running vLLM).
    One question covers all four policies, so a Yes cannot say which: its category is
    `other`.
    """

    name = "shieldgemma"

    def __init__(self, *, threshold: float = 0.5) -> None:
        self.threshold = threshold

    def question(self, conversation: Sequence[Message], direction: Direction) -> Question:
        return Question(
            tuple(conversation),
            max_tokens=5,
            extra_body={
                "logprobs": True,
                "top_logprobs": 5,
                "chat_template_kwargs": {"guideline": shieldgemma_guideline(direction)},
            },
        )

    def read(self, answer: Answer) -> Reading:
        first = re.match(r"\s*([A-Za-z]+)", answer.text)
        word = first.group(1).lower() if first else ""
        if word not in ("yes", "no"):
            raise unreadable(self.name, answer.text, "an answer starting with 'Yes' or 'No'")
        detail: dict[str, Any] = {"policies": list(SHIELDGEMMA_POLICIES)}
        p_yes = _p_yes(answer.first_token)
        if p_yes is None:
            unsafe, score = word == "yes", 1.0 if word == "yes" else 0.0
        else:
            unsafe, score = p_yes >= self.threshold, p_yes
            detail |= {"p_yes": round(p_yes, 4), "threshold": self.threshold}
        if not unsafe:
            return Reading(unsafe=False, score=score, codes=(word.capitalize(),), detail=detail)
        return Reading(True, score, ("other",), (word.capitalize(),), detail)


def _p_yes(first_token: dict[str, float]) -> float | None:
    """P(Yes) against P(No) for the first token, as ShieldGemma's model card scores it.

    The card's score is a softmax over the two; with only one of them among the top logprobs,
    its own probability (None with neither).
    """
    yes = sum(p for token, p in first_token.items() if token.lower() == "yes")
    no = sum(p for token, p in first_token.items() if token.lower() == "no")
    if yes and no:
        return yes / (yes + no)
    if yes:
        return yes
    if no:
        return 1.0 - no
    return None


# --- backends ------------------------------------------------------------------------------


class _Backend(Protocol):
    def ask(self, question: Question) -> Answer: ...


class HTTPBackend:
    """POST to `{base_url}/chat/completions` of an OpenAI-compatible server.

    A client per call: the `Guard` protocol has no close hook, and a client kept on the
    guard would leave its sockets to the garbage collector.
    """

    def __init__(
        self, *, base_url: str, model: str, format_name: str, timeout_s: float, api_key: str | None
    ) -> None:
        self.url = base_url.rstrip("/") + "/chat/completions"
        self.model = model
        self.format_name = format_name
        self.timeout_s = timeout_s
        self.headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}

    def ask(self, question: Question) -> Answer:
        body = {
            "model": self.model,
            "messages": [m.to_wire() for m in question.messages],
            "temperature": 0,
            "max_tokens": question.max_tokens,
            "stream": False,
            **question.extra_body,
        }
        where = f"safety_model ({self.format_name}): {self.url}"
        try:
            with httpx.Client(timeout=self.timeout_s, headers=self.headers) as client:
                response = client.post(self.url, json=body)
        except httpx.TimeoutException as exc:
            raise ModelError(f"{where} timed out after {self.timeout_s:g} s") from exc
        except httpx.HTTPError as exc:
            raise ModelError(f"{where} failed: {exc}") from exc
        if response.status_code >= 400:
            raise ModelError(
                f"{where} answered HTTP {response.status_code}: {response.text[:RAW_CHARS]}"
            )
        try:
            choice = response.json()["choices"][0]
            content = choice["message"]["content"]
        except (ValueError, KeyError, IndexError, TypeError) as exc:
            raise ModelError(
                f"{where} answered something that is not a chat completion: "
                f"{response.text[:RAW_CHARS]!r}"
            ) from exc
        return Answer(str(content or ""), _first_token(choice.get("logprobs")))


def _first_token(logprobs: Any) -> dict[str, float]:
    """The first generated token's candidates from an OpenAI `logprobs` object.

    Logprobs are an extra that not every server sends, so a shape we do not know reads as none.
    """
    try:
        first = logprobs["content"][0]
        candidates = [first, *first.get("top_logprobs", [])]
        found: dict[str, float] = {}
        for item in candidates:
            token = str(item["token"]).strip()
            found[token] = max(found.get(token, 0.0), math.exp(float(item["logprob"])))
        return found
    except (TypeError, KeyError, IndexError, ValueError, AttributeError):
        return {}


class LocalBackend:
    """A GGUF file run in-process, loaded on first use (loading takes seconds).

    The GGUF's own chat template is applied; logprobs are not available, so ShieldGemma is not
    supported here (see `SafetyModelGuard`).
    """

    def __init__(self, load: Callable[[], ChatModel]) -> None:
        self._load = load
        self._model: ChatModel | None = None
        self._lock = threading.Lock()

    def ask(self, question: Question) -> Answer:
        with self._lock:
            if self._model is None:
                self._model = self._load()
            model = self._model
        request = ChatRequest(
            messages=question.messages, max_tokens=question.max_tokens, temperature=0.0
        )
        return Answer(model.complete(request).text)


def _gguf_loader(path: Path) -> Callable[[], ChatModel]:
    def load() -> ChatModel:
        from charter.models.local import LocalModel

        return LocalModel(path, name=path.stem)

    return load


# --- the guard -----------------------------------------------------------------------------


def make_format(spec: SafetyModel, harm: Harm) -> SafetyFormat:
    """The format for `spec.format`; Qwen3Guard is strict when the harm sensitivity is."""
    if spec.format == "llama_guard":
        return LlamaGuardFormat()
    if spec.format == "qwen3guard":
        return Qwen3GuardFormat(strict=harm.sensitivity == "strict")
    if spec.format == "granite_guardian":
        return GraniteGuardianFormat()
    return ShieldGemmaFormat(threshold=spec.threshold)


class SafetyModelGuard:
    """Blocks what the safety model calls unsafe, unless the charter allows every category.

    The model is asked over HTTP when `spec.base_url` is set, else `spec.model` is a .gguf file
    run in-process. A setup that cannot work raises CharterError (ModelNotAvailableError for a
    missing file, ModelError for an unset API key variable).
    """

    name = "safety_model"
    cost = 100

    def __init__(
        self,
        spec: SafetyModel,
        direction: Direction,
        harm: Harm | None = None,
        *,
        local_model: Callable[[], ChatModel] | None = None,
    ) -> None:
        """Set up the format and the backend that asks the model.

        `local_model` replaces loading `spec.model` as a GGUF file when there is no `base_url`
        (tests pass a fake).
        """
        self.spec = spec
        self.direction = direction
        self.when = spec.when
        self.harm = harm or Harm()
        self.format = make_format(spec, self.harm)
        self.backend: _Backend
        if spec.base_url:
            self.backend = HTTPBackend(
                base_url=spec.base_url,
                model=spec.model,
                format_name=spec.format,
                timeout_s=spec.timeout_s,
                api_key=_api_key(spec),
            )
            return
        if spec.format == "shieldgemma":
            raise CharterError(
                "guards.safety_model: shieldgemma needs a server (base_url): its policies "
                "travel as a chat template argument, which the in-process backend cannot pass"
            )
        if local_model is None:
            path = Path(spec.model).expanduser()
            if path.suffix != ".gguf":
                raise CharterError(
                    f"guards.safety_model: with no base_url, model must be a .gguf file "
                    f"(got {spec.model!r})"
                )
            if not path.is_file():
                raise ModelNotAvailableError(f"guards.safety_model: {path} does not exist")
            local_model = _gguf_loader(path)
        self.backend = LocalBackend(local_model)

    def check(self, subject: Subject) -> GuardVerdict:
        answer = self.backend.ask(self.format.question(self._conversation(subject), self.direction))
        reading = self.format.read(answer)
        detail: dict[str, Any] = {
            "format": self.spec.format,
            "model": self.spec.model,
            "raw": answer.text[:RAW_CHARS],
            "categories": list(reading.categories),
            "codes": list(reading.codes),
            **reading.detail,
        }
        if not reading.unsafe:
            return allow(self.name, reading.score, f"{self.spec.format}: safe", **detail)
        categories = ", ".join(reading.categories)
        allowed = set(self.harm.allow_categories)
        if all(category in allowed for category in reading.categories):
            return allow(
                self.name,
                reading.score,
                f"{self.spec.format}: unsafe ({categories}), every category allowed",
                allowed_categories=list(reading.categories),
                **detail,
            )
        return block(
            self.name, reading.score, f"{self.spec.format}: unsafe ({categories})", **detail
        )

    def _conversation(self, subject: Subject) -> tuple[Message, ...]:
        if self.direction == "input":
            return (Message(role="user", content=subject.text),)
        # The templates expect a reply to follow a user message, even an empty one.
        return (
            Message(role="user", content=latest_user(subject.messages)),
            Message(role="assistant", content=subject.text),
        )


def _api_key(spec: SafetyModel) -> str | None:
    if not spec.api_key_env:
        return None
    key = os.environ.get(spec.api_key_env)
    if not key:
        raise ModelError(
            f"guards.safety_model: api_key_env names ${spec.api_key_env}, which is not set"
        )
    return key


def build_safety_model_guard(spec: CharterSpec, direction: Direction) -> SafetyModelGuard:
    """The guard a charter's `guards.safety_model` section describes, for one side."""
    if spec.guards.safety_model is None:
        raise CharterError("the `safety_model` guard needs a `guards.safety_model:` section")
    return SafetyModelGuard(spec.guards.safety_model, direction, spec.guards.harm)
