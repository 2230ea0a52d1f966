"""`flytelike run` stopped by a signal: SIGTERM and SIGHUP are handled like Ctrl-C (the run is recorded as aborted,
exit 128 + the signal's number), and after SIGKILL, which nothing can handle, the run reads as lost."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

import flytelike as fl
from flytelike._cli._run import run as run_command
from flytelike._cli._runs import runs as runs_command
from flytelike._config import load_settings
from flytelike._storage import RecordStore

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")

REPO = Path(__file__).resolve().parent.parent

LONG = """
import asyncio
import time
import flytelike as fl

env = fl.TaskEnvironment(name="long")


@env.task
async def nap() -> str:
    await asyncio.sleep(600)
    return "woke"


@env.task
async def main() -> list[str]:
    return list(await asyncio.gather(nap(), nap()))


@env.task
def nap_in_a_thread() -> str:
    time.sleep(600)
    return "woke"
"""


def start(
    tmp_path: Path, home: Path, task: str, output: int = subprocess.PIPE, sigint: signal.Handlers = signal.SIG_DFL
) -> subprocess.Popen[str]:
    """`flytelike run` of TASK in a new process, started with SIGINT as ``sigint`` (SIG_DFL: Python turns it into
    KeyboardInterrupt, and the event loop handles it; SIG_IGN, as a shell starts background jobs: neither does)."""
    file = tmp_path / "long.py"
    file.write_text(textwrap.dedent(LONG))
    return subprocess.Popen(
        [sys.executable, "-m", "flytelike", "run", "--no-progress", str(file), task],
        cwd=REPO,
        env={**os.environ, "FLYTELIKE_HOME": str(home)},
        stdout=output,
        stderr=output,
        text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, sigint),
    )


def wait_until_running(process: subprocess.Popen[str], home: Path) -> str:
    """The run's id, once the records show it running with every action started (the first write may take until
    the first periodic flush)."""
    db = home / "runs.sqlite3"
    deadline = time.monotonic() + 10
    while True:
        assert process.poll() is None, process.communicate()
        assert time.monotonic() < deadline, "the run never showed in the records"
        if db.exists():
            with RecordStore(db) as store:
                runs = store.runs()
                if runs and runs[0].state.value == "running":
                    actions = store.actions(runs[0].id)
                    if actions and all(a.state.value == "running" for a in actions):
                        assert (runs[0].pid, runs[0].host) == (process.pid, os.uname().nodename)
                        return runs[0].id
        time.sleep(0.05)


def records(home: Path, *args: str) -> Any:
    """What a fresh `flytelike runs ... -o json` process reports."""
    out = subprocess.run(
        [sys.executable, "-m", "flytelike", "runs", *args, "-o", "json"],
        cwd=REPO,
        env={**os.environ, "FLYTELIKE_HOME": str(home)},
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    ).stdout
    return json.loads(out)


def shown(home: Path, run_id: str, monkeypatch: pytest.MonkeyPatch) -> Any:
    """What `flytelike runs show RUN -o json` reports (in this process: the records are read afresh all the same)."""
    monkeypatch.setenv("FLYTELIKE_HOME", str(home))
    result = CliRunner().invoke(runs_command, ["show", run_id, "-o", "json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


def stop(process: subprocess.Popen[str], signum: int) -> str:
    process.send_signal(signum)
    sent = time.monotonic()
    try:
        _, err = process.communicate(timeout=15)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert time.monotonic() - sent < 10
    return err


@pytest.mark.slow
@pytest.mark.parametrize(
    ("signum", "code", "task", "sigint"),
    [
        (signal.SIGTERM, 143, "main", signal.SIG_DFL),
        (signal.SIGHUP, 129, "main", signal.SIG_DFL),
        # a thread that cannot be interrupted does not hold up the exit
        (signal.SIGTERM, 143, "nap_in_a_thread", signal.SIG_DFL),
        # with SIGINT ignored the event loop installs no handler of its own: the run still stops and is recorded
        (signal.SIGTERM, 143, "main", signal.SIG_IGN),
    ],
    ids=["SIGTERM", "SIGHUP", "SIGTERM-sync-task", "SIGTERM-SIGINT-ignored"],
)
def test_sigterm_and_sighup_abort_the_run_like_ctrl_c(
    tmp_path: Path,
    isolated_config: Path,
    monkeypatch: pytest.MonkeyPatch,
    signum: int,
    code: int,
    task: str,
    sigint: signal.Handlers,
) -> None:
    process = start(tmp_path, isolated_config, task, sigint=sigint)
    run_id = wait_until_running(process, isolated_config)

    err = stop(process, signum)

    assert process.returncode == code, err
    assert "Error: cancelled; the run is recorded as aborted (flytelike runs)" in err
    assert "Traceback" not in err
    [run] = records(isolated_config)
    assert (run["id"], run["state"]) == (run_id, "aborted")
    assert run["ended"] is not None
    assert {a["state"] for a in shown(isolated_config, run_id, monkeypatch)["actions"]} == {"aborted"}


@pytest.mark.slow
def test_sighup_once_the_terminal_is_gone_still_aborts_the_run_and_exits_129(
    tmp_path: Path, isolated_config: Path
) -> None:
    # A closed terminal is why SIGHUP usually comes: the message cannot be written, and must not change the exit.
    read, write = os.pipe()
    try:
        process = start(tmp_path, isolated_config, "main", output=write)
    finally:
        os.close(write)
    try:
        wait_until_running(process, isolated_config)
    finally:
        os.close(read)  # from now on every write to stdout or stderr fails
    process.send_signal(signal.SIGHUP)
    assert process.wait(timeout=15) == 129
    assert [r["state"] for r in records(isolated_config)] == ["aborted"]


@pytest.mark.slow
def test_after_sigkill_the_run_is_lost(tmp_path: Path, isolated_config: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    process = start(tmp_path, isolated_config, "main")
    run_id = wait_until_running(process, isolated_config)

    stop(process, signal.SIGKILL)
    assert process.returncode == -signal.SIGKILL

    [run] = records(isolated_config)
    assert (run["id"], run["state"], run["ended"]) == (run_id, "lost", None)
    assert run["last_seen"] >= run["created"]
    show = shown(isolated_config, run_id, monkeypatch)
    assert show["run"]["state"] == "lost"
    assert {a["state"] for a in show["actions"]} == {"aborted"}
    # The records still say running: readers judge, they do not rewrite.
    with RecordStore(isolated_config / "runs.sqlite3") as store:
        [row] = store._conn.execute("SELECT state FROM runs").fetchall()
    assert row == ("running",)


HELLO = """
import flytelike as fl

env = fl.TaskEnvironment(name="hello")


@env.task
async def hello() -> str:
    return "hi"
"""


def test_the_command_restores_the_signal_handlers_it_replaced(tmp_path: Path) -> None:
    def mine(signum: int, frame: object) -> None:
        pass

    file = tmp_path / "hello.py"
    file.write_text(textwrap.dedent(HELLO))
    previous = {s: signal.signal(s, mine) for s in (signal.SIGTERM, signal.SIGHUP)}
    try:
        result = CliRunner().invoke(run_command, ["--no-progress", str(file), "hello"])
        assert result.exit_code == 0, result.output
        assert result.output.strip() == "hi"
        assert signal.getsignal(signal.SIGTERM) is mine
        assert signal.getsignal(signal.SIGHUP) is mine
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)


seen_handlers: list[object] = []
env = fl.TaskEnvironment(name="signals")


@env.task
async def look_at_handlers() -> None:
    seen_handlers.extend(signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGHUP))


def test_the_library_installs_no_signal_handlers() -> None:
    before = [signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGHUP)]
    seen_handlers.clear()
    fl.run(look_at_handlers)
    assert seen_handlers == before
    assert [signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGHUP)] == before
    assert load_settings().db_path.exists()
