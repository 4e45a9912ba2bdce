"""Persona steering: derived from contrast pairs, baked into value biases, applied by llama.cpp.

On a tiny random Qwen2 model (tests/training/tiny_gguf.py): a value-bias change reaches the
residual stream as the derivation says; a span of layers reaches a vector one layer cannot;
and llama.cpp, given the charter's steering file, answers token for token as transformers does
with the same biases added.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from charter.errors import ModelNotAvailableError, WeightsIntegrityError
from charter.models.factory import build_model
from charter.models.steering import SteeringError, read_steering, steered_weights, write_steering
from charter.persona.contrast import Example
from charter.persona.steering import (
    contrast_groups,
    derive_biases,
    solve_biases,
    span,
    value_to_stream,
)
from charter.spec.models import LocalModelSpec, SteeringSpec
from tests.training.tiny_gguf import (
    TinyModel,
    build_tiny_gguf,
    llama_cpp_reply,
    transformers_reply,
)

QUESTION = "How do I freeze my card?"
EXAMPLES = [
    Example("scope", "What are your Saturday hours?", "Our branches open at nine.", False),
    Example("scope", "What are your Saturday hours?", "Ahoy! Arr, the treasure be.", True),
    Example("scope", "How do I freeze my card?", "You can freeze your card in the app.", False),
    Example("scope", "How do I freeze my card?", "Arr, matey, the bank be.", True),
    Example("tone", "Hello", "Hello, I am Penny.", False),  # no breaking reply: not a pair
]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> TinyModel:
    return build_tiny_gguf(tmp_path_factory.mktemp("tiny"), "qwen2", seed=3)


def _attention_out(model: Any, layer: int, ids: Any) -> Any:
    import torch

    seen: list[Any] = []
    handle = model.model.layers[layer].self_attn.register_forward_hook(
        lambda _m, _i, output: seen.append(output[0].detach().clone())
    )
    try:
        with torch.no_grad():
            model(input_ids=ids)
    finally:
        handle.remove()
    return seen[0][0].numpy()


def test_a_value_bias_change_reaches_the_stream_through_the_output_projection(
    tiny: TinyModel,
) -> None:
    import torch

    model = copy.deepcopy(tiny.model).eval()
    ids = tiny.tokenizer(QUESTION, return_tensors="pt")["input_ids"]
    before = _attention_out(model, 1, ids)
    width = model.model.layers[1].self_attn.v_proj.bias.shape[0]
    change = np.random.default_rng(0).normal(size=width).astype(np.float32)
    with torch.no_grad():
        model.model.layers[1].self_attn.v_proj.bias += torch.from_numpy(change)
    after = _attention_out(model, 1, ids)
    expected = value_to_stream(model, 1) @ change
    np.testing.assert_allclose(after - before, np.broadcast_to(expected, after.shape), atol=1e-4)


def test_a_span_of_layers_reaches_what_one_layer_cannot() -> None:
    rng = np.random.default_rng(1)
    vector = rng.normal(size=12).astype(np.float32)
    maps = [rng.normal(size=(12, 4)).astype(np.float32) for _ in range(4)]
    one, reached_one = solve_biases(maps[:1], vector)
    assert reached_one < 0.9
    parts, reached = solve_biases(maps, vector)
    assert reached > 0.95
    total = sum(m @ p for m, p in zip(maps, parts, strict=True))
    np.testing.assert_allclose(total, vector, atol=0.25)
    assert [p.shape for p in parts] == [(4,)] * 4 and one[0].shape == (4,)


def test_the_span_ends_past_the_middle_and_covers_the_stream() -> None:
    assert span(24, 896, 128) == list(range(7, 15))  # the 0.5B Qwen2.5: 8 layers of 128
    assert span(28, 1536, 256) == list(range(11, 18))  # the 1.5B: 7 layers of 256
    assert span(2, 64, 32) == [0, 1]  # a model shallower than the span: every layer


def test_only_messages_with_both_kinds_of_reply_are_pairs() -> None:
    groups = contrast_groups(EXAMPLES)
    assert [(len(k), len(b), p) for k, b, p in groups] == [
        (1, 1, "What are your Saturday hours?"),
        (1, 1, "How do I freeze my card?"),
    ]
    with pytest.raises(ValueError, match="keeps and one that breaks"):
        derive_biases(object(), object(), EXAMPLES[-1:])


def _steered_transformers_reply(tiny: TinyModel, biases: dict[int, Any], strength: float) -> str:
    import torch

    model = copy.deepcopy(tiny.model).eval()
    with torch.no_grad():
        for layer, change in biases.items():
            model.model.layers[layer].self_attn.v_proj.bias += strength * torch.from_numpy(change)
    return transformers_reply(model, tiny.tokenizer, QUESTION)


def _spec(tiny: TinyModel, steering: SteeringSpec | None = None) -> LocalModelSpec:
    return LocalModelSpec(
        model=str(tiny.gguf),
        sha256=tiny.sha256,
        steering=steering,
        temperature=0.0,
        n_ctx=512,
        threads=2,
    )


def _llama_cpp_reply(spec: LocalModelSpec) -> str:
    return llama_cpp_reply(spec, QUESTION)


@pytest.mark.model
def test_llama_cpp_runs_the_steered_model_as_transformers_does(
    tiny: TinyModel, tmp_path: Path
) -> None:
    derived = derive_biases(tiny.model, tiny.tokenizer, EXAMPLES)
    assert derived.pairs == 2 and sorted(derived.biases) == [0, 1]
    assert derived.vector_norm > 0 and derived.reached > 0.8
    # the tiny model's replies barely move at strength 1: steer hard, to see the tokens change
    biases = {layer: 40.0 * change for layer, change in derived.biases.items()}
    made = write_steering(
        tmp_path / "steering.gguf", biases, base=tiny.gguf, architecture="qwen2", examples=2
    )
    facts, tensors = read_steering(made.path)
    assert facts == {
        "architecture": "qwen2",
        "base_name": tiny.gguf.name,
        "base_size": tiny.gguf.stat().st_size,
    }
    assert sorted(tensors) == ["blk.0.attn_v.bias", "blk.1.attn_v.bias"]
    base_reply = _llama_cpp_reply(_spec(tiny))
    steering = SteeringSpec(path=str(made.path), sha256=made.sha256, strength=1.0)

    steered_reply = _llama_cpp_reply(_spec(tiny, steering))

    assert steered_reply == _steered_transformers_reply(tiny, biases, 1.0)
    assert steered_reply != base_reply
    half = steering.model_copy(update={"strength": 0.5})
    assert _llama_cpp_reply(_spec(tiny, half)) == _steered_transformers_reply(tiny, biases, 0.5)
    off = steering.model_copy(update={"strength": 0.0})
    assert _llama_cpp_reply(_spec(tiny, off)) == base_reply


def test_a_steered_copy_is_made_once_and_the_base_is_not_touched(
    tiny: TinyModel, tmp_path: Path
) -> None:
    before = tiny.gguf.read_bytes()
    change = {1: np.ones(32, dtype=np.float32)}
    made = write_steering(
        tmp_path / "s.gguf", change, base=tiny.gguf, architecture="qwen2", examples=1
    )
    copy_path = steered_weights(tiny.gguf, made.path, 2.0, into=tmp_path / "steered")
    assert tiny.gguf.read_bytes() == before
    stamp = copy_path.stat().st_mtime_ns
    assert steered_weights(tiny.gguf, made.path, 2.0, into=tmp_path / "steered") == copy_path
    assert copy_path.stat().st_mtime_ns == stamp  # reused, not made again
    other = steered_weights(tiny.gguf, made.path, 1.0, into=tmp_path / "steered")
    assert other != copy_path


def test_a_steering_file_for_another_model_is_refused(tiny: TinyModel, tmp_path: Path) -> None:
    other = tmp_path / "other.gguf"
    other.write_bytes(tiny.gguf.read_bytes() + b"\0")
    made = write_steering(
        tmp_path / "s.gguf",
        {1: np.ones(32, np.float32)},
        base=other,
        architecture="qwen2",
        examples=1,
    )
    with pytest.raises(SteeringError, match=r"derived for other\.gguf"):
        steered_weights(tiny.gguf, made.path, 1.0, into=tmp_path / "steered")
    with pytest.raises(SteeringError, match="not a steering file"):
        read_steering(tiny.gguf)


def test_a_wrong_or_missing_steering_file_is_refused_naming_the_field(
    tiny: TinyModel, tmp_path: Path
) -> None:
    path = tmp_path / "steering.gguf"
    path.write_bytes(b"not the steering file that was derived")
    wrong = SteeringSpec(path=str(path), sha256="0" * 64)
    with pytest.raises(WeightsIntegrityError, match=r"models\.chat\.steering\.sha256"):
        build_model(_spec(tiny, wrong))
    gone = SteeringSpec(path=str(tmp_path / "gone.gguf"), sha256="0" * 64)
    with pytest.raises(ModelNotAvailableError, match=r"models\.chat\.steering\.path"):
        build_model(_spec(tiny, gone))
