"""The process launcher shared by the out-of-process backend and the emulators' job runners."""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import anyio
import pytest

from flytelike.testing import Launcher, LaunchInput

pytestmark = pytest.mark.anyio

PY = sys.executable


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


async def test_environment_is_exactly_the_one_given_and_cwd_is_fresh() -> None:
    code = "import os, json; print(json.dumps([dict(os.environ), os.getcwd(), os.listdir('.')]))"
    async with Launcher() as launcher:
        process = await launcher.start(LaunchInput([PY, "-c", code], env={"ONLY": "this"}))
        exit = await process.wait()
        env, cwd, listing = json.loads(process.output())
    assert exit.returncode == 0
    assert env.get("ONLY") == "this"
    assert "HOME" not in env
    assert "PATH" not in env
    assert listing == []
    assert not Path(cwd).exists()  # the scratch directory is removed after the end


async def test_exit_code_and_output_order() -> None:
    code = "import sys; print('out', flush=True); print('err', file=sys.stderr, flush=True); sys.exit(3)"
    async with Launcher() as launcher:
        process = await launcher.start(LaunchInput([PY, "-c", code]))
        exit = await process.wait()
        assert exit.returncode == 3
        assert not (exit.oom_killed)
        assert not (exit.timed_out)
        assert not exit.killed
        assert process.output() == "out\nerr\n"


async def test_memory_limit_kills_the_tree_as_out_of_memory() -> None:
    code = "import time\nx = bytearray(300 * 1024 * 1024)\nfor i in range(0, len(x), 4096): x[i] = 1\ntime.sleep(30)"
    async with Launcher() as launcher:
        process = await launcher.start(LaunchInput([PY, "-c", code], memory_limit=100 * 1024 * 1024))
        exit = await process.wait()
    assert exit.oom_killed
    assert exit.returncode == 137
    assert exit.peak_memory > 100 * 1024 * 1024


async def test_deadline_kills_the_process() -> None:
    started = time.monotonic()
    async with Launcher() as launcher:
        process = await launcher.start(LaunchInput([PY, "-c", "import time; time.sleep(60)"], timeout=0.5))
        exit = await process.wait()
    assert exit.timed_out
    assert not exit.oom_killed
    assert exit.returncode == 137
    assert time.monotonic() - started < 10


async def test_cancelling_wait_kills_what_the_process_started(tmp_path: Path) -> None:
    pidfile = tmp_path / "grandchild.pid"
    code = (
        "import subprocess, sys, time\n"
        f"p = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'])\n"
        f"open({str(pidfile)!r}, 'w').write(str(p.pid))\n"
        "time.sleep(60)"
    )
    async with Launcher() as launcher:
        process = await launcher.start(LaunchInput([PY, "-c", code]))
        with anyio.move_on_after(10):
            while not pidfile.exists() or not pidfile.read_text():
                await anyio.sleep(0.02)
        grandchild = int(pidfile.read_text())
        with anyio.move_on_after(0.2):
            await process.wait()
        assert process.exit is not None  # cancelled wait reaped it
    for _ in range(100):
        try:
            os.kill(grandchild, 0)
        except ProcessLookupError:
            break
        # A zombie reparented to init is gone once reaped; give it a moment.
        await anyio.sleep(0.05)
    else:
        status = Path(f"/proc/{grandchild}/status")
        assert not status.exists() or "zombie" in status.read_text()


async def test_kill_reports_killed() -> None:
    async with Launcher() as launcher:
        process = await launcher.start(LaunchInput([PY, "-c", "import time; time.sleep(60)"]))
        await process.kill()
        exit = await process.wait()
    assert exit.killed
    assert exit.returncode == 137


async def test_empty_command_is_refused() -> None:
    async with Launcher() as launcher:
        with pytest.raises(ValueError, match="command is empty"):
            await launcher.start(LaunchInput([]))
