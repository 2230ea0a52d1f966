"""The pytest plugin for testing flytelike tasks (loaded by pytest through the ``pytest11`` entry point).

Fixtures:

- ``flytelike_home``: a fresh ``FLYTELIKE_HOME`` for the test (its run records, cache and store), with no other
  ``FLYTELIKE_*`` variable set, so that runs in tests never touch ``~/.flytelike`` and nothing cached leaks from
  one test, or one test session, into the next. Returns the directory.
- ``flytelike_runner``: an :class:`flytelike.Runner` in that home that runs every task (the cache is off) on this
  machine with no progress view; ``runner.run(task, ...)`` in sync tests, ``await runner.run_async(task, ...)`` in
  async ones.

Set ``flytelike_isolate = true`` in the ``[tool.pytest.ini_options]`` of a project to give every test its own
home without asking for the fixture.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

import flytelike as fl

__all__ = ["flytelike_home", "flytelike_runner"]

_ISOLATE = "flytelike_isolate"


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addini(_ISOLATE, "give every test its own FLYTELIKE_HOME (the fixture flytelike_home)", "bool", False)


def _isolated(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    for name in list(os.environ):
        if name.upper().startswith("FLYTELIKE_"):
            monkeypatch.delenv(name)
    home = tmp_path / "flytelike-home"
    home.mkdir(exist_ok=True)
    monkeypatch.setenv("FLYTELIKE_HOME", str(home))
    return home


@pytest.fixture
def flytelike_home(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """A fresh FLYTELIKE_HOME for this test (see the module's docstring)."""
    return _isolated(monkeypatch, tmp_path)


@pytest.fixture
def flytelike_runner(flytelike_home: Path) -> fl.Runner:
    """A Runner in the test's own home that runs every task, without a cache or a progress view."""
    return fl.Runner().with_context(cache=False)


@pytest.fixture(autouse=True)
def _flytelike_isolation(request: pytest.FixtureRequest) -> None:
    if request.config.getini(_ISOLATE):
        request.getfixturevalue("flytelike_home")
