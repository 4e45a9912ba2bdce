"""Build a model backend from its charter spec, through the `charter.backends` registry.

The registry is `charter.plugins`: Charter's own backends below are registered there like any other
package's. Backends are imported lazily, so an optional runtime that is not installed costs nothing
until a charter asks for it.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from charter import plugins
from charter.errors import ModelError, ModelNotAvailableError, WeightsIntegrityError
from charter.models import weights
from charter.models.base import ChatModel
from charter.plugins import BackendFactory
from charter.spec.models import (
    FakeModelSpec,
    LiteLLMModelSpec,
    LocalModelSpec,
    ModelSpec,
    OpenAIModelSpec,
)

if TYPE_CHECKING:
    from charter.models.llamacpp_python import LlamaCppPythonModel
    from charter.models.local import LocalModel


def build_model(spec: ModelSpec, *, progress: weights.Progress | None = None) -> ChatModel:
    """The model `spec` describes, built by the backend registered as `spec.backend`.

    `progress` is told how a local model's weights are verified.
    """
    if progress is not None and isinstance(spec, LocalModelSpec):
        return _build_local(spec, progress)
    factory = _factory(spec)
    return factory.build(spec)


def _factory(spec: ModelSpec) -> BackendFactory[ModelSpec]:
    factory: BackendFactory[ModelSpec] = plugins.backends.get(spec.backend)
    if not isinstance(spec, factory.spec):
        raise plugins.PluginError(
            f"backend {spec.backend!r} is registered with the spec class "
            f"{factory.spec.__name__}, not {type(spec).__name__}"
        )
    return factory


def _build_fake(spec: FakeModelSpec) -> ChatModel:
    from charter.models.fake import FakeModel

    return FakeModel(
        spec.replies[:-1], default=spec.replies[-1], context_window=spec.context_window
    )


def _build_openai(spec: OpenAIModelSpec) -> ChatModel:
    from charter.models.openai_http import OpenAIModel

    return OpenAIModel(
        base_url=spec.base_url,
        model=spec.model,
        api_key=_api_key(spec.api_key_env),
        timeout_s=spec.timeout_s,
        max_retries=spec.max_retries,
        context_window=spec.context_window,
        native_tools=spec.tool_calls == "native",
    )


def _build_litellm(spec: LiteLLMModelSpec) -> ChatModel:
    from charter.models.litellm_backend import LiteLLMModel

    return LiteLLMModel(
        model=spec.model,
        api_base=spec.api_base,
        api_key=_api_key(spec.api_key_env),
        timeout_s=spec.timeout_s,
        max_retries=spec.max_retries,
        context_window=spec.context_window,
        native_tools=spec.tool_calls == "native",
        params=spec.params,
    )


def _api_key(env: str | None) -> str | None:
    """The key in the environment variable `env` names (None when the spec names none)."""
    if not env:
        return None
    api_key = os.environ.get(env)
    if not api_key:
        raise ModelError(f"models: api_key_env names ${env}, which is not set")
    return api_key


def model_name(spec: ModelSpec) -> str:
    """The name `build_model(spec)` would give its model, without building (or loading) it."""
    factory = _factory(spec)
    if factory.model_name is not None:
        return factory.model_name(spec)
    model = getattr(spec, "model", None)
    return model if isinstance(model, str) else factory.name


def _local_name(spec: LocalModelSpec) -> str:
    if spec.model in weights.CATALOG:
        return spec.model
    return Path(spec.path or spec.model).expanduser().stem


def local_weights_path(spec: LocalModelSpec, progress: weights.Progress | None = None) -> Path:
    """The verified .gguf file a local spec refers to."""
    if spec.model in weights.CATALOG:
        return weights.resolve(spec.model, path=spec.path, progress=progress)
    candidate = Path(spec.path or spec.model).expanduser()
    if candidate.suffix != ".gguf" and not candidate.exists():
        weights.get_weights(spec.model)  # raises: unknown name, with the known ones listed
    if spec.sha256 is None:
        raise ModelNotAvailableError(
            f"model file {candidate} is not in the catalog, so its SHA-256 must be given in the "
            "charter (models.chat.sha256); get it with `sha256sum FILE` from a trusted copy"
        )
    return weights.verify(candidate, spec.sha256, progress)


def _checked_file(where: str, path_text: str, sha256: str, what: str, command: str) -> Path:
    """The file at `path_text` if it exists and matches `sha256`; errors name `where`.

    A file that changes every reply (an adapter, a steering file) is refused like wrong
    weights.
    """
    path = Path(path_text).expanduser()
    if not path.is_file():
        raise ModelNotAvailableError(
            f"{what} not found: {path} ({where}.path); `{command}` writes one and prints its path"
        )
    actual = weights.sha256_of(path)
    if actual != sha256.lower():
        raise WeightsIntegrityError(
            f"SHA-256 mismatch for the {what} {path}: {where}.sha256 is {sha256}, the file's "
            f"is {actual}; it was not used. Set the SHA-256 that `{command}` printed for it, "
            f"or point {where.rsplit('.', 1)[-1]}.path at that file."
        )
    return path


def local_adapter_path(spec: LocalModelSpec) -> Path | None:
    """The verified LoRA adapter file a local spec applies, or None when it names none."""
    if spec.adapter is None:
        return None
    return _checked_file(
        "models.chat.adapter",
        spec.adapter.path,
        spec.adapter.sha256,
        "LoRA adapter",
        "charter tune",
    )


def local_steered_path(spec: LocalModelSpec, base: Path) -> Path:
    """`base`, or its steered copy when the spec names a (verified) steering file."""
    steering = spec.steering
    if steering is None or steering.strength == 0:
        return base
    from charter.home import models_dir
    from charter.models.steering import steered_weights

    path = _checked_file(
        "models.chat.steering", steering.path, steering.sha256, "steering file", "charter steer"
    )
    return steered_weights(base, path, steering.strength, into=models_dir() / "steered")


def _build_local(spec: LocalModelSpec, progress: weights.Progress | None = None) -> ChatModel:
    path = local_steered_path(spec, local_weights_path(spec, progress))
    adapter = local_adapter_path(spec)
    scale = spec.adapter.scale if spec.adapter is not None else 1.0
    name = spec.model if spec.model in weights.CATALOG else path.stem
    runtime: type[LocalModel] | type[LlamaCppPythonModel]
    if spec.runtime == "llama-cpp-python":
        from charter.models.llamacpp_python import LlamaCppPythonModel

        runtime = LlamaCppPythonModel
    else:
        from charter.models.local import LocalModel

        runtime = LocalModel
    return runtime(
        path,
        name=name,
        n_ctx=spec.n_ctx,
        threads=spec.threads,
        adapter=adapter,
        adapter_scale=scale,
    )


# Charter's own backends (pyproject.toml: [project.entry-points."charter.backends"]).
LOCAL = BackendFactory("local", LocalModelSpec, _build_local, model_name=_local_name)
OPENAI = BackendFactory("openai", OpenAIModelSpec, _build_openai)
LITELLM = BackendFactory("litellm", LiteLLMModelSpec, _build_litellm)
FAKE = BackendFactory("fake", FakeModelSpec, _build_fake, model_name=lambda spec: "fake")
