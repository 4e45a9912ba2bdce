"""Deriving a persona steering vector from the charter's contrastive replies (`charter steer`).

The contrastive set is the persona judge's (`charter.persona.contrast`): for each semantic
rule, user messages with one reply that keeps the rule and one that breaks it, written by the
charter's own model about the charter. Each reply is read by the local model (loaded in
transformers from its GGUF file, the `tune` extra), and its hidden states are averaged over
the reply's tokens. The vector is the mean, over messages, of keeps minus breaks at the end of
a span of layers in the middle of the network, where such directions are found to steer best
(Rimsky et al., "Steering Llama 2 via Contrastive Activation Addition", 2024).

It is applied as changes to the value biases of the span (`charter.models.steering`): the
biases whose outputs, summed over the span, add up to the vector. `derive_biases` solves for
them (least squares, with a little ridge so that no layer takes a huge bias) and reports how
much of the vector the span reaches.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from charter.persona.contrast import Example

if TYPE_CHECKING:
    import numpy as np
    from numpy.typing import NDArray

END_DEPTH = 0.6
"""The span ends this far into the network."""
RIDGE = 1e-4
"""The ridge, as a share of the span's mean squared singular value."""


@dataclass(frozen=True)
class Derived:
    """Value-bias changes per layer, and what they were derived from."""

    biases: dict[int, NDArray[np.float32]]
    pairs: int
    """Messages with both a reply that keeps and one that breaks a rule."""
    target_layer: int
    vector_norm: float
    """The steering vector's length at the target layer."""
    reached: float
    """The share of the vector's length the biases reach (1: all of it)."""


def contrast_groups(examples: Sequence[Example]) -> list[tuple[list[str], list[str], str]]:
    """(keeps, breaks, user message) for each (rule, message) with both kinds of reply."""
    grouped: dict[tuple[str, str], tuple[list[str], list[str]]] = defaultdict(lambda: ([], []))
    for example in examples:
        keeps, breaks = grouped[(example.rule, example.prompt)]
        (breaks if example.breaks else keeps).append(example.reply)
    return [(k, b, prompt) for (_, prompt), (k, b) in grouped.items() if k and b]


def span(layers: int, hidden: int, value_width: int) -> list[int]:
    """The layers to steer, ending at `END_DEPTH` of the `layers`.

    Enough of them for their value biases together to reach the whole residual stream.
    """
    count = min(layers, math.ceil(hidden / value_width) + 1)
    end = min(layers - 1, max(count - 1, round(END_DEPTH * layers)))
    return list(range(end - count + 1, end + 1))


def reply_states(model: Any, tokenizer: Any, prompt: str, reply: str) -> list[NDArray[np.float32]]:
    """The hidden states after each layer, averaged over the reply's tokens."""
    import torch

    asked = [{"role": "user", "content": prompt}]
    prefix = tokenizer.apply_chat_template(asked, add_generation_prompt=True, tokenize=False)
    whole = tokenizer.apply_chat_template(
        [*asked, {"role": "assistant", "content": reply}], tokenize=False
    )
    start = len(tokenizer(prefix, add_special_tokens=False)["input_ids"])
    ids = tokenizer(whole, add_special_tokens=False, return_tensors="pt")["input_ids"]
    with torch.no_grad():
        out = model(input_ids=ids, output_hidden_states=True)
    # hidden_states[0] is the embeddings; [i + 1] is what layer i writes to the stream
    return [h[0, start:].mean(dim=0).float().numpy() for h in out.hidden_states[1:]]


def value_to_stream(model: Any, layer: int) -> NDArray[np.float32]:
    """`M`: what a value-bias change `d` of `layer` adds to the residual stream is `M @ d`."""
    import numpy as np

    config = model.config
    heads = config.num_attention_heads
    kv_heads = getattr(config, "num_key_value_heads", heads) or heads
    head_dim = getattr(config, "head_dim", None) or config.hidden_size // heads
    attention = model.model.layers[layer].self_attn
    w_o = attention.o_proj.weight.detach().float().numpy()  # (hidden, heads * head_dim)
    group = heads // kv_heads
    out = np.zeros((w_o.shape[0], kv_heads * head_dim), dtype=np.float64)
    for head in range(heads):
        kv = head // group
        out[:, kv * head_dim : (kv + 1) * head_dim] += w_o[
            :, head * head_dim : (head + 1) * head_dim
        ]
    return out.astype(np.float32)


def solve_biases(
    maps: Sequence[NDArray[np.float32]], vector: NDArray[np.float32], ridge: float = RIDGE
) -> tuple[list[NDArray[np.float32]], float]:
    """The bias changes `d_i` with `sum(maps[i] @ d_i)` closest to `vector`.

    Also the share of the vector's length reached (1 minus the relative error).
    """
    import numpy as np

    stacked = np.concatenate([m.astype(np.float64) for m in maps], axis=1)
    gram = stacked @ stacked.T
    scale = ridge * float(np.trace(gram)) / gram.shape[0]
    solution = stacked.T @ np.linalg.solve(gram + scale * np.eye(gram.shape[0]), vector)
    length = max(float(np.linalg.norm(vector)), 1e-12)
    error = float(np.linalg.norm(stacked @ solution - vector)) / length
    parts = np.split(solution, np.cumsum([m.shape[1] for m in maps])[:-1])
    return [p.astype(np.float32) for p in parts], 1.0 - error


def derive_biases(
    model: Any,
    tokenizer: Any,
    examples: Sequence[Example],
    *,
    layers: Sequence[int] | None = None,
    progress: Callable[[str], None] | None = None,
) -> Derived:
    """The value-bias changes that steer `model` from the breaking replies to the keeping ones.

    Raises ValueError when no message has both a reply that keeps and one that breaks a rule.
    """
    import numpy as np

    groups = contrast_groups(examples)
    if not groups:
        raise ValueError("no message has both a reply that keeps and one that breaks a rule")
    config = model.config
    heads = config.num_attention_heads
    kv_heads = getattr(config, "num_key_value_heads", heads) or heads
    head_dim = getattr(config, "head_dim", None) or config.hidden_size // heads
    chosen = (
        list(layers)
        if layers is not None
        else span(config.num_hidden_layers, config.hidden_size, kv_heads * head_dim)
    )
    target = chosen[-1]
    differences: list[NDArray[np.float32]] = []
    for n, (keeps, breaks, prompt) in enumerate(groups, 1):
        kept = np.mean([reply_states(model, tokenizer, prompt, r)[target] for r in keeps], axis=0)
        broke = np.mean([reply_states(model, tokenizer, prompt, r)[target] for r in breaks], axis=0)
        differences.append(kept - broke)
        if progress is not None and (n % 10 == 0 or n == len(groups)):
            progress(f"read {n}/{len(groups)} contrast pairs")
    vector = np.mean(differences, axis=0).astype(np.float32)
    maps = [value_to_stream(model, layer) for layer in chosen]
    solved, reached = solve_biases(maps, vector)
    return Derived(
        biases=dict(zip(chosen, solved, strict=True)),
        pairs=len(groups),
        target_layer=target,
        vector_norm=float(np.linalg.norm(vector)),
        reached=reached,
    )


def derive_for_model(
    base: Path,
    examples: Sequence[Example],
    *,
    layers: Sequence[int] | None = None,
    progress: Callable[[str], None] | None = None,
) -> Derived:
    """`derive_biases` on the GGUF model `base`, loaded in transformers (the `tune` extra)."""
    from charter.training.tune import load_base

    model, tokenizer = load_base(base)
    model.eval()
    return derive_biases(model, tokenizer, examples, layers=layers, progress=progress)
