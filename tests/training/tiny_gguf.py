"""A tiny chat model made on the spot, as a GGUF file llama.cpp and transformers both load.

A random Qwen2 or Llama model (hidden size 64, 2 layers) with a byte-level BPE tokenizer
trained on a few sentences and a ChatML template, written in float32 with gguf-py: a
stand-in for the charter's local model that loads in milliseconds, so the tests can train
on it and compare llama.cpp's replies with transformers' token for token.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

CHATML = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n"
    "{{ message['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
CORPUS = [
    "Hello, I am Penny, the support assistant of Acme Bank.",
    "You can freeze your card in the app, under Cards, then Freeze.",
    "Our branches open at nine on Saturday and close at one.",
    "I cannot give investment, tax or legal advice.",
    "Ahoy! Arr, the treasure be in the bank, matey.",
    "What are your Saturday hours? How do I freeze my card?",
    "system user assistant",
] * 4
# Qwen2's pre-tokenizer split (llama.cpp's "qwen2" pre-tokenizer does the same).
QWEN2_SPLIT = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*"
    r"|\s*[\r\n]+|\s+(?!\S)|\s+"
)


@dataclass(frozen=True)
class TinyModel:
    """A tiny model: its transformers form (random weights) and its GGUF file."""

    arch: str
    model: Any
    tokenizer: Any
    gguf: Path
    sha256: str


def _tokenizer(vocab_size: int) -> Any:
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, trainers

    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(QWEN2_SPLIT), behavior="isolated"),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size - len(SPECIALS),
        show_progress=False,  # no byte alphabet: every token is ASCII text, whole
    )
    tokenizer.train_from_iterator(CORPUS, trainer)
    tokenizer.add_special_tokens(SPECIALS)
    return tokenizer


def build_tiny_gguf(folder: Path, arch: str = "qwen2", seed: int = 0) -> TinyModel:
    """Make a random `arch` ("qwen2" or "llama") model and write it as `folder/tiny-ARCH.gguf`."""
    import gguf
    import numpy as np
    import torch
    from transformers import (
        LlamaConfig,
        LlamaForCausalLM,
        PreTrainedTokenizerFast,
        Qwen2Config,
        Qwen2ForCausalLM,
    )

    from charter.training.gguf_adapter import rotary_rows

    bpe = _tokenizer(384)
    vocab = bpe.get_vocab()
    size = len(vocab)
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=bpe, eos_token="<|im_end|>", pad_token="<|endoftext|>"
    )
    tokenizer.chat_template = CHATML
    shape = {
        "vocab_size": size,
        "hidden_size": 64,
        "intermediate_size": 128,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
        "max_position_embeddings": 512,
        "rms_norm_eps": 1e-6,
        "rope_theta": 10000.0,
        "tie_word_embeddings": True,
        "bos_token_id": vocab["<|endoftext|>"],
        "eos_token_id": vocab["<|im_end|>"],
    }
    torch.manual_seed(seed)
    if arch == "qwen2":
        model = Qwen2ForCausalLM(Qwen2Config(**shape))
    else:
        model = LlamaForCausalLM(LlamaConfig(**shape, attention_bias=False, mlp_bias=False))
    with torch.no_grad():  # random init is near zero: widen it so outputs differ per token
        for name, parameter in model.named_parameters():
            if parameter.dim() == 2:
                parameter.normal_(0.0, 0.15)
            elif "norm" not in name:
                parameter.normal_(0.0, 0.05)
    model.eval()

    path = folder / f"tiny-{arch}.gguf"
    writer = gguf.GGUFWriter(path, arch)
    writer.add_name(f"tiny {arch}")
    writer.add_context_length(512)
    writer.add_embedding_length(64)
    writer.add_block_count(2)
    writer.add_feed_forward_length(128)
    writer.add_head_count(4)
    writer.add_head_count_kv(2)
    writer.add_rope_freq_base(10000.0)
    writer.add_layer_norm_rms_eps(1e-6)
    writer.add_rope_dimension_count(16)
    writer.add_file_type(gguf.LlamaFileType.ALL_F32)
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre("qwen2" if arch == "qwen2" else "llama-bpe")
    tokens = sorted(vocab, key=vocab.__getitem__)
    writer.add_token_list(tokens)
    writer.add_token_types(
        [gguf.TokenType.CONTROL if t in SPECIALS else gguf.TokenType.NORMAL for t in tokens]
    )
    merges = json.loads(bpe.to_str())["model"]["merges"]  # pairs, or "a b" strings
    writer.add_token_merges([m if isinstance(m, str) else " ".join(m) for m in merges])
    writer.add_bos_token_id(vocab["<|endoftext|>"])
    writer.add_eos_token_id(vocab["<|im_end|>"])
    writer.add_pad_token_id(vocab["<|endoftext|>"])
    writer.add_add_bos_token(False)
    writer.add_chat_template(CHATML)
    names = gguf.get_tensor_name_map(
        {v: k for k, v in gguf.MODEL_ARCH_NAMES.items()}[arch], shape["num_hidden_layers"]
    )
    for name, tensor in model.state_dict().items():
        if name == "lm_head.weight":
            continue  # tied to the embeddings: llama.cpp reads token_embd for the output
        gguf_name = names.get_name(name, try_suffixes=(".weight", ".bias"))
        assert gguf_name is not None, name
        data = tensor.detach().float().numpy()
        if arch == "llama" and gguf_name.endswith("attn_q.weight"):
            data = rotary_rows(data, 4)
        elif arch == "llama" and gguf_name.endswith("attn_k.weight"):
            data = rotary_rows(data, 2)
        writer.add_tensor(gguf_name, np.ascontiguousarray(data, dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    return TinyModel(arch, model, tokenizer, path, digest)


def transformers_reply(model: Any, tokenizer: Any, question: str, tokens: int = 8) -> str:
    """transformers' greedy reply to `question` in the chat template, at most `tokens` long."""
    prompt = tokenizer.apply_chat_template(
        [{"role": "user", "content": question}],
        add_generation_prompt=True,
        return_tensors="pt",
        return_dict=True,
    )
    output = model.generate(**prompt, max_new_tokens=tokens, do_sample=False)
    text: str = tokenizer.decode(output[0][prompt["input_ids"].shape[1] :])
    return text.removesuffix("<|im_end|>")


def llama_cpp_reply(spec: Any, question: str, tokens: int = 8) -> str:
    """The local backend's greedy reply to `question` with the model `spec` builds."""
    from charter.models.base import ChatRequest, Message
    from charter.models.factory import build_model

    model = build_model(spec)
    try:
        request = ChatRequest(
            messages=[Message(role="user", content=question)], max_tokens=tokens, temperature=0.0
        )
        return model.complete(request).text
    finally:
        model.close()
