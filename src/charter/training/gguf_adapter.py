"""Write LoRA weights as a GGUF LoRA adapter that llama.cpp applies beside its base model.

llama.cpp loads an adapter next to the GGUF model it was trained for (`lora_adapters` in
xllamacpp, `lora_path` in llama-cpp-python) and adds `scale * alpha / rank * B(A(x))` to the
output of every base tensor it names. What it checks when it loads one:

- metadata: `general.type` is "adapter", `adapter.type` is "lora", `general.architecture`
  equals the base model's, `adapter.lora.alpha` (float32) is peft's `lora_alpha`;
- tensors: for each adapted base tensor (`blk.0.attn_q.weight`), a pair named
  `<base name>.lora_a` and `<base name>.lora_b`, and no others. The base tensor has ggml
  dimensions `ne = [in, out]`; `lora_a` must be `[in, rank]` and `lora_b` `[rank, out]`.
  gguf-py writes a numpy array's last axis as `ne[0]`, so the arrays are peft's own layouts:
  A as `(rank, in)`, B as `(out, rank)`; nothing is transposed.

One correction is needed on Llama-architecture models: llama.cpp stores the rows of the query
and key projections in its own rotary order (each head's two halves interleaved), and
transformers undoes that order when it loads such a GGUF file. The adapter was trained on
the rows in transformers' order, so B's rows of `attn_q` and `attn_k` are put back into
llama.cpp's order. Qwen2 keeps transformers' order.

Names go from transformers' (`model.layers.0.self_attn.q_proj`) to GGUF's through gguf-py's
tensor name map; each pair is checked against the base file's own tensor, so an adapter that
llama.cpp would refuse is refused here, with the tensor named.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from charter.errors import CharterError

if TYPE_CHECKING:
    import numpy as np

ROTARY_ORDER = {"qwen2": False, "llama": True}
"""The base architectures an adapter can be written for, and whether llama.cpp keeps that
architecture's query and key rows in its own rotary order (see the module's docstring)."""


class AdapterError(CharterError):
    """LoRA weights that cannot be written as an adapter for the given base model."""


@dataclass(frozen=True)
class BaseModelLayout:
    """What an adapter must match in its base GGUF model: architecture, heads and tensors."""

    architecture: str
    block_count: int
    head_count: int
    head_count_kv: int
    tensors: dict[str, tuple[int, ...]]
    """Each tensor's GGUF name and its ggml dimensions (`ne`: the innermost first)."""

    @classmethod
    def read(cls, path: Path) -> BaseModelLayout:
        """Read the layout from the GGUF file at `path` (metadata only; no weights loaded)."""
        import gguf

        reader = gguf.GGUFReader(path)

        def value(key: str, default: Any = None) -> Any:
            field = reader.get_field(key)
            return default if field is None else field.contents()

        arch = value(gguf.Keys.General.ARCHITECTURE)
        if arch not in ROTARY_ORDER:
            known = ", ".join(sorted(ROTARY_ORDER))
            raise AdapterError(
                f"{path}: architecture {arch!r} is not supported for LoRA adapters ({known} are)"
            )
        heads = int(value(gguf.Keys.Attention.HEAD_COUNT.format(arch=arch)))
        return cls(
            architecture=arch,
            block_count=int(value(gguf.Keys.LLM.BLOCK_COUNT.format(arch=arch))),
            head_count=heads,
            head_count_kv=int(value(gguf.Keys.Attention.HEAD_COUNT_KV.format(arch=arch), heads)),
            tensors={t.name: tuple(int(d) for d in t.shape) for t in reader.tensors},
        )

    def tensor_name(self, module: str) -> str:
        """The GGUF name of the weight of transformers' module `module`.

        `model.layers.3.self_attn.q_proj` is `blk.3.attn_q.weight`.
        """
        import gguf

        arches = {name: arch for arch, name in gguf.MODEL_ARCH_NAMES.items()}
        names = gguf.get_tensor_name_map(arches[self.architecture], self.block_count)
        mapped = names.get_name(f"{module}.weight", try_suffixes=(".weight",))
        if mapped is None or mapped not in self.tensors:
            raise AdapterError(
                f"the LoRA module {module} has no weight in the base model "
                f"({mapped or 'no GGUF name'}); adapt the attention or MLP projections"
            )
        return str(mapped)


