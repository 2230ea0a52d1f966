"""A real ``flytelike serve`` stopped at each point of an attempt's life, then started again: the run finishes
with the right outputs, every pod is created once, and the event log holds each transition once.

The server's tasks run as pods on a Kubernetes emulator process, which outlives the server as a cluster would. The
points: ``intent`` (the attempt recorded, its pod not created yet), ``created`` (the pod just created), mid-run
(killed from outside while children run), ``recorded`` (the attempt's success committed, its pod maybe not deleted
yet), and a SIGTERM mid-run (a clean stop, which leaves the runs for the next start). ``FLYTELIKE_CRASH_AT`` makes
the server kill itself with SIGKILL at the named point (flytelike/_crash.py).
"""

from __future__ import annotations

import itertools
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
import anyio.from_thread
import pytest
from serve_process import TOKEN, BatchEmulatorProcess, Emulator, Server, cli, free_port, start_server
from serve_support import DATABASES, fresh_database

from flytelike._backends.kubernetes._names import pod_name
from flytelike._remote._run_client import RunClient

pytestmark = pytest.mark.slow

TASKS = """
import asyncio

import flytelike as fl

env = fl.TaskEnvironment(name="restart")


@env.task
async def square(x: int, pause: float) -> int:
    await asyncio.sleep(pause)
    print(f"square {x}", flush=True)
    return x * x


@env.task
async def total(n: int = 4, pause: float = 3.0) -> int:
    return sum(await asyncio.gather(*(square(i, pause) for i in range(n))))
"""
N = 4
EXPECTED = sum(i * i for i in range(N))


@pytest.fixture(params=DATABASES)
def database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    with (
        anyio.from_thread.start_blocking_portal() as portal,
        portal.wrap_async_context_manager(fresh_database(request.param, tmp_path / "server-home")) as url,
    ):
        yield url


@pytest.fixture
def project(tmp_path: Path) -> Path:
    root = tmp_path / "project"
    root.mkdir()
    (root / "pyproject.toml").write_text("[project]\nname = 'restart'\n")
    (root / "restart_tasks.py").write_text(textwrap.dedent(TASKS))
    return root


@pytest.fixture
def emulator(tmp_path: Path) -> Iterator[Emulator]:
    cluster = Emulator(tmp_path / "server-home", tmp_path / "emulator.log")
    try:
        yield cluster
    finally:
        cluster.stop()


