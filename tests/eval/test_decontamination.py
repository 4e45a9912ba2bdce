"""No eval suite scores a guard on a text that guard was trained or calibrated on: every case
is hashed against the training manifests `charter guard train*` write next to the weights."""

from __future__ import annotations

from pathlib import Path

import pytest

from charter.datasets.guard_sources import SOURCES, final_fingerprints
from charter.datasets.manifest import fingerprint, read_manifest, shipped_fingerprints
from charter.eval import cases as case_sets
from charter.eval.evaluate import ALL_SUITES, EvalSettings, select_cases
from charter.spec import load_charter

ACME = Path(__file__).parents[2] / "examples" / "acme-bank" / "charter.yaml"
MANIFESTS = Path(__file__).parents[2] / "src" / "charter" / "guards" / "data" / "manifests"


def test_every_shipped_guard_model_has_a_manifest() -> None:
    names = {p.name for p in MANIFESTS.iterdir()}
    for model in ("injection_classifier", "harm_classifier", "hate_classifier"):
        assert f"{model}.manifest.txt" in names
        assert len(read_manifest(MANIFESTS / f"{model}.manifest.txt")) > 500


def test_the_manifests_hold_what_was_trained_on() -> None:
    trained = shipped_fingerprints()
    final = final_fingerprints()
    advbench = [t for t in SOURCES["advbench"].load() if fingerprint(t.text) not in final]
    assert len(advbench) > 400
    # All but the near-duplicates of held-out requests, which training leaves out too.
    missing = [t.text for t in advbench if fingerprint(t.text) not in trained]
    assert len(missing) < 0.05 * len(advbench)


@pytest.mark.parametrize("source", [n for n, s in SOURCES.items() if s.final])
def test_no_guard_learnt_from_the_final_held_out_sources(source: str) -> None:
    trained = shipped_fingerprints()
    leaked = [t.text for t in SOURCES[source].load() if fingerprint(t.text) in trained]
    assert leaked == []


def test_no_selected_eval_case_is_in_a_training_manifest() -> None:
    spec = load_charter(ACME)
    suites = tuple(s for s in ALL_SUITES if s in case_sets.LOADERS)
    picked = select_cases(spec, EvalSettings(charter=ACME, suites=suites, limit=None))
    trained = shipped_fingerprints()
    assert picked
    assert [c.key for c in picked if fingerprint(c.message) in trained] == []


def test_the_filter_removes_trained_texts_and_keeps_the_rest() -> None:
    spec = load_charter(ACME)
    raw = case_sets.under_refusal(spec)
    kept = case_sets.uncontaminated(raw)
    dropped = {c.meta["source"] for c in raw if c not in kept}
    assert dropped == {"donotanswer"}  # its malicious uses train the harm guard
    assert len(case_sets.uncontaminated(case_sets.over_refusal(spec))) == 250
