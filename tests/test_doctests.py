"""The examples in the public modules' docstrings are part of the docs: they must run as written."""

from __future__ import annotations

import doctest
import importlib

import pytest

MODULES = [
    "flytelike",
    "flytelike.errors",
    "flytelike._accelerators",
    "flytelike._resources",
    "flytelike._platforms",
    "flytelike._platforms._kubernetes",
    "flytelike._platforms._batch",
    "flytelike._policies",
    "flytelike._task",
    "flytelike._environment",
    "flytelike._files",
    "flytelike._platform_spec",
    "flytelike._frozendict",
    "flytelike._quantity",
    "flytelike._runner",
    "flytelike._storage._records",
    "flytelike._storage._cache",
    "flytelike._storage._blobs._layout",
    "flytelike._storage._blobs._open",
    "flytelike._storage._blobs._protocol",
]


@pytest.mark.parametrize("name", MODULES)
def test_doctests(name: str) -> None:
    # The catalog fixture in conftest undoes what the examples register (register_device's example adds a GPU).
    module = importlib.import_module(name)
    result = doctest.testmod(module, verbose=False, report=True, optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0, f"{name} has no examples"
    assert result.failed == 0, f"{result.failed} of {result.attempted} examples in {name} failed (see output above)"
