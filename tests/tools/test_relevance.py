"""The relevance gate: features, scores, the packaged fit, and fitting."""

from __future__ import annotations

import json
from importlib import resources

import pytest

from charter.eval.relevance_gate import fit
from charter.tools.relevance import FEATURES, Gate, packaged_gate
from charter.tools.words import Vocabulary, content_words, non_latin


def test_shared_words_count_plurals_and_shortened_forms_once_each() -> None:
    asked = content_words("Avoid the tolls and highways; list the carbs")
    tool = Vocabulary("Directions avoiding toll roads. Nutrition: carbohydrates, highway exits")
    # tolls/toll, highways/highway, carbs/carbohydrates; "avoid"/"avoiding" too
    assert tool.shared(asked) == 4
    assert tool.shared(content_words("What time is it in Sydney?")) == 0
    assert "statistics" not in Vocabulary("station")  # a common start is not enough


def test_common_words_are_not_counted() -> None:
    assert content_words("Could you please tell me what that would be") == {"tell"}


def test_scripts_other_than_latin_are_told_apart() -> None:
    assert non_latin("请帮我检索一下'红星科技'公司目前所有未解决的工单")
    assert non_latin("ช่วยหาคุณแม่บ้านที่ให้บริการรีดผ้า")
    assert not non_latin("Café au lait, s'il vous plaît, à 10 h")
    assert not non_latin("12345")


def test_the_gate_is_a_logistic_regression_over_its_features() -> None:
    gate = Gate((2.0, 0.0, 1.0, 0.0), -1.0, 0.5)
    assert gate.score([0.5, 0.9, 0.0, 1.0]) == pytest.approx(0.5)
    assert gate.score([0.5, 0.0, 2.0, 0.0]) == pytest.approx(1 / (1 + 2.718281828**-2))


def test_the_packaged_gate_was_fitted_on_the_development_half_only() -> None:
    data = json.loads(
        resources.files("charter.tools.data").joinpath("relevance_gate.json").read_text()
    )
    assert tuple(data["features"]) == FEATURES
    assert "development half" in data["meta"]["data"]
    gate = packaged_gate()
    assert 0.0 < gate.threshold < 1.0
    # every feature pushes towards "relevant"
    assert all(c > 0 for c in gate.coefficients)


def test_fitting_keeps_the_asked_share_of_calling_questions() -> None:
    pairs = [("simple_python", f"c{i}", [i / 20, i / 20, float(i % 3), 0.0], 1) for i in range(20)]
    pairs += [("irrelevance", f"i{i}", [i / 40, i / 40, 0.0, 0.0], 0) for i in range(20)]
    result = fit(pairs, recall=0.9)
    gate = Gate(tuple(result["coefficients"]), result["intercept"], result["threshold"])
    kept = [
        gate.score(row) >= gate.threshold
        for category, _, row, _ in pairs
        if category != "irrelevance"
    ]
    assert sum(kept) == 18  # 90% of 20
    assert result["meta"]["calling_questions_kept"] == 0.9
    assert 0.0 <= result["meta"]["irrelevance_questions_still_offered"] < 1.0
