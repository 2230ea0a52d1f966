"""Output that fits in the records' tail is kept there alone: no log file per attempt, yet ``flytelike logs`` shows
all of it, split into attempts and streams by the run's index; an action printing more gets files with everything."""

from __future__ import annotations

import asyncio
import os
import queue
import re
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

import flytelike as fl
from flytelike._cli._logs import logs
from flytelike._config import load_settings
from flytelike._executor import TAIL_CHARS, ActionRecord, RunState
from flytelike._storage import AttemptLog, LogSpool, RecordStore, attempt_logs, index_entries, kept_logs
from flytelike._storage._spool import INDEX_NAME

REPO = Path(__file__).resolve().parents[1]


def _files(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())


def test_small_output_is_in_the_tail_alone_and_read_back_by_attempt_and_stream(tmp_path: Path) -> None:
    actions = {"0": ActionRecord("r1", "0", None, "t", "v")}
    spool = LogSpool(tmp_path, "r1", actions)
    spool.append("0", 1, "one out\n")
    spool.append("0", 1, "one err\n", "err")
    spool.append("0", 2, "two out\n")
    spool.append("0", 1, "one, late\n")  # a timed-out attempt's thread printing on while the next one runs
    spool.append("0", 2, b"two \xc3\xa9\n", "all")
    assert spool.read("0", 1) == b"one out\none err\none, late\n"  # the sink's own reading, without files
    spool.close()
    assert _files(tmp_path) == [f"r1/{INDEX_NAME}"]
    assert actions["0"].log_path is None
    tail = "".join(actions["0"].logs or ())
    assert tail == "one out\none err\ntwo out\none, late\ntwo é\n"
    kept = kept_logs(index_entries(tmp_path / "r1")["0"], tail)
    assert sorted(kept) == [1, 2]
    assert kept[1].read() == b"one out\none err\none, late\n"
    assert [(offset, stream) for offset, _, stream in kept[1].index()] == [(0, "out"), (8, "err"), (16, "out")]
    assert kept[2].read() == "two out\ntwo é\n".encode()
    assert [(offset, stream) for offset, _, stream in kept[2].index()] == [(0, "out"), (8, "all")]
    assert kept[1].read(kept[1].tail_offset(1)) == b"one, late\n"


def test_an_action_printing_past_the_tail_gets_files_with_everything(tmp_path: Path) -> None:
    actions = {"0": ActionRecord("r1", "0", None, "t", "v"), "1": ActionRecord("r1", "1", None, "t", "v")}
    spool = LogSpool(tmp_path, "r1", actions)
    spool.append("0", 1, "small, first attempt\n")
    spool.append("1", 1, "small, and it stays so\n")
    spool.append("0", 2, "small again\n", "err")
    assert _files(tmp_path) == []
    big = "y" * TAIL_CHARS + "\n"
    spool.append("0", 2, big)
    spool.close()
    folder = tmp_path / "r1" / "0"
    assert actions["0"].log_path == str(folder)
    assert attempt_logs(folder) == [1, 2]
    assert AttemptLog(folder / "1.log").read() == b"small, first attempt\n"
    second = AttemptLog(folder / "2.log")
    assert second.read() == ("small again\n" + big).encode()
    assert [(offset, stream) for offset, _, stream in second.index()] == [(0, "err"), (12, "out")]
    assert _files(tmp_path) == ["r1/0/1.log", "r1/0/2.log", f"r1/{INDEX_NAME}"]
    assert actions["1"].log_path is None


kept_env = fl.TaskEnvironment(name="kept")


@kept_env.task(retries=1)
async def says(i: int) -> int:
    c = fl.ctx()
    print(f"task {i} says hi")
    if i == 2:
        print(f"task {i} warns, attempt {c.attempt}", file=sys.stderr)
        if c.attempt == 1:
            raise RuntimeError("once more")
    return i


@kept_env.task
async def shouts() -> int:
    print("z" * TAIL_CHARS)
    print("shouted")
    return 0


@kept_env.task
async def fan(n: int) -> int:
    done = await asyncio.gather(*(says(i) for i in range(n)))
    return sum(done) + await shouts()