def _watch(server: Server, project: Path) -> subprocess.Popen[str]:
    """``flytelike run --remote`` following the run to its end, as a user's terminal would."""
    env = {
        "FLYTELIKE_HOME": str(project.parent / "client-home"),
        "FLYTELIKE_REMOTE__ENDPOINT": server.address,
        "FLYTELIKE_REMOTE__TOKEN": TOKEN,
    }
    return subprocess.Popen(
        [sys.executable, "-m", "flytelike", "run", "--remote", "-v", "restart_tasks.py", "total", "--n", str(N)],
        cwd=project,
        env={**os.environ, **env},
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _events(server: Server, run_id: str) -> list[tuple[str, int, str]]:
    async def main() -> list[tuple[str, int, str]]:
        async with RunClient(server.address, token=TOKEN) as client:
            return [
                (item.event.action_id, item.event.attempt, item.event.state)
                async for item in client.watch(run_id)
                if item.WhichOneof("item") == "event"
            ]

    return anyio.run(main)


def _only_run(server: Server, project: Path) -> str:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        listed = cli(server, project, "runs", "--remote", "-o", "json")
        if listed.returncode == 0 and json.loads(listed.stdout):
            return str(json.loads(listed.stdout)[0]["id"])
        time.sleep(0.3)
    raise AssertionError("the run never showed up")


def _running_children(server: Server, project: Path, run_id: str) -> int:
    shown = cli(server, project, "runs", "show", "--remote", run_id, "-o", "json")
    if shown.returncode != 0:
        return 0
    return sum(1 for a in json.loads(shown.stdout)["actions"] if a["id"] != "0" and a["state"] == "running")


def _stop_and_restart(
    point: str, database: str, backend: str, project: Path, tmp_path: Path
) -> list[tuple[str, int, str]]:
    """Run the fan-out, stop the server at ``point``, start it again; the run's events once it finished right."""
    home, bind = tmp_path / "server-home", f"127.0.0.1:{free_port()}"
    env = {"FLYTELIKE_SERVE__DATABASE": database}
    crash = {"FLYTELIKE_CRASH_AT": point} if ":" in point else {}
    stop = signal.SIGTERM if point == "sigterm" else signal.SIGKILL
    backends = f'["{backend}"]'
    server = start_server(home, tmp_path / "serve.log", backends=backends, bind=bind, env={**env, **crash})
    watching = _watch(server, project)
    again: Server | None = None
    try:
        run_id = _only_run(server, project)
        if not crash:
            deadline = time.monotonic() + 120
            while _running_children(server, project, run_id) < N:
                assert time.monotonic() < deadline, server.log.read_text()
                time.sleep(0.2)
            server.process.send_signal(stop)
        # SIGTERM is a clean stop (exit 0) that leaves the run for the next start, as a crash does.
        assert server.process.wait(timeout=120) == (0 if stop == signal.SIGTERM else -stop), server.log.read_text()
        again = start_server(home, tmp_path / "serve-again.log", backends=backends, bind=bind, env=env)
        stdout, stderr = watching.communicate(timeout=240)
        log = again.log.read_text()
        assert watching.returncode == 0, stderr + log
        assert stdout.strip() == str(EXPECTED), stderr
        assert f"run {run_id} taken over" in log
        return _events(again, run_id)
    finally:
        if watching.poll() is None:
            watching.kill()
        server.kill()
        if again is not None:
            again.stop()


def _assert_each_transition_once(events: list[tuple[str, int, str]]) -> None:
    """Each action's transitions once, in order, ending succeeded; no attempt repeated or retried."""
    by_action: dict[str, list[tuple[int, str]]] = {}
    for action, attempt, state in events:
        if action:
            by_action.setdefault(action, []).append((attempt, state))
    assert sorted(by_action) == ["0", *(f"0.{i}" for i in range(N))]
    for action, seen in by_action.items():
        assert seen[-1][1] == "succeeded", (action, seen)
        assert [s for _, s in seen].count("succeeded") == 1, (action, seen)
        assert "retrying" not in [s for _, s in seen], (action, seen)
        assert all(a != b for a, b in itertools.pairwise(seen)), (action, seen)
        assert max(attempt for attempt, _ in seen) == 1, (action, seen)


POINTS = ["intent:0.1", "created:0.1", "mid-run", "recorded:0.2/succeeded", "sigterm"]
# On PostgreSQL, the points where the records decide what happens (the rest is the same code on either database).
POSTGRES_POINTS = frozenset({"intent:0.1", "recorded:0.2/succeeded"})


@pytest.mark.parametrize("point", POINTS, ids=lambda p: p.split(":")[0])
def test_a_server_stopped_at_any_point_of_an_attempt_finishes_the_run_on_restart(
    point: str, database: str, emulator: Emulator, project: Path, tmp_path: Path
) -> None:
    if database.startswith("postgresql") and point not in POSTGRES_POINTS:
        pytest.skip("on PostgreSQL only the points the records decide (intent, recorded) run; SQLite runs them all")
    events = _stop_and_restart(point, database, "kubernetes", project, tmp_path)
    # One pod per attempt: the root and each child, created once each, none twice.
    created = emulator.counters()["created"]
    assert len(created) == N + 1, created
    assert set(created.values()) == {1}, created
    _assert_each_transition_once(events)


def test_a_pod_that_vanished_while_the_server_was_down_is_a_new_attempt(
    emulator: Emulator, project: Path, tmp_path: Path
) -> None:
    home, bind = tmp_path / "server-home", f"127.0.0.1:{free_port()}"
    server = start_server(home, tmp_path / "serve.log", backends='["kubernetes"]', bind=bind)
    watching = _watch(server, project)
    again: Server | None = None
    try:
        run_id = _only_run(server, project)
        deadline = time.monotonic() + 120
        while _running_children(server, project, run_id) < N:
            assert time.monotonic() < deadline, server.log.read_text()
            time.sleep(0.2)
        server.process.send_signal(signal.SIGKILL)
        assert server.process.wait(timeout=60) == -signal.SIGKILL
        victim = pod_name(run_id, "0.1", 1)
        assert victim in emulator.pod_names()
        emulator.delete_pod(victim)  # while no controller watches
        again = start_server(home, tmp_path / "serve-again.log", backends='["kubernetes"]', bind=bind)
        stdout, stderr = watching.communicate(timeout=240)
        assert watching.returncode == 0, stderr + again.log.read_text()
        assert stdout.strip() == str(EXPECTED), stderr
        events = _events(again, run_id)
    finally:
        if watching.poll() is None:
            watching.kill()
        server.kill()
        if again is not None:
            again.stop()
    # The vanished attempt failed (SYSTEM) and the next one ran under its own name: no name was created twice.
    created = emulator.counters()["created"]
    assert set(created.values()) == {1}, created
    assert len(created) == N + 2, created
    attempts = [(attempt, state) for action, attempt, state in events if action == "0.1"]
    assert (1, "retrying") in attempts, attempts
    assert attempts[-1] == (2, "succeeded"), attempts


@pytest.mark.parametrize("point", ["created:0.1"], ids=lambda p: p.split(":")[0])
def test_on_batch_a_restarted_server_follows_the_jobs_it_submitted(point: str, project: Path, tmp_path: Path) -> None:
    cluster = BatchEmulatorProcess(tmp_path / "server-home", tmp_path / "batch.log")
    try:
        events = _stop_and_restart(point, str(tmp_path / "server-home" / "server.sqlite3"), "batch", project, tmp_path)
        names = cluster.job_names()
    finally:
        cluster.stop()
    # One job per attempt: the root and each child submitted once each, found again by name after the restart.
    assert len(names) == N + 1, names
    assert len(set(names)) == len(names), names
    _assert_each_transition_once(events)
