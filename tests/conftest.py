"""Shared fixtures: every test runs hermetically, away from the real ~/.flytelike and the project's own config."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import settings

from flytelike import _accelerators

# Property tests are about correctness, not speed: a slow, shared CI machine must not fail them on a per-example
# deadline (speed lives in benchmarks/).
settings.register_profile("flytelike", deadline=None)
settings.load_profile("flytelike")

# The catalog as the package ships it, taken before any test can register a device or load a config file.
_PRISTINE_BY_KEY = dict(_accelerators._CATALOG._by_key)


@pytest.fixture(autouse=True)
def isolated_config(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """FLYTELIKE_HOME in a fresh directory, no FLYTELIKE_* variables, and a working directory without a
    ``flytelike.toml``; returns the home directory."""
    for name in list(os.environ):
        if name.startswith("FLYTELIKE_"):
            monkeypatch.delenv(name)
    home = tmp_path / "home"
    home.mkdir()
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.setenv("FLYTELIKE_HOME", str(home))
    monkeypatch.chdir(work)
    return home


@pytest.fixture(autouse=True)
def catalog_snapshot() -> Iterator[None]:
    """Restore the process-global accelerator catalog around each test.

    The catalog is a singleton that loads configuration extensions once, on its first miss; resetting both the
    table and that flag makes every test see the built-in catalog and read its own (temporary) config files.
    """
    catalog = _accelerators._CATALOG

    def reset() -> None:
        with catalog._lock:
            catalog._by_key = dict(_PRISTINE_BY_KEY)
            catalog._extensions_loaded = False

    reset()
    yield
    reset()


@pytest.fixture
def pristine_device_names() -> frozenset[str]:
    """The names in the catalog as shipped, before any registration or config extension."""
    return frozenset(spec.name for spec in _PRISTINE_BY_KEY.values())