@dataclass(frozen=True)
class LoraWeights:
    """One adapted linear layer: peft's A `(rank, in)` and B `(out, rank)`."""

    module: str
    """transformers' name of the layer, e.g. `model.layers.0.self_attn.q_proj`."""
    a: np.ndarray[Any, Any]
    b: np.ndarray[Any, Any]


@dataclass(frozen=True)
class AdapterFile:
    """A written adapter: where it is, its SHA-256 and size, and how many layers it adapts."""

    path: Path
    sha256: str
    size: int
    layers: int


def rotary_rows(rows: np.ndarray[Any, Any], heads: int) -> np.ndarray[Any, Any]:
    """Reorder the rows of a query or key projection into llama.cpp's rotary order.

    transformers keeps each head's first and second halves apart; llama.cpp interleaves them
    (row `2i` of a head is transformers' row `i`, row `2i + 1` is row `i + head_dim / 2`).
    """
    head_dim = rows.shape[0] // heads
    grouped = rows.reshape(heads, 2, head_dim // 2, *rows.shape[1:])
    return grouped.swapaxes(1, 2).reshape(rows.shape)


def write_adapter(
    base: Path,
    loras: Iterable[LoraWeights],
    out: Path,
    *,
    alpha: float,
    name: str | None = None,
) -> AdapterFile:
    """Write `loras` as a GGUF LoRA adapter for the base GGUF model `base`, to `out`.

    Every pair is checked against its base tensor, as llama.cpp will check it. Tensors are
    written in float32.
    """
    import gguf
    import numpy as np

    layout = BaseModelLayout.read(base)
    tensors: list[tuple[str, np.ndarray[Any, Any]]] = []
    for lora in loras:
        target = layout.tensor_name(lora.module)
        a = np.ascontiguousarray(lora.a, dtype=np.float32)
        b = np.ascontiguousarray(lora.b, dtype=np.float32)
        _check_shapes(target, layout.tensors[target], a, b)
        if ROTARY_ORDER[layout.architecture]:
            if ".attn_q." in target:
                b = np.ascontiguousarray(rotary_rows(b, layout.head_count))
            elif ".attn_k." in target:
                b = np.ascontiguousarray(rotary_rows(b, layout.head_count_kv))
        tensors += [(f"{target}.lora_a", a), (f"{target}.lora_b", b)]
    if not tensors:
        raise AdapterError("no LoRA layers to write: the model has no adapted module")
    out.parent.mkdir(parents=True, exist_ok=True)
    writer = gguf.GGUFWriter(out, layout.architecture)
    writer.add_type(gguf.GGUFType.ADAPTER)
    writer.add_string(gguf.Keys.Adapter.TYPE, "lora")
    writer.add_float32(gguf.Keys.Adapter.LORA_ALPHA, float(alpha))
    if name:
        writer.add_name(name)
    for tensor_name, data in tensors:
        writer.add_tensor(tensor_name, data)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    digest = hashlib.sha256(out.read_bytes()).hexdigest()
    return AdapterFile(out, digest, out.stat().st_size, len(tensors) // 2)


def _check_shapes(
    target: str, base_ne: tuple[int, ...], a: np.ndarray[Any, Any], b: np.ndarray[Any, Any]
) -> None:
    """Refuse a pair llama.cpp would refuse, naming the tensor and both shapes."""
    fits = (
        a.ndim == 2
        and b.ndim == 2
        and len(base_ne) == 2
        and a.shape[1] == base_ne[0]
        and b.shape[0] == base_ne[1]
        and a.shape[0] == b.shape[1]
    )
    if not fits:
        raise AdapterError(
            f"LoRA pair for {target} does not fit the base tensor (ggml ne {list(base_ne)}): "
            f"A is {list(a.shape)}, B is {list(b.shape)}; expected A (rank, {base_ne[0]}) "
            f"and B ({base_ne[1] if len(base_ne) > 1 else '?'}, rank)"
        )
