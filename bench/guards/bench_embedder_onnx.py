"""MiniLM built without torch against the torch export it replaced: tokens, embeddings and the
guards' decisions on the same texts.

    .venv/bin/python bench/guards/bench_embedder_onnx.py [--reference OLD.onnx] [--texts 500]

The runtime graph (guards/embedder.py) is written node by node from the packaged
safetensors and quantised by onnxruntime. The reference is the int8 graph Charter used to
export with torch (`$CHARTER_HOME/models/minilm/all-MiniLM-L6-v2-meanpool-norm-opset17-int8
.onnx`, left there by an older Charter); where it is missing, it is exported again with the
old recipe, which needs torch and transformers (`pip install torch transformers`: only for
this comparison). With transformers installed, the token ids and masks of the `tokenizers`
library are also compared with transformers' tokenizer, batch by batch.

Texts: Charter's own datasets (src/charter/datasets/own/*.jsonl: attack and hazard
descriptions, harmful-looking but benign requests, support complaints, model replies) plus,
where the public datasets are present, a sample of the guard corpus (in-the-wild
jailbreaks, injections and benign ShareGPT turns), and long texts made by joining several
(windows and the 128-token cut). Reported: the cosine similarity of the two
embeddings of each window (min, 1st percentile, mean) and the largest difference of a
coordinate; the injection classifier's, the harm classifier's (input, every sensitivity;
output on request/reply pairs) and the hate classifier's decisions, and how many agree; the
largest score difference. Results: bench/results/embedder-onnx.json.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import random
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from charter.guards.classifier import ClassifierWeights, InjectionClassifier
from charter.guards.embedder import (
    MAX_TOKENS,
    Embedder,
    _package_model,
    windows,
)
from charter.guards.harm import HarmClassifier, HarmWeights
from charter.guards.hate import HateClassifier
from charter.home import models_dir

ROOT = Path(__file__).resolve().parents[2]
OLD_EXPORT = "all-MiniLM-L6-v2-meanpool-norm-opset17-int8"


def own_texts() -> list[str]:
    texts: list[str] = []
    for path in sorted((ROOT / "src" / "charter" / "datasets" / "own").glob("*.jsonl")):
        for line in path.read_text(encoding="utf-8").splitlines():
            if line.strip():
                row = json.loads(line)
                texts.extend(str(row[k]) for k in ("text", "reply") if row.get(k))
    return texts


def corpus_texts(count: int, rng: random.Random) -> list[str]:
    try:
        from charter.datasets.guard_corpus import build_corpus

        examples = build_corpus()
    except Exception as exc:  # the public datasets are optional here
        print(f"guard corpus not available ({exc}); own datasets only", file=sys.stderr)
        return []
    attacks = [e.text for e in examples if e.label == 1]
    benign = [e.text for e in examples if e.label == 0]
    half = count // 2
    return rng.sample(attacks, min(half, len(attacks))) + rng.sample(
        benign, min(count - half, len(benign))
    )


def export_with_torch(source: Path, target: Path) -> None:
    """Charter's former recipe: torch.onnx.export of transformers' BertModel with mean pooling
    and normalisation, then onnxruntime's dynamic int8 quantisation."""
    import torch
    from onnxruntime.quantization import QuantType, quantize_dynamic
    from transformers import AutoModel

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

    float_path = target.with_suffix(".float.onnx")
    example = torch.ones((1, 8), dtype=torch.long)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
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
        quantize_dynamic(str(float_path), str(target), weight_type=QuantType.QInt8)
    float_path.unlink(missing_ok=True)


class ReferenceEmbedder(Embedder):
    """The same Embedder (tokenizer, batching, cache) running the reference graph."""

    def __init__(self, graph: Path) -> None:
        super().__init__()
        import onnxruntime

        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = min(2, os.cpu_count() or 1)
        options.inter_op_num_threads = 1
        self._session = onnxruntime.InferenceSession(
            str(graph), options, providers=["CPUExecutionProvider"]
        )


