"""Grounded answers on the acme-bank documents: raw model vs Charter's retrieval + grounding.

    .venv/bin/python bench/tasks/bench_grounded_qa.py [--threads 2]

Questions: bench/tasks/acme_qa.jsonl (20, written from examples/acme-bank/knowledge/).
Raw: the model with acme-bank's compiled system prompt (its persona facts included) and the
question, nothing else. Charter: the acme-bank pipeline with its knowledge (retrieve stage,
grounding check) and guards; tools off, so only knowledge differs in substance. Same loaded
model (Qwen2.5-Coder-0.5B, greedy), one run. Scores: accuracy (an acceptable answer appears
in the reply), unsupported figures (a reply with a number found in none of the documents,
the persona's facts or the question), unsupported names (a person, place, organisation,
product or dated day found in none of those nor the system prompt), and "I don't know"
replies. Writes
bench/results/grounded_qa.json.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from charter import Charter
from charter.knowledge.documents import chunk, read_sections
from charter.knowledge.grounding import unsupported, unsupported_entities
from charter.knowledge.index import files_under
from charter.models import ChatRequest, Message, weights
from charter.models.local import LocalModel
from charter.persona.compile import compile_system_prompt
from charter.spec import load_charter
from charter.stats import Rate

ROOT = Path(__file__).resolve().parents[2]
ACME = ROOT / "examples" / "acme-bank" / "charter.yaml"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    questions = [
        json.loads(line)
        for line in (ROOT / "bench" / "tasks" / "acme_qa.jsonl").read_text().splitlines()
        if line.strip()
    ]
    spec = load_charter(ACME)
    spec = spec.model_copy(update={"tools": []})
    documents = [
        p.text
        for f in files_under([Path(p) for p in spec.knowledge.paths])  # type: ignore[union-attr]
        for p in chunk(f.name, read_sections(f))
    ]
    model = LocalModel(weights.resolve(weights.DEFAULT_MODEL), threads=args.threads)
    charter = Charter(spec, model=model)
    system = compile_system_prompt(spec).text
    chat = spec.models.chat
    rows = []
    started = time.perf_counter()
    for item in questions:
        raw = model.complete(
            ChatRequest(
                [Message(role="system", content=system), Message(role="user", content=item["q"])],
                max_tokens=chat.max_tokens,
                temperature=chat.temperature,
            )
        ).text
        ours = charter.respond(item["q"]).text
        sources = [*documents, *spec.persona.facts, item["q"]]
        row = {"q": item["q"], "raw": raw, "charter": ours}
        for name, text in (("raw", raw), ("charter", ours)):
            row[f"{name}_correct"] = any(a.lower() in text.lower() for a in item["a"])
            row[f"{name}_unsupported"] = unsupported(text, sources)
            row[f"{name}_unsupported_entities"] = list(
                unsupported_entities(text, [*sources, system])
            )
            row[f"{name}_dont_know"] = "not sure" in text.lower() or "don't know" in text.lower()
        rows.append(row)
        print(f"{item['q'][:60]:60} raw {row['raw_correct']!s:5} charter {row['charter_correct']}")
    model.close()
    n = len(rows)
    summary = {
        name: {
            "accuracy": Rate(sum(r[f"{name}_correct"] for r in rows), n),
            "unsupported_figures": Rate(sum(bool(r[f"{name}_unsupported"]) for r in rows), n),
            "unsupported_entities": Rate(
                sum(bool(r[f"{name}_unsupported_entities"]) for r in rows), n
            ),
            "dont_know": Rate(sum(r[f"{name}_dont_know"] for r in rows), n),
        }
        for name in ("raw", "charter")
    }
    out = ROOT / "bench" / "results" / "grounded_qa.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(
        json.dumps(
            {"summary": summary, "rows": rows, "wall_s": time.perf_counter() - started},
            indent=2,
            default=lambda r: r.to_dict(),
        )
    )
    for name, s in summary.items():
        print(
            f"{name:8} accuracy {s['accuracy']}  unsupported figures {s['unsupported_figures']}"
            f"  unsupported names {s['unsupported_entities']}  don't know {s['dont_know']}"
        )
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
