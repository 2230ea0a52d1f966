"""Shared fixtures: every test runs hermetically, away from the real ~/.flytelike and the project's own config."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import settings

from flytelike import _config
from flytelike._accelerators import BUILTIN_CATALOG, _catalog

# Property tests are about correctness, not speed: a slow, shared CI machine must not fail them on a per-example
# deadline (speed lives in benchmarks/).
settings.register_profile("flytelike", deadline=None)
settings.load_profile("flytelike")


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
    """Every test starts with no catalog installed and the default settings unresolved.

    ``fl.register_device`` installs its catalog in the calling context, which synchronous tests share, and the
    default settings are resolved once per process: clearing both makes each test see the built-in catalog plus
    its own (temporary) configuration, whatever ran before it.
    """

    def reset() -> None:
        _catalog._IN_EFFECT.set(None)
        _config._DEFAULT.clear()

    reset()
    yield
    reset()


@pytest.fixture
def pristine_device_names() -> frozenset[str]:
    """The names in the catalog as shipped, before any registration or config extension."""
    return frozenset(spec.name for spec in BUILTIN_CATALOG)
