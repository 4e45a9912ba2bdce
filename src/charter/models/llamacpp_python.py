"""Local GGUF models through `llama-cpp-python` (optional: `pip install 'charter[llama-cpp]'`).

Measured ~1.2-1.5x faster prompt reading than xllamacpp on 2 CPU cores, at the price of a
~6 minute source build at install time, so it is opt-in (`runtime: llama-cpp-python`).
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from charter.errors import ModelError
from charter.extras import requires_extra
from charter.models.base import ChatModel, ChatRequest, Completion, StreamEvent, Usage
from charter.models.openai_wire import StreamAssembler, completion_from_openai


class LlamaCppPythonModel(ChatModel):
    """A local GGUF model run in process by `llama-cpp-python` (the `llama-cpp` extra).

    `n_ctx` is its context window; `threads` defaults to every CPU core; `adapter` is a GGUF
    LoRA adapter applied at `adapter_scale` (its SHA-256 checked by the caller).
    """

    def __init__(
        self,
        path: str | Path,
        *,
        name: str | None = None,
        n_ctx: int = 4096,
        threads: int | None = None,
        adapter: str | Path | None = None,
        adapter_scale: float = 1.0,
    ) -> None:
        with requires_extra("runtime 'llama-cpp-python'", "llama-cpp", ModelError):
            from llama_cpp import Llama
        self.path = Path(path)
        self.name = name or self.path.stem
        self.context_window = n_ctx
        self.threads = threads or os.cpu_count() or 1
        started = time.perf_counter()
        try:
            self._llama: Any = Llama(
                model_path=str(self.path),
                n_ctx=n_ctx,
                n_threads=self.threads,
                n_threads_batch=self.threads,
                lora_path=str(adapter) if adapter is not None else None,
                lora_scale=adapter_scale,
                verbose=False,
            )
        except Exception as exc:
            raise ModelError(f"llama-cpp-python could not load {self.path}: {exc}") from exc
        self.load_seconds = time.perf_counter() - started
        self._lock = threading.Lock()

    def _kwargs(self, request: ChatRequest) -> dict[str, Any]:
        kwargs: dict[str, Any] = {
            "messages": [m.to_wire() for m in request.messages],
            "max_tokens": request.max_tokens,
            "temperature": request.temperature,
        }
        if request.top_p is not None:
            kwargs["top_p"] = request.top_p
        if request.seed is not None:
            kwargs["seed"] = request.seed
        if request.stop:
            kwargs["stop"] = list(request.stop)
        if request.json_schema is not None:
            kwargs["response_format"] = {"type": "json_object", "schema": request.json_schema}
        return kwargs

    def complete(self, request: ChatRequest) -> Completion:
        with self._lock:
            try:
                data = self._llama.create_chat_completion(**self._kwargs(request))
            except Exception as exc:
                raise ModelError(f"{self.name}: {exc}") from exc
        return completion_from_openai(dict(data), model=self.name)

    def stream(self, request: ChatRequest) -> Iterator[StreamEvent]:
        assembler = StreamAssembler(self.name)
        generated = 0
        with self._lock:
            try:
                chunks = self._llama.create_chat_completion(**self._kwargs(request), stream=True)
                for chunk in chunks:
                    yield from assembler.feed(dict(chunk))
                    generated += 1
                if assembler.usage.total_tokens == 0:
                    # llama-cpp-python streams one chunk per token and reports no usage; the
                    # context length after generation gives the prompt's share.
                    completion_tokens = max(generated - 1, 0)  # the last chunk only finishes
                    assembler.usage = Usage(
                        prompt_tokens=max(int(self._llama.n_tokens) - completion_tokens, 0),
                        completion_tokens=completion_tokens,
                    )
            except ModelError:
                raise
            except Exception as exc:
                raise ModelError(f"{self.name}: {exc}") from exc
        yield assembler.completion()

    def close(self) -> None:
        llama = getattr(self, "_llama", None)
        if llama is not None:
            self._llama = None
            llama.close()
