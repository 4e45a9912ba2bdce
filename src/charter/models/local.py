"""Local GGUF models run in-process by llama.cpp through `xllamacpp` (prebuilt wheels).

xllamacpp embeds llama-server: requests and replies are OpenAI-shaped dicts, JSON-schema
output is grammar-constrained, and each reply carries the server's own timings. It also
opens a loopback HTTP listener, which we lock with a random API key so that nothing else on
the machine can use the model through it.
"""

from __future__ import annotations

import os
import queue
import secrets
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from charter.errors import ModelError
from charter.extras import requires_extra
from charter.models.base import ChatModel, ChatRequest, Completion, StreamEvent
from charter.models.openai_wire import StreamAssembler, completion_from_openai, request_payload


class LocalModel(ChatModel):
    """A GGUF file served by xllamacpp. One request at a time (one slot).

    `adapter` is a GGUF LoRA adapter file applied on top at `adapter_scale` (its SHA-256 is
    the caller's to check: `charter.models.factory.local_adapter_path`).
    """

    def __init__(
        self,
        path: str | Path,
        *,
        name: str | None = None,
        n_ctx: int = 4096,
        threads: int | None = None,
        cache_prompt: bool = True,
        adapter: str | Path | None = None,
        adapter_scale: float = 1.0,
    ) -> None:
        with requires_extra("the local backend", "local", ModelError):
            import xllamacpp
        self.path = Path(path)
        self.name = name or self.path.stem
        self.context_window = n_ctx
        self.threads = threads or os.cpu_count() or 1
        # Reusing the KV cache of the longest common prefix (the system prompt) is what makes
        # later turns fast; benchmarks turn it off to measure a first turn.
        self.cache_prompt = cache_prompt
        params = xllamacpp.CommonParams()
        params.model.path = str(self.path)
        params.n_ctx = n_ctx
        params.n_parallel = 1
        params.cpuparams.n_threads = self.threads
        params.cpuparams_batch.n_threads = self.threads
        params.verbosity = -1
        params.api_keys = [secrets.token_urlsafe(24)]
        self.adapter = Path(adapter) if adapter is not None else None
        if self.adapter is not None:
            # A GGUF LoRA adapter (`charter tune`), applied to every request at this scale.
            lora = xllamacpp.CommonAdapterLoraInfo(str(self.adapter), adapter_scale)
            params.lora_adapters = [lora]
        started = time.perf_counter()
        try:
            self._server: Any = xllamacpp.Server(params)
        except Exception as exc:
            raise ModelError(f"llama.cpp could not load {self.path}: {exc}") from exc
        self.load_seconds = time.perf_counter() - started
        self._lock = threading.Lock()

    def complete(self, request: ChatRequest) -> Completion:
        body = request_payload(request, stream=False) | {"cache_prompt": self.cache_prompt}
        with self._lock:
            try:
                data = self._server.handle_chat_completions(body)
            except Exception as exc:
                raise ModelError(f"{self.name}: {exc}") from exc
        if not isinstance(data, dict):
            raise ModelError(f"{self.name}: unexpected reply type {type(data).__name__}")
        return completion_from_openai(data, model=self.name)

    def stream(self, request: ChatRequest) -> Iterator[StreamEvent]:
        """Stream the reply; generation runs on a worker thread that feeds a queue.

        Closing this iterator early tells llama.cpp to stop (its callback returns True).
        """
        body = request_payload(request, stream=True) | {"cache_prompt": self.cache_prompt}
        chunks: queue.Queue[object] = queue.Queue()
        cancelled = threading.Event()
        done = object()

        def on_chunk(chunk: Any) -> bool:
            chunks.put(chunk)
            return cancelled.is_set()

        def work() -> None:
            try:
                with self._lock:
                    error = self._server.handle_chat_completions(body, on_chunk)
                if isinstance(error, dict) and "error" in error:
                    chunks.put(ModelError(f"{self.name}: {error['error']}"))
            except Exception as exc:
                chunks.put(ModelError(f"{self.name}: {exc}"))
            finally:
                chunks.put(done)

        worker = threading.Thread(target=work, name="charter-local-stream", daemon=True)
        worker.start()
        assembler = StreamAssembler(self.name)
        try:
            while True:
                item = chunks.get()
                if item is done:
                    break
                if isinstance(item, BaseException):
                    raise item
                if isinstance(item, dict):
                    yield from assembler.feed(item)
        finally:
            cancelled.set()
            worker.join()
        yield assembler.completion()

    def close(self) -> None:
        server = getattr(self, "_server", None)
        if server is not None:
            self._server = None
            del server
