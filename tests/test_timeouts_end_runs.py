"""A timeout ends the attempt at the deadline, and `flytelike run` exits with it even when a thread runs on."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

TASKS = textwrap.dedent(
    """
    import time
    import flytelike as fl

    env = fl.TaskEnvironment(name="timeouts")


    @env.task(timeout="1s")
    def blocks() -> int:
        time.sleep(60)  # a thread cannot be interrupted
        return 1


    @env.task
    async def main() -> int:
        return await blocks.aio()
    """
)


@pytest.mark.slow
def test_a_sync_task_past_its_timeout_ends_the_run_and_the_cli_exits(tmp_path: Path) -> None:
    (tmp_path / "timeouts_tasks.py").write_text(TASKS)
    env = {**os.environ, "FLYTELIKE_HOME": str(tmp_path / "home")}
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "flytelike", "run", "--no-progress", "timeouts_tasks.py", "main"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=50,
    )
    assert time.monotonic() - started < 30  # not the 60 s the thread sleeps
    assert done.returncode == 1
    assert "timeouts.blocks (action 0.0, attempt 1/1) timed out: exceeded 1s" in done.stderr
    # The hint points at the action where the failure started, not the root.
    assert done.stderr.rstrip().endswith(" 0.0")
    runs = subprocess.run(
        [sys.executable, "-m", "flytelike", "runs", "-o", "json"], env=env, capture_output=True, text=True, check=True
    )
    assert '"failed"' in runs.stdout