def compare_tokens(embedder: Embedder, texts: list[str]) -> dict[str, Any]:
    try:
        from transformers import AutoTokenizer
    except ImportError:
        return {"checked": False, "why": "transformers is not installed"}
    reference = AutoTokenizer.from_pretrained(str(_package_model()))
    batches = [texts[i : i + 32] for i in range(0, len(texts), 32)]
    differing = 0
    for batch in batches:
        theirs = reference(
            batch, padding=True, truncation=True, max_length=MAX_TOKENS, return_tensors="np"
        )
        ours = embedder.tokenize(batch)
        same = np.array_equal(theirs["input_ids"], ours["input_ids"]) and np.array_equal(
            theirs["attention_mask"], ours["attention_mask"]
        )
        differing += not same
    return {"checked": True, "batches": len(batches), "differing_batches": differing}


def agreement(name: str, new: list[float], old: list[float], threshold: float) -> dict[str, Any]:
    a = np.asarray(new) >= threshold
    b = np.asarray(old) >= threshold
    return {
        "decision": name,
        "threshold": round(threshold, 4),
        "texts": len(a),
        "flagged_new": int(a.sum()),
        "flagged_old": int(b.sum()),
        "agree": int((a == b).sum()),
        "max_score_diff": round(float(np.max(np.abs(np.asarray(new) - np.asarray(old)))), 5),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--reference", type=Path, help="the torch-exported int8 graph")
    parser.add_argument("--texts", type=int, default=500, help="texts besides the long ones")
    args = parser.parse_args()
    logging.getLogger().setLevel(logging.ERROR)
    rng = random.Random(7)

    reference = args.reference or models_dir() / "minilm" / f"{OLD_EXPORT}.onnx"
    if not reference.is_file():
        print(f"exporting the reference with torch into {reference}", file=sys.stderr)
        reference.parent.mkdir(parents=True, exist_ok=True)
        export_with_torch(_package_model(), reference)

    own = own_texts()
    pool = list(dict.fromkeys(own + corpus_texts(args.texts, rng)))
    texts = rng.sample(pool, min(args.texts, len(pool)))
    long = [" ".join(rng.sample(pool, 6)) for _ in range(40)]
    texts += long

    started = time.perf_counter()
    new = Embedder()
    built_s = time.perf_counter() - started
    old = ReferenceEmbedder(reference)

    pieces = list(dict.fromkeys(w for t in texts for w in windows(t)))
    a, b = new.embed(pieces), old.embed(pieces)
    cosines = np.sum(a * b, axis=1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))

    weights = ClassifierWeights.load()
    injection = [InjectionClassifier(e, weights).score_many(texts) for e in (new, old)]
    harm_weights = HarmWeights.load()
    harms = [HarmClassifier(e, harm_weights) for e in (new, old)]
    request = [[h.request_score(t) for t in texts] for h in harms]
    replies = [t for t in own if len(t.split()) > 12]
    pairs = [(texts[i % len(texts)], reply) for i, reply in enumerate(replies)]
    reply = [[h.reply_score(q, r) for q, r in pairs] for h in harms]
    hate = HateClassifier.load()
    hates = [[hate.score(t, e) for t in texts] for e in (new, old)]

    decisions = [agreement("injection: block", *injection, weights.threshold)]
    decisions.append(agreement("injection: uncertain band", *injection, weights.uncertain_below))
    for level, threshold in harm_weights.thresholds["input"].items():
        decisions.append(agreement(f"harm input: {level}", *request, threshold))
    for level, threshold in harm_weights.thresholds["output"].items():
        decisions.append(agreement(f"harm output: {level}", *reply, threshold))
    decisions.append(agreement("hate", *hates, hate.threshold))

    result = {
        "texts": len(texts),
        "long_texts": len(long),
        "windows": len(pieces),
        "build_s": round(built_s, 2),
        "tokens": compare_tokens(new, pieces),
        "cosine": {
            "min": round(float(cosines.min()), 6),
            "p01": round(float(np.percentile(cosines, 1)), 6),
            "mean": round(float(cosines.mean()), 6),
            "max_abs_diff": float(np.max(np.abs(a - b))),
        },
        "decisions": decisions,
    }
    print(json.dumps(result, indent=1))
    target = ROOT / "bench" / "results" / "embedder-onnx.json"
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
