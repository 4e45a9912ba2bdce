"""Find the parts installed packages register, Charter's own included; look them up by name.

The parts are guards, model backends, eval suites and persona checks.

A package registers a part as a Python entry point in one of four groups; the object the
entry point names is the part's factory, a small frozen dataclass defined here:

| group | the entry point names a | in the charter file |
|---|---|---|
| `charter.guards` | `GuardFactory` | `guards.input`, `guards.output`, `guards.options` |
| `charter.backends` | `BackendFactory` | `models.chat.backend` (and `strong`, `judge`) |
| `charter.suites` | `SuiteFactory` | `charter eval --suites NAME` |
| `charter.checks` | `CheckFactory` | a key of `constitution[].check` |

Charter's own parts are registered the same way, in its `pyproject.toml`. Entry points are
read the first time a name is looked up and kept for the life of the process
(`clear_cache()` reads them again); an entry point's object is imported only when its own
name is looked up, so a charter that names only cheap guards never imports the heavy ones.
How to write each part: docs/extending.md.
"""

from __future__ import annotations

import functools
import importlib
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from importlib.metadata import EntryPoint, entry_points
from typing import TYPE_CHECKING, Any, Generic, Literal, TypeVar

from pydantic import TypeAdapter

from charter.errors import CharterError

if TYPE_CHECKING:
    from charter.eval.cases import Case
    from charter.eval.scoring import Scorer
    from charter.guards.base import Guard
    from charter.models.base import ChatModel
    from charter.persona.checks import PersonaCheck
    from charter.spec.models import CharterSpec, ModelSpecBase

Side = Literal["input", "output"]
"""Where a guard runs: on the user's message (input) or on the reply (output)."""

SIDES: tuple[Side, ...] = ("input", "output")
OWN = "charter"
"""The distribution whose entry points are Charter's own parts."""
_lock = threading.RLock()  # loading entry points, and the caches


class PluginError(CharterError):
    """A part that cannot be found or loaded.

    An unknown name, a broken entry point, or a name that two packages register.
    """


# --- what an entry point names ---------------------------------------------------------------


@dataclass(frozen=True)
class GuardSetup:
    """What a guard's `build` gets: the charter, the side it is built for, and its options.

    The options are `guards.options.<name>`, validated as the factory's `options` type (None when
    the charter gives none).
    """

    charter: CharterSpec
    side: Side
    options: Any = None
    judge_model: Callable[[], ChatModel] | None = None
    """The charter's judge model, built on first call (None where no judge may be asked)."""


@dataclass(frozen=True)
class GuardFactory:
    """A guard a charter can name in `guards.input` and/or `guards.output`."""

    name: str
    sides: tuple[Side, ...]
    """Where it may run: ("input",), ("output",) or both."""
    build: Callable[[GuardSetup], Guard]
    options: Any = None
    """The type `guards.options.<name>` is validated as (a pydantic model, usually) when the
    charter is loaded; None: the guard takes no options."""

    def __post_init__(self) -> None:
        if not self.sides or any(side not in SIDES for side in self.sides):
            raise TypeError(f"guard {self.name!r}: sides must be 'input' and/or 'output'")


S = TypeVar("S", bound="ModelSpecBase")


@dataclass(frozen=True)
class BackendFactory(Generic[S]):
    """A model backend a charter names with `backend: <name>` in a model spec."""

    name: str
    spec: type[S]
    """Its settings in the charter: a subclass of `charter.spec.models.ModelSpecBase`
    with a field `backend: Literal["<name>"]`."""
    build: Callable[[S], ChatModel]
    model_name: Callable[[S], str] | None = None
    """The name the built model will have, without building it; default: the spec's
    `model` field, or else the backend's name."""

    def __post_init__(self) -> None:
        from charter.spec.models import ModelSpecBase

        if not (isinstance(self.spec, type) and issubclass(self.spec, ModelSpecBase)):
            raise TypeError(
                f"backend {self.name!r}: spec must be a subclass of "
                "charter.spec.models.ModelSpecBase"
            )
        field = self.spec.model_fields.get("backend")
        if field is None or getattr(field.annotation, "__args__", None) != (self.name,):
            raise TypeError(
                f"backend {self.name!r}: its spec class {self.spec.__name__} needs the field "
                f'backend: Literal["{self.name}"]'
            )


@dataclass(frozen=True)
class SuiteFactory:
    """An eval suite `charter eval --suites <name>` runs: its cases and how one is scored.

    `metric` is what a failure is called in the report.
    """

    name: str
    load: Callable[[CharterSpec], list[Case]]
    """Every case of the suite for this charter (each with `suite=<name>`); `charter eval`
    samples them per its profile or --limit."""
    score: Scorer
    """One condition's reply to one case -> `Score(failed, why)`."""
    metric: str
    """What a failure is, as a plural noun phrase: 'replies that name a competitor'."""


@dataclass(frozen=True)
class CheckFactory:
    """A persona check a principle names as a key of its `check` mapping."""

    name: str
    build: Callable[[Any, CharterSpec], PersonaCheck]
    """(the key's value, the charter) -> the check; Charter gives the check its id,
    `<principle id>.<name>`."""
    options: Any = None
    """The type the key's value is validated as when the charter is loaded; None: any
    value, passed as written."""


