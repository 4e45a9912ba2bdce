"""Build the guards a charter enables, by name. One hop: the name in the charter is the key
here, and the value builds the guard. Heavy parts (MiniLM, presidio) load once per process."""

from __future__ import annotations

import functools
from collections.abc import Callable

from charter.extras import requires_extra
from charter.guards.base import Guard, GuardDependencyError
from charter.guards.extraction import ExtractionGuard
from charter.guards.judge import LLMJudge
from charter.guards.leak import LeakGuard
from charter.guards.pii import DEFAULT_ENTITIES, PIIGuard
from charter.guards.safety_model import build_safety_model_guard
from charter.guards.toxicity import ToxicityGuard
from charter.models.base import ChatModel
from charter.spec.models import CharterSpec

# The guards that embed text import numpy: with only the core installed, building guards
# says which extra to install instead of failing on a bare `No module named 'numpy'`.
with requires_extra("the guards", "guards", GuardDependencyError):
    from charter.guards.classifier import ClassifierWeights, InjectionClassifier
    from charter.guards.conversation import ConversationGuard
    from charter.guards.embedder import shared_embedder
    from charter.guards.harm import HarmClassifier, HarmGuard, HarmWeights
    from charter.guards.hate import HateClassifier, HateGuard
    from charter.guards.injection import InjectionGuard
    from charter.guards.topics import PolicyGuard

_classifiers: dict[str | None, InjectionClassifier] = {}


def shared_classifier(weights_path: str | None = None) -> InjectionClassifier:
    """One classifier per weights file per process (they share the embedder)."""
    if weights_path not in _classifiers:
        weights = ClassifierWeights.load(weights_path)
        _classifiers[weights_path] = InjectionClassifier(shared_embedder(), weights)
    return _classifiers[weights_path]


@functools.cache
def shared_hate() -> HateClassifier:
    """The packaged hate classifier, loaded once per process."""
    return HateClassifier.load()


@functools.cache
def shared_harm() -> HarmClassifier:
    """The packaged harm classifier, loaded once per process."""
    return HarmClassifier(shared_embedder(), HarmWeights.load())


def build_input_guards(
    charter: CharterSpec, *, judge_model: Callable[[], ChatModel] | None = None
) -> list[Guard]:
    guards: list[Guard] = []
    weights = charter.guards.classifier_weights
    for name in charter.guards.input:
        if name == "extraction":
            guards.append(ExtractionGuard())
        elif name == "injection":
            judge = LLMJudge(judge_model()) if charter.guards.judge and judge_model else None
            guards.append(InjectionGuard(shared_classifier(weights), judge))
        elif name == "conversation":
            guards.append(ConversationGuard(shared_classifier(weights)))
        elif name == "harm":
            guards.append(HarmGuard(shared_harm(), charter.guards.harm, direction="input"))
        elif name == "safety_model":
            guards.append(build_safety_model_guard(charter, "input"))
    return sorted(guards, key=lambda g: g.cost)


def build_output_guards(charter: CharterSpec) -> list[Guard]:
    guards: list[Guard] = []
    for name in charter.guards.output:
        if name == "leak":
            guards.append(LeakGuard(charter))
        elif name == "toxicity":
            guards.append(ToxicityGuard())
        elif name == "hate":
            guards.append(HateGuard(shared_hate(), shared_embedder()))
        elif name == "pii":
            entities = tuple(charter.guards.pii_entities or DEFAULT_ENTITIES)
            guards.append(PIIGuard(charter, entities))
        elif name == "policy":
            guards.append(PolicyGuard(charter, shared_embedder()))
        elif name == "harm":
            guards.append(HarmGuard(shared_harm(), charter.guards.harm, direction="output"))
        elif name == "safety_model":
            guards.append(build_safety_model_guard(charter, "output"))
    return sorted(guards, key=lambda g: g.cost)
