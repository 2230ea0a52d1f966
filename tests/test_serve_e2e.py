"""End to end: a real ``flytelike serve`` process (tasks run by the subprocess backend, each attempt a
``flytelike-entry`` process), driven by ``flytelike run --remote`` and the other CLI commands, and by fl.Remote.

The client and the server have separate homes, so the code reaches the server only through the BlobService."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import anyio
import pytest
from serve_process import TOKEN, Emulator, Server
from serve_process import cli as _cli
from serve_process import start_server as _start

import flytelike as fl
from flytelike._loader import load_file

pytestmark = pytest.mark.slow

TASKS = """
import asyncio

import flytelike as fl

env = fl.TaskEnvironment(name="e2e")


@env.task
async def square(x: int) -> int:
    print(f"square {x}")
    return x * x


@env.task
async def total(n: int = 3) -> int:
    return sum(await asyncio.gather(*(square(i) for i in range(n))))


@env.task
async def chatty() -> str:
    print("first", flush=True)
    await asyncio.sleep(1.5)
    print("second", flush=True)
    return "done"


@env.task
async def slow(seconds: float) -> str:
    await asyncio.sleep(seconds)
    return "woke"


@env.task
async def pair(seconds: float) -> list[str]:
    found = await asyncio.gather(slow(seconds), slow(0.5), return_exceptions=True)
    return [type(r).__name__ if isinstance(r, BaseException) else r for r in found]