def invoke(*args: str) -> Result:
    return CliRunner().invoke(logs, list(args), catch_exceptions=False)


def test_a_run_whose_tasks_print_a_little_makes_no_log_files_and_logs_shows_each() -> None:
    handle = fl.run(fan, 4)
    assert handle.outputs == 6
    run_logs = load_settings().home / "logs" / handle.id
    # The index of the run and the file of the one action that printed more than the records keep; nothing else.
    assert _files(run_logs) == ["0.4/1.log", INDEX_NAME]
    assert (run_logs / "0.4" / "1.log").read_text() == "z" * TAIL_CHARS + "\nshouted\n"

    shown = invoke(handle.id)
    assert shown.exit_code == 0, shown.output
    said = [f"== 0.{i} kept.says ==\ntask {i} says hi\n" for i in (0, 1, 3)]
    retried = (
        "== 0.2 kept.says (attempt 1) ==\ntask 2 says hi\ntask 2 warns, attempt 1\n"
        "== 0.2 kept.says (attempt 2) ==\ntask 2 says hi\ntask 2 warns, attempt 2\n"
    )
    big = "== 0.4 kept.shouts ==\n" + "z" * TAIL_CHARS + "\nshouted\n"
    assert shown.stdout == said[0] + said[1] + retried + said[2] + big

    assert invoke(handle.id, "0.2", "--stderr").stdout == "task 2 warns, attempt 1\ntask 2 warns, attempt 2\n"
    assert invoke(handle.id, "0.2", "--stdout", "--attempt", "2").stdout == "task 2 says hi\n"
    assert invoke(handle.id, "0.2", "--tail", "1").stdout == "task 2 warns, attempt 1\ntask 2 warns, attempt 2\n"
    stamped = invoke(handle.id, "0.1", "-t").stdout
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3} task 1 says hi\n", stamped), stamped
    assert invoke(handle.id, "0.4", "--tail", "1").stdout == "shouted\n"


GATED = """
    import asyncio
    import os
    import sys
    import flytelike as fl

    env = fl.TaskEnvironment(name="gated")


    @env.task
    async def quick() -> int:
        print("quick says hi")
        return 1


    @env.task
    async def main(gate: str) -> int:
        n = await quick()
        for _ in range(400):  # until the test saw quick's line (at most 20 s)
            if os.path.exists(gate):
                break
            await asyncio.sleep(0.05)
        print("main is done")
        return n


    if __name__ == "__main__":
        fl.run(main, sys.argv[1])
"""


@pytest.mark.slow  # 1.5-2 s: a run and a follower, each a fresh interpreter
def test_follow_shows_kept_output_once_its_action_ended_while_the_run_goes_on(tmp_path: Path) -> None:
    script = tmp_path / "gated.py"
    script.write_text(textwrap.dedent(GATED))
    gate = tmp_path / "gate"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    running = subprocess.Popen([sys.executable, str(script), str(gate)], stdout=subprocess.DEVNULL, env=env)
    follow = None
    try:
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
        follow = subprocess.Popen(
            [sys.executable, "-m", "flytelike", "logs", run_id, "--follow"],
            stdout=subprocess.PIPE,
            text=True,
            env=env,
        )
        lines: queue.Queue[str] = queue.Queue()
        out = follow.stdout
        assert out is not None

        def read_lines() -> None:
            for line in out:
                lines.put(line)

        reader = threading.Thread(target=read_lines, daemon=True)
        reader.start()
        seen = [lines.get(timeout=15), lines.get(timeout=15)]  # while main still waits at the gate
        assert seen == ["== 0.0 gated.quick ==\n", "quick says hi\n"]
        gate.touch()
        assert running.wait(timeout=30) == 0
        assert follow.wait(timeout=30) == 0
        reader.join(timeout=5)
        rest = []
        while not lines.empty():
            rest.append(lines.get())
        assert rest == ["== 0 gated.main ==\n", "main is done\n"]
    finally:
        for process in (running, follow):
            if process is not None:
                process.kill()
                process.wait()
                if process.stdout is not None:
                    process.stdout.close()
