"""Steering a local model toward its persona, baked into a copy of its GGUF weights.

A steering vector is added to the model's residual stream: the mean difference of its hidden
states between replies that keep the persona and replies that break it (derived by
`charter.persona.steering`). llama.cpp can add such a vector itself (its control vectors), but
the embedded runtime, xllamacpp, gives no way to pass one in. So the vector is baked into the
weights, through a tensor every Qwen2 block already has: the bias of the attention's value
projection. Attention averages the value rows with weights that sum to one, so a bias `d`
added to them comes out of the attention unchanged and reaches the residual stream as
`W_o · d` (each key-value head's `d` shared by the query heads of its group), at every
position. One layer reaches only a subspace as wide as its key-value heads; a span of layers
together reaches the whole stream, and the derivation solves for the biases of the span whose
sum is the vector.

The steering file is a small GGUF (`write_steering`) of bias changes per layer, named as the
base model names the biases (`blk.12.attn_v.bias`), with the base model's file name, size and
architecture. `steered_weights` applies it at a strength to a copy of the base model (made
once, kept beside the model files, keyed by both files and the strength) and the local
backend loads the copy: the model file is not changed, and no runtime feature is needed.
"""

from __future__ import annotations

import hashlib
import shutil
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from charter.errors import CharterError
from charter.extras import requires_extra
from charter.models.weights import sha256_of

if TYPE_CHECKING:
    import numpy as np
    from numpy.typing import NDArray

KIND = "charter.steering"
"""The steering file's `general.type`."""
_BASE_NAME = "charter.steering.base_name"
_BASE_SIZE = "charter.steering.base_size"
_LAYERS = "charter.steering.layers"
_EXAMPLES = "charter.steering.examples"
_BIAS = "blk.{layer}.attn_v.bias"


class SteeringError(CharterError):
    """A steering file that cannot be applied to the model it is given with."""


@dataclass(frozen=True)
class SteeringFile:
    """A written steering file: where, its SHA-256, the layers it changes and its sources."""

    path: Path
    sha256: str
    architecture: str
    layers: tuple[int, ...]
    examples: int
    """How many (keeps, breaks) pairs the vector was derived from."""


def _gguf() -> Any:
    with requires_extra("steering a local model", "local", SteeringError):
        import gguf
    return gguf


def write_steering(
    path: Path,
    biases: Mapping[int, NDArray[np.float32]],
    *,
    base: Path,
    architecture: str,
    examples: int,
) -> SteeringFile:
    """Write the value-bias changes `biases` (by layer) as a steering file for `base`."""
    gguf = _gguf()
    import numpy as np

    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".partial")
    writer = gguf.GGUFWriter(str(partial), arch=architecture)
    writer.add_type(KIND)
    writer.add_string(_BASE_NAME, base.name)
    writer.add_uint64(_BASE_SIZE, base.stat().st_size)
    layers = sorted(biases)
    writer.add_array(_LAYERS, layers)
    writer.add_uint32(_EXAMPLES, examples)
    for layer in layers:
        writer.add_tensor(_BIAS.format(layer=layer), np.asarray(biases[layer], dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    partial.replace(path)
    return SteeringFile(path, sha256_of(path), architecture, tuple(layers), examples)


def read_steering(path: Path) -> tuple[dict[str, Any], dict[str, NDArray[np.float32]]]:
    """The steering file's facts (architecture, base name and size) and its tensors by name."""
    gguf = _gguf()
    import numpy as np

    reader = gguf.GGUFReader(path)

    def value(key: str) -> Any:
        field = reader.get_field(key)
        return None if field is None else field.contents()

    if value(gguf.Keys.General.TYPE) != KIND:
        raise SteeringError(f"{path} is not a steering file (`charter steer` writes one)")
    facts = {
        "architecture": value(gguf.Keys.General.ARCHITECTURE),
        "base_name": value(_BASE_NAME),
        "base_size": value(_BASE_SIZE),
    }
    tensors = {t.name: np.array(t.data, dtype=np.float32) for t in reader.tensors}
    return facts, tensors


def steered_weights(base: Path, steering: Path, strength: float, *, into: Path) -> Path:
    """A copy of the GGUF model `base` with `steering` added at `strength` (made once).

    The copy goes to `into` under a name keyed by the base's name and size, the steering file's
    SHA-256 and the strength; a copy already there is reused. Raises SteeringError when the
    steering file was made for another model.
    """
    gguf = _gguf()
    facts, deltas = read_steering(steering)
    size = base.stat().st_size
    if (facts["base_name"], facts["base_size"]) != (base.name, size):
        raise SteeringError(
            f"{steering} was derived for {facts['base_name']} ({facts['base_size']} bytes), "
            f"not for {base.name} ({size} bytes): derive it again with `charter steer`"
        )
    key = hashlib.sha256(
        f"{base.name}\0{size}\0{sha256_of(steering)}\0{strength!r}".encode()
    ).hexdigest()[:16]
    target = into / f"{base.stem}.steered-{key}.gguf"
    if target.is_file():
        return target
    into.mkdir(parents=True, exist_ok=True)
    partial = target.with_suffix(".partial")
    shutil.copyfile(base, partial)
    reader = gguf.GGUFReader(partial, "r+")
    found = {t.name: t for t in reader.tensors}
    for name, delta in deltas.items():
        tensor = found.get(name)
        if tensor is None or tuple(tensor.data.shape) != delta.shape:
            partial.unlink()
            raise SteeringError(f"{steering}: {base.name} has no tensor {name} of {delta.shape}")
        tensor.data[...] = tensor.data + strength * delta
    reader.data.flush()
    del reader, found
    partial.replace(target)
    return target
