"""GGUF LoRA adapters: written as llama.cpp reads them, checked before every load, and applied.

A tiny random Qwen2 and Llama model (tests/training/tiny_gguf.py) get random LoRA weights on
every projection; llama.cpp, given base + adapter through the local backend, must answer
token for token as transformers does with the LoRA merged. That pins the tensor names, the
shapes, the rotary row order of Llama's q and k, and alpha / rank.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from charter.errors import ModelNotAvailableError, WeightsIntegrityError
from charter.eval.runner import charter_fingerprint
from charter.models.factory import build_model
from charter.spec.models import CharterSpec, LocalModelSpec, LoraAdapterSpec
from charter.training.gguf_adapter import (
    AdapterError,
    BaseModelLayout,
    LoraWeights,
    rotary_rows,
    write_adapter,
)
from tests.training.tiny_gguf import (
    TinyModel,
    build_tiny_gguf,
    llama_cpp_reply,
    transformers_reply,
)

QUESTION = "How do I freeze my card?"
ALL_PROJECTIONS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


@pytest.fixture(scope="module", params=["qwen2", "llama"])
def tiny(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> TinyModel:
    return build_tiny_gguf(tmp_path_factory.mktemp("tiny"), request.param)


def _random_lora(tiny: TinyModel, seed: int = 1, rank: int = 4) -> Any:
    """A copy of the tiny model with a LoRA on every projection, B drawn at random (not 0)."""
    import copy

    import torch
    from peft import LoraConfig, get_peft_model

    from charter.training.tune import _between_library_versions

    torch.manual_seed(seed)
    config = LoraConfig(r=rank, lora_alpha=2 * rank, target_modules=ALL_PROJECTIONS)
    with _between_library_versions():
        model = get_peft_model(copy.deepcopy(tiny.model), config)
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if "lora_B" in name:
                parameter.normal_(0.0, 0.3)
    return model.eval()


def _transformers_reply(model: Any, tokenizer: Any) -> str:
    return transformers_reply(model, tokenizer, QUESTION)


def _spec(tiny: TinyModel, adapter: LoraAdapterSpec | None = None) -> LocalModelSpec:
    return LocalModelSpec(
        model=str(tiny.gguf),
        sha256=tiny.sha256,
        adapter=adapter,
        temperature=0.0,
        n_ctx=512,
        threads=2,
    )


def _llama_cpp_reply(spec: LocalModelSpec) -> str:
    return llama_cpp_reply(spec, QUESTION)


def _lora_weights(model: Any) -> list[LoraWeights]:
    from charter.training.tune import lora_weights

    return lora_weights(model)


@pytest.mark.model
def test_llama_cpp_applies_the_adapter_as_transformers_does(
    tiny: TinyModel, tmp_path: Path
) -> None:
    base_reply = _llama_cpp_reply(_spec(tiny))
    assert base_reply == _transformers_reply(tiny.model, tiny.tokenizer)  # the base agrees
    model = _random_lora(tiny)
    written = write_adapter(tiny.gguf, _lora_weights(model), tmp_path / "a.gguf", alpha=8.0)
    assert written.layers == 2 * len(ALL_PROJECTIONS)
    adapter = LoraAdapterSpec(path=str(written.path), sha256=written.sha256)

    tuned_reply = _llama_cpp_reply(_spec(tiny, adapter))

    assert tuned_reply == _transformers_reply(model, tiny.tokenizer)
    assert tuned_reply != base_reply
    # scale 0 adds nothing: the base model's reply
    off = adapter.model_copy(update={"scale": 0.0})
    assert _llama_cpp_reply(_spec(tiny, off)) == base_reply


def test_the_adapter_file_is_what_llama_cpp_expects(tiny: TinyModel, tmp_path: Path) -> None:
    import gguf

    model = _random_lora(tiny, rank=4)
    written = write_adapter(tiny.gguf, _lora_weights(model), tmp_path / "a.gguf", alpha=8.0)
    reader = gguf.GGUFReader(written.path)

    def value(key: str) -> Any:
        field = reader.get_field(key)
        assert field is not None, key
        return field.contents()

    assert value("general.type") == "adapter"
    assert value("adapter.type") == "lora"
    assert value("general.architecture") == tiny.arch
    assert value("adapter.lora.alpha") == pytest.approx(8.0)
    shapes = {t.name: [int(d) for d in t.shape] for t in reader.tensors}
    base = BaseModelLayout.read(tiny.gguf).tensors
    # ggml order (ne): the base is [in, out]; lora_a is [in, rank], lora_b is [rank, out]
    assert shapes["blk.0.attn_q.weight.lora_a"] == [64, 4]
    assert shapes["blk.0.attn_q.weight.lora_b"] == [4, 64]
    assert shapes["blk.1.attn_k.weight.lora_b"] == [4, 32]  # 2 kv heads of 16
    assert shapes["blk.1.ffn_down.weight.lora_a"] == [128, 4]
    for name, shape in shapes.items():
        target, side = name.rsplit(".lora_", 1)
        if side == "a":
            assert shape == [base[target][0], 4]
        else:
            assert shape == [4, base[target][1]]
    assert written.size == written.path.stat().st_size


def test_rotary_rows_is_what_transformers_undoes() -> None:
    from transformers.modeling_gguf_pytorch_utils import LlamaTensorProcessor

    rows = np.arange(32 * 3, dtype=np.float32).reshape(32, 3)
    reordered = rotary_rows(rows, heads=2)
    assert not np.array_equal(reordered, rows)
    # head 0 has 16 rows: llama.cpp's row 1 is transformers' row 8 (the second half's first)
    assert np.array_equal(reordered[1], rows[8])
    undone = LlamaTensorProcessor()._reverse_permute_weights(reordered, 2, 2)
    assert np.array_equal(undone, rows)


def test_a_wrong_sha256_is_refused_naming_the_field(tiny: TinyModel, tmp_path: Path) -> None:
    path = tmp_path / "adapter.gguf"
    path.write_bytes(b"not the adapter that was trained")
    adapter = LoraAdapterSpec(path=str(path), sha256="0" * 64)
    with pytest.raises(WeightsIntegrityError, match=r"models\.chat\.adapter\.sha256") as info:
        build_model(_spec(tiny, adapter))  # refused before llama.cpp opens anything
    assert str(path) in str(info.value)


def test_a_missing_adapter_is_refused_naming_the_field(tiny: TinyModel, tmp_path: Path) -> None:
    adapter = LoraAdapterSpec(path=str(tmp_path / "gone.gguf"), sha256="0" * 64)
    with pytest.raises(ModelNotAvailableError, match=r"models\.chat\.adapter\.path"):
        build_model(_spec(tiny, adapter))


def test_the_charter_names_its_adapter_and_the_fingerprint_follows_it() -> None:
    def charter(adapter: dict[str, Any] | None) -> CharterSpec:
        chat: dict[str, Any] = {"backend": "local", "model": "qwen2.5-coder-0.5b"}
        if adapter is not None:
            chat["adapter"] = adapter
        return CharterSpec.model_validate(
            {"id": "x", "persona": {"name": "A", "role": "assistant"}, "models": {"chat": chat}}
        )

    one = charter({"path": "a.gguf", "sha256": "a" * 64})
    assert isinstance(one.models.chat, LocalModelSpec)
    assert one.models.chat.adapter == LoraAdapterSpec(path="a.gguf", sha256="a" * 64, scale=1.0)
    fingerprints = {
        charter_fingerprint(charter(None)),
        charter_fingerprint(one),
        charter_fingerprint(charter({"path": "a.gguf", "sha256": "b" * 64})),
        charter_fingerprint(charter({"path": "a.gguf", "sha256": "a" * 64, "scale": 2})),
    }
    assert len(fingerprints) == 4
    with pytest.raises(ValueError, match="sha256"):
        charter({"path": "a.gguf", "sha256": "not a hash"})


def test_pairs_that_do_not_fit_the_base_are_refused(tiny: TinyModel, tmp_path: Path) -> None:
    rank = 4
    good = LoraWeights(
        "model.layers.0.self_attn.q_proj", np.zeros((rank, 64)), np.zeros((64, rank))
    )
    transposed = LoraWeights(good.module, good.a.T, good.b)
    with pytest.raises(AdapterError, match=r"blk\.0\.attn_q\.weight does not fit"):
        write_adapter(tiny.gguf, [transposed], tmp_path / "a.gguf", alpha=8)
    tied_output = LoraWeights("lm_head", np.zeros((rank, 64)), np.zeros((400, rank)))
    with pytest.raises(AdapterError, match="lm_head has no weight in the base model"):
        write_adapter(tiny.gguf, [tied_output], tmp_path / "a.gguf", alpha=8)
    with pytest.raises(AdapterError, match="no LoRA layers"):
        write_adapter(tiny.gguf, [], tmp_path / "a.gguf", alpha=8)
    assert write_adapter(tiny.gguf, [good], tmp_path / "a.gguf", alpha=8).layers == 1


def test_an_architecture_without_support_is_refused(tmp_path: Path) -> None:
    import gguf

    path = tmp_path / "other.gguf"
    writer = gguf.GGUFWriter(path, "gemma3")
    writer.add_block_count(1)
    writer.add_tensor("token_embd.weight", np.zeros((4, 8), dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    with pytest.raises(AdapterError, match=r"'gemma3' is not supported.*llama, qwen2"):
        BaseModelLayout.read(path)
