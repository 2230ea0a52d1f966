"""The pytest plugin users test their tasks with: its fixtures, run by pytest itself on the examples of
docs/testing.md."""

from __future__ import annotations

import re
import textwrap
from pathlib import Path

import pytest

pytest_plugins = ["pytester"]

DOC = Path(__file__).resolve().parent.parent / "docs" / "testing.md"
# A user's project: warnings are errors, and pytest-asyncio (installed here) is told its loop scope.
INI = "[pytest]\nasyncio_default_fixture_loop_scope = function\nfilterwarnings = error\n"
_BLOCKS = re.findall(r"^```python\n(.*?)^```", DOC.read_text(), re.MULTILINE | re.DOTALL)


def test_the_documented_run_tests_pass(pytester: pytest.Pytester) -> None:
    pytester.makeini(INI)
    pytester.makepyfile(test_shop=_BLOCKS[1])
    result = pytester.runpytest_subprocess()
    result.assert_outcomes(passed=2)


def test_runs_in_tests_never_touch_the_real_home(
    pytester: pytest.Pytester, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = tmp_path / "real-home"
    pytester.makepyfile(
        test_home=textwrap.dedent(
            f"""
            import os
            import flytelike as fl

            env = fl.TaskEnvironment(name="home-check")

            @env.task(cache=fl.Cache(behavior="auto", version="1"))
            async def once() -> str:
                return os.environ["FLYTELIKE_HOME"]

            def test_first(flytelike_runner):
                home = flytelike_runner.run(once).outputs
                assert home != {str(real)!r}
                assert os.path.isdir(home)

            def test_second(flytelike_runner):
                # A fresh home, and the cache off: the task runs again.
                handle = flytelike_runner.run(once)
                assert handle.actions()["0"].state.value == "succeeded"
            """
        )
    )
    monkeypatch.setenv("FLYTELIKE_HOME", str(real))  # the user's own home, which tests must leave alone
    pytester.makeini(INI)
    result = pytester.runpytest_subprocess()
    result.assert_outcomes(passed=2)
    assert not real.exists()


def test_isolate_every_test_from_the_ini(pytester: pytest.Pytester) -> None:
    pytester.makeini(INI + "flytelike_isolate = true\n")
    pytester.makepyfile(
        test_iso=textwrap.dedent(
            """
            import os

            def test_isolated():
                assert os.environ["FLYTELIKE_HOME"].endswith("flytelike-home")
            """
        )
    )
    pytester.runpytest_subprocess().assert_outcomes(passed=1)


def test_fl_run_inside_an_event_loop_says_what_to_use(pytester: pytest.Pytester) -> None:
    pytester.makeini(INI)
    pytester.makepyfile(
        test_loop=textwrap.dedent(
            """
            import asyncio
            import pytest
            import flytelike as fl

            env = fl.TaskEnvironment(name="loop-check")

            @env.task
            async def one() -> int:
                return 1

            def test_in_loop(flytelike_home):
                async def inside():
                    with pytest.raises(fl.errors.FlytelikeError, match="use `await fl.run_async"):
                        fl.run(one)
                asyncio.run(inside())
            """
        )
    )
    pytester.runpytest_subprocess().assert_outcomes(passed=1)
