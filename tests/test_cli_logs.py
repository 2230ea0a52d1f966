"""``flytelike logs RUN [ACTION]``: from the log files of real runs, with --attempt, --tail, --stdout/--stderr,
--timestamps, and --follow on a run going on in another process; the failed run's hint names the failed action."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

import flytelike as fl
from flytelike._cli import cli
from flytelike._cli._logs import logs
from flytelike._config import load_settings
from flytelike._executor import RunState
from flytelike._storage import RecordStore

REPO = Path(__file__).resolve().parents[1]

env = fl.TaskEnvironment(name="cli_logs")
tries: dict[str, int] = {}


@env.task
async def lines(n: int) -> int:
    for i in range(n):
        print(f"line {i}")
    print("a warning", file=sys.stderr)
    return n


@env.task(retries=2)
async def flaky() -> int:
    tries["flaky"] = tries.get("flaky", 0) + 1
    print(f"attempt {tries['flaky']} starts")
    if tries["flaky"] < 3:
        raise RuntimeError("not yet")
    return tries["flaky"]


@env.task
async def main() -> int:
    return await lines(5) + await flaky()


def invoke(*args: str) -> Result:
    return CliRunner().invoke(logs, list(args), catch_exceptions=False)


@pytest.fixture
def run_id() -> str:
    tries.clear()
    handle = fl.run(main)
    assert handle.outputs == 8
    return handle.id


def test_every_action_under_headers_and_each_attempt_under_its_own(run_id: str) -> None:
    result = invoke(run_id)
    assert result.exit_code == 0
    assert result.stdout == (
        "== 0.0 cli_logs.lines ==\nline 0\nline 1\nline 2\nline 3\nline 4\na warning\n"
        "== 0.1 cli_logs.flaky (attempt 1) ==\nattempt 1 starts\n"
        "== 0.1 cli_logs.flaky (attempt 2) ==\nattempt 2 starts\n"
        "== 0.1 cli_logs.flaky (attempt 3) ==\nattempt 3 starts\n"
    )


def test_attempt_picks_one_attempt(run_id: str) -> None:
    assert invoke(run_id, "0.1", "--attempt", "2").stdout == "attempt 2 starts\n"
    assert invoke(run_id, "0.1").stdout == "attempt 1 starts\nattempt 2 starts\nattempt 3 starts\n"
    nothing = invoke(run_id, "0.1", "--attempt", "7")
    assert (nothing.exit_code, nothing.stdout, nothing.stderr) == (0, "", "(no output captured)\n")


def test_tail_keeps_the_last_lines_of_each_attempt(run_id: str) -> None:
    assert invoke(run_id, "0.0", "--tail", "2").stdout == "line 4\na warning\n"
    assert invoke(run_id, "0.0", "-n", "0").stdout == ""


def test_stdout_and_stderr_apart(run_id: str) -> None:
    assert invoke(run_id, "0.0", "--stderr").stdout == "a warning\n"
    assert invoke(run_id, "0.0", "--stdout").stdout == "".join(f"line {i}\n" for i in range(5))
    both = invoke(run_id, "0.0", "--stdout", "--stderr")
    assert both.exit_code == 2
    assert "--stdout and --stderr cannot be given together" in both.stderr


def test_timestamps_start_every_line(run_id: str) -> None:
    out = invoke(run_id, "0.0", "--timestamps").stdout.splitlines()
    assert len(out) == 6
    stamp = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3} "
    assert all(re.match(stamp + r"(line \d|a warning)$", line) for line in out), out


@env.task
async def loud() -> int:
    print("x" * 200_000)  # more than the records keep: a file holds it all, the records its end
    print("the end")
    return 0


def test_without_log_files_the_tail_kept_in_the_records_is_shown() -> None:
    run_id = fl.run(loud).id
    folder = load_settings().home / "logs" / run_id / "0"
    for f in folder.iterdir():
        f.unlink()
    result = invoke(run_id, "0")
    assert result.stdout.endswith("x" * 100 + "\nthe end\n")
    assert len(result.stdout) < 200_000
    assert "log files of 0 are gone" in result.stderr


def test_an_unknown_action_is_an_error(run_id: str) -> None:
    result = invoke(run_id, "0.9")
    assert result.exit_code == 2
    assert f"run {run_id} has no action '0.9'" in result.stderr


SLOW = """
    import asyncio
    import sys
    import flytelike as fl

    env = fl.TaskEnvironment(name="slow_logs")


    @env.task
    async def ticker(n: int) -> int:
        for i in range(n):
            print(f"tick {i}", flush=True)
            await asyncio.sleep(0.08)
        return n


    @env.task
    async def main(n: int) -> int:
        print("starting")
        await asyncio.sleep(0.2)
        return await ticker(n)


    if __name__ == "__main__":
        handle = fl.run(main, int(sys.argv[1]))
        print(handle.id, file=sys.__stderr__, flush=True)
"""


def test_follow_prints_a_live_run_of_another_process_until_it_ends(tmp_path: Path) -> None:
    script = tmp_path / "slow_logs.py"
    script.write_text(textwrap.dedent(SLOW))
    env_ = {**os.environ, "PYTHONPATH": str(REPO)}
    running = subprocess.Popen(
        [sys.executable, str(script), "8"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env_
    )
    try:
        # The run's id is known once it is recorded: the newest run in the records.
        db = load_settings().db_path
        deadline = time.monotonic() + 30
        run_id = None
        while run_id is None and time.monotonic() < deadline:
            if db.exists():
                with RecordStore(db) as store:
                    newest = store.runs(limit=1)
                run_id = newest[0].id if newest and newest[0].state is RunState.RUNNING else None
            time.sleep(0.02)
        assert run_id is not None, "the run never showed up as running"
        follow = subprocess.run(
            [sys.executable, "-m", "flytelike", "logs", run_id, "--follow"],
            capture_output=True,
            text=True,
            env=env_,
            timeout=60,
        )
        assert running.wait(timeout=60) == 0
    finally:
        running.kill()
        running.wait()
    assert follow.returncode == 0, follow.stderr
    # Started while the run was going on, it saw every line, of an action that started later too, and it ended
    # with the run.
    ticks = "".join(f"tick {i}\n" for i in range(8))
    assert follow.stdout == f"== 0 slow_logs.main ==\nstarting\n== 0.0 slow_logs.ticker ==\n{ticks}"


FAILS = """
    import flytelike as fl

    env = fl.TaskEnvironment(name="hint")


    @env.task
    async def fine() -> int:
        return 1


    @env.task
    async def broken() -> int:
        print("broken says why")
        raise ValueError("bad shard")


    @env.task
    async def main() -> int:
        return await fine() + await fine() + await fine() + await broken()
"""


def test_a_failed_runs_hint_names_the_failed_action(tmp_path: Path) -> None:
    file = tmp_path / "hint.py"
    file.write_text(textwrap.dedent(FAILS))
    result = CliRunner().invoke(cli, ["run", "--no-progress", str(file), "main"])
    assert result.exit_code == 1
    found = re.search(r"Logs: flytelike logs (\S+) (\S+)", result.stderr)
    assert found is not None, result.stderr
    assert found.group(2) == "0.3"
    assert invoke(found.group(1), found.group(2)).stdout == "broken says why\n"
