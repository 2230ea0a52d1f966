"""Task output spooled to files: the spool's format, its bounds (open files, the tail kept in the records), and what
a run does with a task that prints a lot: memory and the records stay small, the whole output is in the file."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from module_files import module_writer

import flytelike as fl
from flytelike._config import load_settings
from flytelike._executor import TAIL_CHARS, ActionRecord, TailOnly
from flytelike._storage import AttemptLog, LogSpool, RecordStore, attempt_logs
from flytelike._storage._spool import INDEX_NAME

REPO = Path(__file__).resolve().parents[1]


def _record(action_id: str = "0") -> ActionRecord:
    return ActionRecord("r1", action_id, None, "t", "v")


def test_appends_go_to_the_attempts_file_with_streams_in_the_index(tmp_path: Path) -> None:
    actions = {"0": _record()}
    spool = LogSpool(tmp_path, "r1", actions)
    spool.append("0", 1, "to out\n")
    spool.append("0", 1, "to err\n", "err")
    spool.append("0", 2, b"\xff raw bytes\n", "all")
    assert not (tmp_path / "r1" / "0").exists()  # while the records' tail holds it all, it is there alone
    spool.append("0", 2, "x" * TAIL_CHARS)
    spool.close()
    assert actions["0"].log_path == str(tmp_path / "r1" / "0")
    first = AttemptLog(tmp_path / "r1" / "0" / "1.log")
    assert (tmp_path / "r1" / INDEX_NAME).exists()  # one index for the run
    assert first.read() == b"to out\nto err\n"
    # The last entry marks where attempt 1 stood when attempt 2 began: a reader of the tail alone needs it.
    assert [(offset, stream) for offset, _, stream in first.index()] == [(0, "out"), (7, "err"), (14, "err")]
    assert AttemptLog(tmp_path / "r1" / "0" / "2.log").read() == b"\xff raw bytes\n" + b"x" * TAIL_CHARS  # as written
    assert attempt_logs(tmp_path / "r1" / "0") == [1, 2]
    # The record's tail has what both attempts printed, as text.
    assert "".join(actions["0"].logs or ()) == "to out\nto err\n\ufffd raw bytes\n" + "x" * TAIL_CHARS


def test_writes_to_one_stream_within_a_millisecond_share_an_index_entry(tmp_path: Path) -> None:
    spool = LogSpool(tmp_path, "r1", {})
    for _ in range(1000):
        spool.append("0", 1, "x")
    spool.close()
    log = AttemptLog(tmp_path / "r1" / "0" / "1.log")
    assert log.read() == b"x" * 1000
    assert 1 <= len(log.index()) < 1000


def test_what_is_buffered_reaches_the_file_within_the_flush_interval(tmp_path: Path) -> None:
    spool = LogSpool(tmp_path, "r1", {})
    spool.append("0", 1, "soon on disk\n")
    log = AttemptLog(spool.path("0", 1))
    deadline = time.monotonic() + 2
    while log.read() != b"soon on disk\n" and time.monotonic() < deadline:
        time.sleep(0.02)
    assert log.read() == b"soon on disk\n"
    spool.close()


def test_at_most_64_files_are_open_and_a_reopened_one_is_appended_to(tmp_path: Path) -> None:
    spool = LogSpool(tmp_path, "r1", {})
    fds_before = len(os.listdir("/proc/self/fd"))
    for i in range(200):
        spool.append(f"0.{i}", 1, f"first {i}\n")
    spool.flush()
    # The 64 logs written last are kept open, and the run's index; the others were closed.
    assert 64 + 1 <= len(os.listdir("/proc/self/fd")) - fds_before <= 64 + 3
    spool.append("0.0", 1, "again\n")
    spool.close()
    assert AttemptLog(spool.path("0.0", 1)).read() == b"first 0\nagain\n"
    assert AttemptLog(spool.path("0.199", 1)).read() == b"first 199\n"


def test_output_after_close_is_still_written(tmp_path: Path) -> None:
    spool = LogSpool(tmp_path, "r1", {})
    spool.close()
    spool.append("0", 1, "late\n")  # a sync task's thread outliving its run
    assert AttemptLog(spool.path("0", 1)).read() == b"late\n"
    spool.close()


@pytest.mark.parametrize("sink", ["spool", "tail-only"])
def test_the_tail_in_the_record_is_bounded(tmp_path: Path, sink: str) -> None:
    actions = {"0": _record()}
    logs = LogSpool(tmp_path, "r1", actions) if sink == "spool" else TailOnly(actions)
    for i in range(20_000):
        logs.append("0", 1, f"line {i:06d}\n")  # 12 characters each: 240,000 in all
    tail = "".join(actions["0"].logs or ())
    assert TAIL_CHARS <= len(tail) <= 2 * TAIL_CHARS
    assert tail.endswith("line 019999\n")
    if isinstance(logs, LogSpool):
        logs.close()
        assert len(logs.read("0", 1)) == 240_000


def test_tail_offset_finds_the_last_lines(tmp_path: Path) -> None:
    path = tmp_path / "1.log"
    path.write_bytes(b"".join(b"%d\n" % i for i in range(100_000)))  # several blocks
    log = AttemptLog(path)
    assert log.read(log.tail_offset(3)) == b"99997\n99998\n99999\n"
    assert log.read(log.tail_offset(0)) == b""
    assert log.tail_offset(10**6) == 0
    path.write_bytes(b"a\nb\nno newline")
    assert log.read(log.tail_offset(2)) == b"b\nno newline"


def test_a_run_whose_tasks_never_print_writes_no_log_files() -> None:
    env = fl.TaskEnvironment(name="quiet_spool")

    @env.task
    async def hush(n: int) -> int:
        return n

    @env.task
    async def main() -> int:
        return sum([await hush(i) for i in range(5)])

    handle = fl.run(main)
    assert handle.outputs == 10
    assert not (load_settings().home / "logs" / handle.id).exists()
    assert all(a.log_path is None and a.logs is None for a in handle.run.actions.values())


CHATTY = """
    import json, resource, sys
    import flytelike as fl
    from flytelike._config import load_settings

    env = fl.TaskEnvironment(name="chatty_spool")
    LINE = "x" * 1023 + "\\n"


    @env.task
    def chatty(mib: int) -> int:
        for _ in range(mib * 1024):
            print(LINE, end="")
            print("e" * 99, file=sys.stderr)
        return mib


    if __name__ == "__main__":
        warm = fl.run(chatty, 1)  # everything a run imports and builds once, before measuring
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        handle = fl.run(chatty, int(sys.argv[1]))
        after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        print(json.dumps({"run": handle.id, "grew_kib": after - before}), file=sys.__stderr__)