_adapters: dict[Any, TypeAdapter[Any]] = {}


def options_of(expected: Any, value: Any) -> Any:
    """`value` validated as the type `expected` (a factory's `options`); None: `value` as it is.

    Raises pydantic's ValidationError.
    """
    if expected is None:
        return value
    with _lock:
        adapter = _adapters.get(expected)
        if adapter is None:
            adapter = _adapters[expected] = TypeAdapter(expected)
    return adapter.validate_python(value)


# --- the registries --------------------------------------------------------------------------

T = TypeVar("T")


def _package(entry: EntryPoint) -> str:
    dist = getattr(entry, "dist", None)
    return str(dist.name) if dist is not None else "(unknown package)"


@functools.cache
def _found(group: str) -> dict[str, tuple[EntryPoint, ...]]:
    """The group's entry points by name, Charter's own first, then the rest by name.

    Charter's own are in the order its metadata lists them. A name may have several entry points
    (from different packages).
    """
    by_name: dict[str, list[EntryPoint]] = {}
    for entry in entry_points(group=group):
        by_name.setdefault(entry.name, []).append(entry)
    own = [n for n, es in by_name.items() if any(_package(e) == OWN for e in es)]
    rest = sorted(n for n in by_name if n not in own)
    return {name: tuple(by_name[name]) for name in (*own, *rest)}


class Registry(Generic[T]):
    """The parts of one kind: their names and each part's factory.

    The names are read from the entry points, with nothing imported; a part's entry point is loaded
    on its first lookup.
    """

    def __init__(self, group: str, kind: str, contract: type[T]) -> None:
        self.group = group
        self.kind = kind
        self.contract = contract
        self._loaded: dict[str, T] = {}

    def names(self) -> list[str]:
        """Every registered name, Charter's own first."""
        return list(_found(self.group))

    def own(self) -> list[str]:
        """The names Charter itself registers."""
        return [n for n, es in _found(self.group).items() if any(_package(e) == OWN for e in es)]

    def __contains__(self, name: object) -> bool:
        return name in _found(self.group)

    def get(self, name: str) -> T:
        """The factory registered as `name`.

        Raises PluginError when there is none, when two packages register it, or when its entry
        point cannot be loaded.
        """
        with _lock:
            if name in self._loaded:
                return self._loaded[name]
            entries = _found(self.group).get(name)
            if not entries:
                raise PluginError(self.unknown(name))
            packages = sorted({_package(e) for e in entries})
            if len(packages) > 1:
                both = " and ".join(
                    f"{_package(e)} ({e.name} = {e.value})" for e in sorted(entries, key=_package)
                )
                raise PluginError(
                    f"{self.kind} {name!r} is registered by {len(packages)} packages, {both} "
                    f"(entry point group {self.group}): uninstall one of them"
                )
            entry = entries[0]
            factory = self._load(entry)
            self._loaded[name] = factory
            return factory

    def unknown(self, name: str, first: Sequence[str] = ()) -> str:
        """Why `name` is not found, with the names that are (`first` listed first)."""
        names = [*first, *(n for n in self.names() if n not in first)]
        known = ", ".join(repr(n) for n in names) or "none"
        return (
            f"unknown {self.kind} {name!r}; registered {self.kind}s: {known}. A {self.kind} "
            "from another package is found once that package is installed in this Python "
            f"environment (entry point group {self.group}): a plugin may be missing"
        )

    def _load(self, entry: EntryPoint) -> T:
        where = f"entry point {entry.name} = {entry.value} of package {_package(entry)}"
        try:
            loaded = entry.load()
        except Exception as exc:
            raise PluginError(
                f"cannot load {self.kind} {entry.name!r} ({where}): {type(exc).__name__}: {exc}"
            ) from exc
        if not isinstance(loaded, self.contract):
            raise PluginError(
                f"{self.kind} {entry.name!r} ({where}) is a {type(loaded).__name__}, not a "
                f"charter.plugins.{self.contract.__name__}"
            )
        named = getattr(loaded, "name", entry.name)
        if named != entry.name:
            raise PluginError(
                f"{self.kind} {entry.name!r} ({where}) is named {named!r}; "
                "the entry point's name and the factory's name must be the same"
            )
        return loaded

    def clear(self) -> None:
        with _lock:
            self._loaded.clear()


guards: Registry[GuardFactory] = Registry("charter.guards", "guard", GuardFactory)
backends: Registry[BackendFactory[Any]] = Registry("charter.backends", "backend", BackendFactory)
suites: Registry[SuiteFactory] = Registry("charter.suites", "suite", SuiteFactory)
checks: Registry[CheckFactory] = Registry("charter.checks", "check", CheckFactory)


def clear_cache() -> None:
    """Read the entry points again on the next lookup.

    For after installing a package into a running process, and for tests.
    """
    importlib.invalidate_caches()  # the import system's view of the folders on sys.path
    with _lock:
        _found.cache_clear()
        _adapters.clear()
        for registry in (guards, backends, suites, checks):
            registry.clear()