"""


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    srv = _start(tmp_path / "server-home", tmp_path / "serve.log")
    try:
        yield srv
    finally:
        if srv.process.poll() is None:
            srv.process.kill()
            srv.process.wait()


@pytest.fixture
def kubernetes_server(tmp_path: Path) -> Iterator[Server]:
    """A server whose tasks run as pods on a Kubernetes emulator, which it finds as `--with kubernetes` does."""
    home = tmp_path / "server-home"
    emulator = Emulator(home, tmp_path / "emulator.log")
    try:
        srv = _start(home, tmp_path / "serve.log", backends='["kubernetes"]')
        try:
            yield srv
        finally:
            if srv.process.poll() is None:
                srv.stop()
    finally:
        emulator.stop()


@pytest.fixture
def project(tmp_path: Path) -> Path:
    root = tmp_path / "project"
    root.mkdir()
    (root / "pyproject.toml").write_text("[project]\nname = 'e2e'\n")
    (root / "e2e_tasks.py").write_text(textwrap.dedent(TASKS))
    return root


def test_run_remote_shows_live_events_and_outputs_and_the_run_is_listed(server: Server, project: Path) -> None:
    done = _cli(server, project, "run", "--remote", "-v", "e2e_tasks.py", "total", "--n", "4")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == str(sum(i * i for i in range(4)))
    # The verbose plain view prints a line per state change of every action, read from the server's watch.
    for action in ("0", "0.0", "0.3"):
        assert any(f" {action} " in line and "succeeded" in line for line in done.stderr.splitlines()), done.stderr
    listed = json.loads(_cli(server, project, "runs", "--remote", "-o", "json").stdout)
    assert [(r["task"], r["state"]) for r in listed] == [("e2e.total", "succeeded")]
    run_id = listed[0]["id"]
    shown = json.loads(_cli(server, project, "runs", "show", "--remote", run_id, "-o", "json").stdout)
    assert sorted(a["id"] for a in shown["actions"]) == ["0", "0.0", "0.1", "0.2", "0.3"]
    assert _cli(server, project, "logs", "--remote", run_id, "0.2").stdout == "square 2\n"
    # The second run of the same project uploads nothing: the server has its bundle.
    detached = _cli(server, project, "run", "--remote", "--detach", "e2e_tasks.py", "total", "--n", "2")
    assert detached.returncode == 0, detached.stderr
    assert detached.stdout.strip().startswith("r")
    assert server.stop() == 0
    log = server.log.read_text()
    assert log.count("stored bundles/sha256/") == 1
    assert f"run {run_id} succeeded" in log
    assert log.rstrip().endswith("stopped")


def test_abort_stops_a_running_run(server: Server, project: Path) -> None:
    started = _cli(server, project, "run", "--remote", "--detach", "e2e_tasks.py", "slow", "--seconds", "60")
    run_id = started.stdout.strip()
    deadline = time.monotonic() + 30
    while "running" not in _cli(server, project, "runs", "show", "--remote", run_id).stdout:
        assert time.monotonic() < deadline
        time.sleep(0.2)
    aborted = _cli(server, project, "abort", run_id, "--reason", "enough")
    assert aborted.stdout.strip() == f"abort of run {run_id} recorded"
    watched = _cli(server, project, "runs", "show", "--remote", run_id, "-o", "json", timeout=60)
    deadline = time.monotonic() + 30
    while json.loads(watched.stdout)["run"]["state"] != "aborted":
        assert time.monotonic() < deadline, watched.stdout
        time.sleep(0.2)
        watched = _cli(server, project, "runs", "show", "--remote", run_id, "-o", "json")
    assert "already ended" in _cli(server, project, "abort", run_id).stdout


def test_abort_of_one_action_stops_it_and_its_caller_hears_of_it(server: Server, project: Path) -> None:
    started = _cli(server, project, "run", "--remote", "--detach", "e2e_tasks.py", "pair", "--seconds", "60")
    run_id = started.stdout.strip()

    def actions() -> dict[str, str]:
        shown = json.loads(_cli(server, project, "runs", "show", "--remote", run_id, "-o", "json").stdout)
        return {a["id"]: a["state"] for a in shown["actions"]}

    deadline = time.monotonic() + 60
    while actions().get("0.0") != "running" or actions().get("0.1") != "succeeded":
        assert time.monotonic() < deadline, actions()
        time.sleep(0.3)
    aborted = _cli(server, project, "abort", run_id, "0.0", "--reason", "not needed")
    assert aborted.returncode == 0, aborted.stderr
    deadline = time.monotonic() + 60
    while (shown := json.loads(_cli(server, project, "runs", "show", "--remote", run_id, "-o", "json").stdout))["run"][
        "state"
    ] == "running":
        assert time.monotonic() < deadline, shown
        time.sleep(0.3)
    assert shown["run"]["state"] == "succeeded", shown
    states = {a["id"]: a["state"] for a in shown["actions"]}
    assert states == {"0": "succeeded", "0.0": "aborted", "0.1": "succeeded"}
    assert f"aborting action 0.0 of run {run_id}: not needed" in server.log.read_text()


def test_a_restart_takes_the_run_over_and_it_finishes(server: Server, project: Path, tmp_path: Path) -> None:
    # The subprocess backend cannot find a process of the server before: the attempt's own end, if it wrote one,
    # is taken, or a new attempt runs (never the same one twice). The run finishes either way.
    bind = server.address
    started = _cli(server, project, "run", "--remote", "--detach", "e2e_tasks.py", "slow", "--seconds", "2")
    run_id = started.stdout.strip()
    assert server.stop(signal.SIGKILL) == -signal.SIGKILL
    again = _start(server.home, tmp_path / "serve-again.log", bind=bind)
    try:
        deadline = time.monotonic() + 60
        shown = json.loads(_cli(again, project, "runs", "show", "--remote", run_id, "-o", "json").stdout)
        while shown["run"]["state"] == "running":
            assert time.monotonic() < deadline, again.log.read_text()
            time.sleep(0.3)
            shown = json.loads(_cli(again, project, "runs", "show", "--remote", run_id, "-o", "json").stdout)
        assert shown["run"]["state"] == "succeeded", shown
        assert f"run {run_id} taken over" in again.log.read_text()
    finally:
        again.stop()


def test_fl_remote_runs_a_task_and_follows_its_events(server: Server, project: Path) -> None:
    module = load_file(project / "e2e_tasks.py")
    try:

        async def main() -> tuple[int, list[tuple[str, str]], str]:
            async with fl.Remote(server.address, token=TOKEN) as remote:
                run = await remote.run(module.total, n=3)
                events = [(e.action, e.state) async for e in run.events()]
                value = await run.result()
                listed = [r.id for r in await remote.runs()]
                assert listed == [run.id]
                logs = await remote.logs(run.id, "0.1")
                return value, events, logs.decode()

        value, events, logs = anyio.run(main)
        assert value == 5
        assert ("0", "succeeded") in events
        assert {a for a, _ in events} == {"0", "0.0", "0.1", "0.2"}
        assert logs == "square 1\n"
    finally:
        sys.modules.pop(module.__name__, None)


def test_run_remote_on_the_kubernetes_emulator(kubernetes_server: Server, project: Path) -> None:
    done = _cli(kubernetes_server, project, "run", "--remote", "-v", "e2e_tasks.py", "total", "--n", "3")
    assert done.returncode == 0, done.stderr + kubernetes_server.log.read_text()
    assert done.stdout.strip() == "5"
    assert any(" 0.2 " in line and "succeeded" in line for line in done.stderr.splitlines()), done.stderr
    run_id = json.loads(_cli(kubernetes_server, project, "runs", "--remote", "-o", "json").stdout)[0]["id"]
    shown = json.loads(_cli(kubernetes_server, project, "runs", "show", "--remote", run_id, "-o", "json").stdout)
    assert {a["state"] for a in shown["actions"]} == {"succeeded"}
    assert len(shown["actions"]) == 4


def test_logs_follow_prints_an_attempts_output_until_it_ends(server: Server, project: Path) -> None:
    started = _cli(server, project, "run", "--remote", "--detach", "e2e_tasks.py", "chatty")
    run_id = started.stdout.strip()
    followed = _cli(server, project, "logs", "--remote", "--follow", run_id, timeout=60)
    assert followed.returncode == 0, followed.stderr
    assert followed.stdout == "first\nsecond\n"
    # It ended with the attempt: the root action had succeeded by then.
    shown = json.loads(_cli(server, project, "runs", "show", "--remote", run_id, "-o", "json").stdout)
    assert [a["state"] for a in shown["actions"] if a["id"] == "0"] == ["succeeded"]


def test_a_platform_the_server_does_not_run_is_refused(server: Server, project: Path) -> None:
    options = _cli(server, project, "run", "--remote", "--with", "batch:queue=q", "e2e_tasks.py", "total")
    assert options.returncode == 2
    assert "a server run does not take" in options.stderr
    unknown = _cli(server, project, "run", "--remote", "--with", "batch", "e2e_tasks.py", "total")
    assert unknown.returncode == 1
    assert "platform='batch': is not a backend of this server" in unknown.stderr
    assert "subprocess" in unknown.stderr


def test_ctrl_c_off_a_terminal_detaches_and_the_run_goes_on(server: Server, project: Path) -> None:
    env = {
        **os.environ,
        "FLYTELIKE_HOME": str(project.parent / "client-home"),
        "FLYTELIKE_REMOTE__ENDPOINT": server.address,
        "FLYTELIKE_REMOTE__TOKEN": TOKEN,
    }
    watching = subprocess.Popen(
        [sys.executable, "-m", "flytelike", "run", "--remote", "e2e_tasks.py", "slow", "--seconds", "30"],
        cwd=project,
        env=env,
        stdin=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 30
        while "running" not in _cli(server, project, "runs", "--remote", "--state", "running").stdout:
            assert time.monotonic() < deadline
            time.sleep(0.2)
        watching.send_signal(signal.SIGINT)
        _, stderr = watching.communicate(timeout=30)
    finally:
        if watching.poll() is None:
            watching.kill()
    assert watching.returncode == 130
    assert "Detached: run " in stderr
    listed = json.loads(_cli(server, project, "runs", "--remote", "-o", "json").stdout)
    assert [r["state"] for r in listed] == ["running"]