"""


@pytest.mark.slow  # 1-2.5 s: a fresh interpreter printing 50 MiB
def test_a_task_printing_50_mib_grows_memory_and_the_records_by_the_tail_only(tmp_path: Path) -> None:
    script = tmp_path / "chatty_spool.py"
    script.write_text(textwrap.dedent(CHATTY))
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    done = subprocess.run(
        [sys.executable, str(script), "50"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env, timeout=120
    )
    assert done.returncode == 0, done.stderr.decode()[-2000:]
    report = json.loads(done.stderr.decode().strip().splitlines()[-1])
    assert report["grew_kib"] < 8 * 1024, report  # a few MiB at most, where keeping it all took over 50
    home = load_settings().home
    log = home / "logs" / report["run"] / "0" / "1.log"
    assert log.stat().st_size == 50 * 1024 * (1024 + 100)
    with RecordStore(home / "runs.sqlite3") as store:
        action = store.action(report["run"], "0")
        assert action is not None
        assert action.log_path == str(log.parent)
        assert len("".join(action.logs or ())) <= 2 * TAIL_CHARS
    assert (home / "runs.sqlite3").stat().st_size < 1024 * 1024


ISOLATED = """
import os
import time
from pathlib import Path

import flytelike as fl

iso = fl.TaskEnvironment(name="iso_spool", platform=fl.Local(process=True))


@iso.task
def watched() -> bool:
    # The task looks for its own first line in the controller's log file while it is still running.
    c = fl.ctx()
    print("first line", "x" * 70_000, flush=True)  # more than the records keep: it goes to a file
    log = Path(os.environ["FLYTELIKE_HOME"], "logs", c.run_id, c.action_id, f"{c.attempt}.log")
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        if log.exists() and b"first line" in log.read_bytes():
            print("then the rest")
            return True
        time.sleep(0.02)
    return False
"""


def test_a_process_isolated_tasks_output_reaches_its_log_while_it_runs(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    with module_writer(tmp_path, "", "iso_spool") as write:
        m = write(ISOLATED)
        handle = fl.run(m.watched)
    assert handle.outputs is True
    log = load_settings().home / "logs" / handle.id / "0" / "1.log"
    printed = "first line " + "x" * 70_000 + "\nthen the rest\n"
    assert log.read_bytes() == printed.encode()  # what was streamed, and the rest, once each
    assert AttemptLog(log).index()[0][2] == "all"
    assert capfd.readouterr().out == printed  # shown here too


spool_env = fl.TaskEnvironment(name="spool_live")


@spool_env.task
def sees_itself() -> bool:
    # An in-process task finds its own first line in its log file while it still runs (a line longer than the
    # records keep: shorter output is in the records alone).
    c = fl.ctx()
    first = "first line " + "x" * TAIL_CHARS + "\n"
    print(first, end="")
    log = load_settings().home / "logs" / c.run_id / c.action_id / f"{c.attempt}.log"
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        if log.exists() and log.read_bytes() == first.encode():
            return True
        time.sleep(0.02)
    return False


def test_an_in_process_tasks_output_reaches_its_log_while_it_runs() -> None:
    assert fl.run(sees_itself).outputs is True
