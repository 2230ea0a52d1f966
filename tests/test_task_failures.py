"""How a task's failure reaches its caller: sys.exit() in a task, nesting past Python's recursion limit, and the
user's exception surfacing as itself through any number of parents."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import flytelike as fl
from flytelike._config import load_settings
from flytelike._storage import RecordStore
from flytelike.errors import TaskCodeError, TaskFailedError

env = fl.TaskEnvironment(name="failures")


class QuotaError(Exception):
    pass


@env.task
async def exits(code: int = 3) -> int:
    sys.exit(code)


@env.task
def exits_sync() -> int:
    sys.exit("bye")


@env.task
async def raises() -> int:
    raise QuotaError("over quota by 3")


@env.task
async def middle() -> int:
    return await raises()


@env.task
async def top() -> int:
    return await middle()


@env.task
async def nest(n: int) -> int:
    return 0 if n == 0 else await nest(n - 1) + 1


def actions(run_id: str) -> dict[str, str]:
    with RecordStore(load_settings().db_path) as store:
        return {a.id: a.state.value for a in store.actions(run_id)}


@pytest.mark.parametrize(("task", "code"), [(exits, "3"), (exits_sync, "'bye'")])
def test_sys_exit_in_a_task_is_a_failed_action_with_the_exit_code(task: fl.Task[..., int], code: str) -> None:
    with pytest.raises(TaskFailedError) as info:
        fl.run(task)
    assert f"SystemExit: the task called sys.exit() with exit code {code}" in str(info.value)
    assert isinstance(info.value.__cause__, TaskCodeError)
    assert info.value.cause_type == "builtins.SystemExit"
    with RecordStore(load_settings().db_path) as store:
        [run] = store.runs()
    assert run.state.value == "failed"  # not aborted
    assert actions(run.id) == {"0": "failed"}


EXITS = """
    import sys
    import flytelike as fl

    env = fl.TaskEnvironment(name="exits")

    @env.task
    async def main() -> int:
        sys.exit(4)
"""


def test_sys_exit_under_flytelike_run_is_a_short_error(tmp_path: Path) -> None:
    (tmp_path / "exits_tasks.py").write_text(textwrap.dedent(EXITS))
    result = subprocess.run(
        [sys.executable, "-m", "flytelike", "run", "--no-progress", "exits_tasks.py", "main"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
    )
    assert result.returncode == 1, result.stderr
    assert "exit code 4" in result.stderr
    assert "Traceback" not in result.stderr
    assert len(result.stderr.splitlines()) <= 3


def test_the_users_exception_is_one_cause_down_however_deep() -> None:
    with pytest.raises(TaskFailedError) as info:
        fl.run(top)
    error = info.value
    assert isinstance(error.__cause__, QuotaError)
    assert error.__cause__.args == ("over quota by 3",)
    assert error.cause == "QuotaError: over quota by 3"
    assert error.cause_type.endswith("QuotaError")
    assert (error.origin_task, error.origin_action) == ("failures.raises", "0.0.0")
    assert str(error) == (
        "task failures.top (action 0, attempt 1/1) failed: QuotaError: over quota by 3 "
        "(raised in task failures.raises, action 0.0.0)"
    )


def test_nesting_past_the_recursion_limit_is_a_short_error_naming_the_depth() -> None:
    with pytest.raises(TaskFailedError) as info:
        fl.run(nest, 5000)
    message = str(info.value)
    assert "RecursionError: tasks nested" in message
    assert "deep exceeded Python's recursion limit" in message
    assert len(message) < 2000  # the action id of the deepest level is most of it
    with RecordStore(load_settings().db_path) as store:
        [run] = store.runs()
        records = store.actions(run.id)
    assert all(len(a.error or "") < 5000 for a in records)
    assert fl.run(nest, 20).outputs == 20
