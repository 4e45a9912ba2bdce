"""Build the guards a charter enables, by name, through the `charter.guards` registry.

The registry is `charter.plugins`: Charter's own guards below are registered there like any
other package's. Each guard's module is imported when the guard is built, so a charter that
names only rule guards needs no numpy; heavy parts (MiniLM, presidio) load once per process.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from charter import plugins
from charter.extras import requires_extra
from charter.guards.base import Guard, GuardDependencyError
from charter.plugins import GuardFactory, GuardSetup, Side

if TYPE_CHECKING:
    from charter.guards.classifier import InjectionClassifier
    from charter.guards.harm import HarmClassifier
    from charter.guards.hate import HateClassifier
    from charter.models.base import ChatModel
    from charter.spec.models import CharterSpec


@contextmanager
def _needs_guards_extra() -> Iterator[None]:
    """Name the `guards` extra when a guard that embeds text cannot import numpy.

    The guards that embed text import numpy: with only the core installed, building one says
    which extra to install instead of failing on a bare `No module named 'numpy'`.
    """
    with requires_extra("the guards", "guards", GuardDependencyError):
        yield


_classifiers: dict[str | None, InjectionClassifier] = {}


def shared_classifier(weights_path: str | None = None) -> InjectionClassifier:
    """One classifier per weights file per process (they share the embedder)."""
    if weights_path not in _classifiers:
        with _needs_guards_extra():
            from charter.guards.classifier import ClassifierWeights, InjectionClassifier
            from charter.guards.embedder import shared_embedder
        weights = ClassifierWeights.load(weights_path)
        _classifiers[weights_path] = InjectionClassifier(shared_embedder(), weights)
    return _classifiers[weights_path]


@functools.cache
def shared_hate() -> HateClassifier:
    """The packaged hate classifier, loaded once per process."""
    with _needs_guards_extra():
        from charter.guards.hate import HateClassifier
    return HateClassifier.load()


@functools.cache
def shared_harm() -> HarmClassifier:
    """The packaged harm classifier, loaded once per process."""
    with _needs_guards_extra():
        from charter.guards.embedder import shared_embedder
        from charter.guards.harm import HarmClassifier, HarmWeights
    return HarmClassifier(shared_embedder(), HarmWeights.load())


# --- Charter's own guards (pyproject.toml: [project.entry-points."charter.guards"]) ------------


def _extraction(setup: GuardSetup) -> Guard:
    from charter.guards.extraction import ExtractionGuard

    return ExtractionGuard()


def _injection(setup: GuardSetup) -> Guard:
    from charter.guards.judge import LLMJudge

    with _needs_guards_extra():
        from charter.guards.injection import InjectionGuard
    judge = None
    if setup.charter.guards.judge and setup.judge_model is not None:
        judge = LLMJudge(setup.judge_model())
    return InjectionGuard(shared_classifier(setup.charter.guards.classifier_weights), judge)


def _conversation(setup: GuardSetup) -> Guard:
    with _needs_guards_extra():
        from charter.guards.conversation import ConversationGuard
    return ConversationGuard(shared_classifier(setup.charter.guards.classifier_weights))


def _harm(setup: GuardSetup) -> Guard:
    with _needs_guards_extra():
        from charter.guards.harm import HarmGuard
    return HarmGuard(shared_harm(), setup.charter.guards.harm, direction=setup.side)


def _safety_model(setup: GuardSetup) -> Guard:
    from charter.guards.safety_model import build_safety_model_guard

    return build_safety_model_guard(setup.charter, setup.side)


def _leak(setup: GuardSetup) -> Guard:
    from charter.guards.leak import LeakGuard

    return LeakGuard(setup.charter)


def _toxicity(setup: GuardSetup) -> Guard:
    from charter.guards.toxicity import ToxicityGuard

    return ToxicityGuard()


def _hate(setup: GuardSetup) -> Guard:
    with _needs_guards_extra():
        from charter.guards.embedder import shared_embedder
        from charter.guards.hate import HateGuard
    return HateGuard(shared_hate(), shared_embedder())


def _pii(setup: GuardSetup) -> Guard:
    from charter.guards.pii import DEFAULT_ENTITIES, PIIGuard

    entities = tuple(setup.charter.guards.pii_entities or DEFAULT_ENTITIES)
    return PIIGuard(setup.charter, entities)


def _policy(setup: GuardSetup) -> Guard:
    with _needs_guards_extra():
        from charter.guards.embedder import shared_embedder
        from charter.guards.topics import PolicyGuard
    return PolicyGuard(setup.charter, shared_embedder())


EXTRACTION = GuardFactory("extraction", ("input",), _extraction)
INJECTION = GuardFactory("injection", ("input",), _injection)
CONVERSATION = GuardFactory("conversation", ("input",), _conversation)
HARM = GuardFactory("harm", ("input", "output"), _harm)
SAFETY_MODEL = GuardFactory("safety_model", ("input", "output"), _safety_model)
LEAK = GuardFactory("leak", ("output",), _leak)
TOXICITY = GuardFactory("toxicity", ("output",), _toxicity)
HATE = GuardFactory("hate", ("output",), _hate)
PII = GuardFactory("pii", ("output",), _pii)
POLICY = GuardFactory("policy", ("output",), _policy)


# --- building a charter's guards --------------------------------------------------------------


def build_guard(
    charter: CharterSpec,
    name: str,
    side: Side,
    *,
    judge_model: Callable[[], ChatModel] | None = None,
) -> Guard:
    """The guard registered as `name`, built for `side` with its options from the charter.

    The options are the charter's `guards.options.<name>`. Raises PluginError when no guard is
    registered as `name` or it does not run on `side`.
    """
    factory = plugins.guards.get(name)
    if side not in factory.sides:
        raise plugins.PluginError(f"the {name} guard runs on {' and '.join(factory.sides)} only")
    options = None
    if factory.options is not None:
        options = plugins.options_of(factory.options, charter.guards.options.get(name, {}))
    setup = GuardSetup(charter=charter, side=side, options=options, judge_model=judge_model)
    return factory.build(setup)


def build_input_guards(
    charter: CharterSpec, *, judge_model: Callable[[], ChatModel] | None = None
) -> list[Guard]:
    """The charter's input guards, cheapest first; `judge_model` makes the LLM judge's model."""
    guards = [
        build_guard(charter, name, "input", judge_model=judge_model)
        for name in charter.guards.input
    ]
    return sorted(guards, key=lambda g: g.cost)


def build_output_guards(charter: CharterSpec) -> list[Guard]:
    """The charter's output guards, cheapest first."""
    guards = [build_guard(charter, name, "output") for name in charter.guards.output]
    return sorted(guards, key=lambda g: g.cost)
