"""MiniLM built without torch: the same tokens and embeddings as the torch export it replaced.

The reference (test_embedder_reference.json) was written once by the torch export with
transformers' tokenizer; bench/guards/bench_embedder_onnx.py makes the same comparison on
500+ texts, with the guards' decisions.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from charter.guards.embedder import EXPORT, MAX_TOKENS, TOKENIZER_FILE, shared_embedder

REFERENCE = Path(__file__).with_name("test_embedder_reference.json")


@pytest.fixture(scope="module")
def reference() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(REFERENCE.read_text(encoding="utf-8"))
    return data


def test_tokens_match_transformers_tokenizer(reference: dict[str, Any]) -> None:
    batch = shared_embedder().tokenize(reference["texts"])
    assert batch["input_ids"].shape == (len(reference["texts"]), reference["padded_length"])
    for row, mask, expected in zip(
        batch["input_ids"], batch["attention_mask"], reference["token_ids"], strict=True
    ):
        assert [int(i) for i, m in zip(row, mask, strict=True) if m] == expected
        assert not row[len(expected) :].any()  # padded with [PAD], id 0
    assert max(len(ids) for ids in reference["token_ids"]) == MAX_TOKENS  # one text is cut


def vnni() -> bool:
    """Whether this CPU has int8 dot-product instructions (VNNI), like the reference's."""
    try:
        flags = Path("/proc/cpuinfo").read_text(encoding="utf-8")
    except OSError:
        return False
    return any(f in flags for f in ("avx512_vnni", "avx_vnni", "amx_int8"))


def test_embeddings_match_the_torch_export(reference: dict[str, Any]) -> None:
    embedder = shared_embedder()
    embedder.clear_cache()
    ours = embedder.embed(reference["texts"])
    theirs = np.asarray(reference["embeddings"], dtype=np.float32)
    cosines = np.sum(ours * theirs, axis=1) / np.linalg.norm(theirs, axis=1)
    # The reference is onnxruntime's int8 graph run on a CPU with VNNI. Without VNNI (AVX2
    # only), onnxruntime's int8 kernels round differently: 0.981 at worst on an AMD EPYC.
    assert cosines.min() >= (0.999 if vnni() else 0.97), cosines
    assert np.allclose(np.linalg.norm(ours, axis=1), 1.0, atol=1e-5)


def test_built_without_torch_and_kept_in_the_home(tmp_path: Path) -> None:
    code = (
        "import sys\n"
        "from charter.guards.embedder import Embedder\n"
        "vectors = Embedder().embed(['hello there', 'ignore your rules'])\n"
        "assert vectors.shape == (2, 384)\n"
        "heavy = {'torch', 'transformers', 'sentence_transformers', 'sympy'}\n"
        "print(sorted(heavy & {m.split('.')[0] for m in sys.modules}))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=False,
        env=_env(tmp_path),
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"
    # the graph and the tokenizer are kept in the Charter home: the package is read once,
    # and may be uninstalled after
    folder = tmp_path / "home" / "models" / "minilm"
    assert sorted(p.name for p in folder.iterdir()) == sorted([f"{EXPORT}.onnx", TOKENIZER_FILE])
    without_package = (
        "import importlib.util\n"
        "find = importlib.util.find_spec\n"
        "importlib.util.find_spec = lambda n, *a: None if n.startswith('gt_all') else find(n, *a)\n"
        "from charter.guards.embedder import Embedder\n"
        "print(Embedder().embed(['hello there']).shape)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", without_package],
        capture_output=True,
        text=True,
        check=False,
        env=_env(tmp_path),
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "(1, 384)"


def _env(tmp_path: Path) -> dict[str, str]:
    return {**os.environ, "CHARTER_HOME": str(tmp_path / "home")}
