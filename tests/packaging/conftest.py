from __future__ import annotations

import sys
from collections.abc import Callable

import pytest


@pytest.fixture
def without(monkeypatch: pytest.MonkeyPatch) -> Callable[..., None]:
    """`without("numpy", ...)`: importing these modules fails, as when they are not installed
    (for the test only). Name a submodule too when it may be imported already."""

    def block(*modules: str) -> None:
        for module in modules:
            monkeypatch.setitem(sys.modules, module, None)  # `import module` now fails

    return block
