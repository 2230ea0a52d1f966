"""`flytelike runs`, `runs show RUN` and `logs RUN [ACTION]`, against records written under a temporary home."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
import traceback
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from flytelike._cli._logs import logs
from flytelike._cli._runs import _error_summary, runs
from flytelike._config import load_settings
from flytelike._executor._events import Event
from flytelike._executor._model import ActionRecord, ActionState, RunRecord, RunState
from flytelike._storage import RecordStore

GiB = 1024**3
MiB = 1024**2
T0 = 1_700_000_000.0

TRACEBACK = (
    'Traceback (most recent call last):\n  File "train.py", line 3, in train\n    raise ValueError\n'
    "ValueError: bad shard s1"
)


@pytest.fixture
def home(isolated_config: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """FLYTELIKE_HOME (set by the autouse fixture) holding two runs: an older success and a newer failure."""
    monkeypatch.setenv("FLYTELIKE_HOME", str(isolated_config))
    assert load_settings().db_path == isolated_config / "runs.sqlite3"
    with RecordStore(load_settings().db_path) as store:
        store.write(
            RunRecord("ok0001", "hello", RunState.SUCCEEDED, created=T0, ended=T0 + 0.5, actions=1),
            [
                ActionRecord(
                    "ok0001", "0", None, "hello", "v1", ActionState.SUCCEEDED, 1, T0, T0, T0 + 0.5, logs=["hi\n"]
                )
            ],
        )
        store.write(
            RunRecord(
                "fail0002",
                "main",
                RunState.FAILED,
                created=T0 + 60,
                ended=T0 + 60 + 75,
                error="task train (action 0.1, attempt 2/2) failed: ValueError: bad shard s1\nmore",
                inputs_json='{"n": 2}',
                actions=4,
            ),
            [
                ActionRecord(
                    "fail0002",
                    "0",
                    None,
                    "main",
                    "v1",
                    ActionState.FAILED,
                    1,
                    T0 + 60,
                    T0 + 60,
                    T0 + 135,
                    cpu_millis=500,
                    memory=512 * MiB,
                    logs=["starting\n"],
                ),
                ActionRecord(
                    "fail0002",
                    "0.0",
                    "0",
                    "train",
                    "v1",
                    ActionState.SUCCEEDED,
                    1,
                    T0 + 61,
                    T0 + 61,
                    T0 + 63.5,
                    cpu_millis=2000,
                    memory=3 * GiB // 2,
                    gpus=1,
                    peak_memory=GiB + GiB // 5,
                    cpu_time=2.25,
                    logs=["epoch 1\n", "epoch 2\n"],
                ),
                ActionRecord(
                    "fail0002",
                    "0.1",
                    "0",
                    "train",
                    "v1",
                    ActionState.FAILED,
                    2,
                    T0 + 61,
                    T0 + 61,
                    T0 + 62,
                    cpu_millis=2000,
                    memory=3 * GiB // 2,
                    gpus=1,
                    error=TRACEBACK,
                    error_type="ValueError",
                ),
                ActionRecord(
                    "fail0002", "0.1.0", "0.1", "prep", "v1", ActionState.CACHED, 0, T0 + 61, T0 + 61, T0 + 61
                ),
            ],
        )
    return isolated_config


def invoke(command: object, *args: str) -> Result:
    result = CliRunner().invoke(command, list(args))  # type: ignore[arg-type]
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result


def test_runs_table_lists_newest_first(home: Path) -> None:
    result = invoke(runs)

    assert result.exit_code == 0
    lines = result.output.splitlines()
    assert lines[0].split() == ["ID", "TASK", "STATE", "STARTED", "DURATION", "ACTIONS"]
    started = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(T0 + 60))
    assert lines[1].split() == ["fail0002", "main", "failed", *started.split(), "1m15s", "4"]
    assert lines[2].split()[:3] == ["ok0001", "hello", "succeeded"]
    assert lines[2].split()[-2:] == ["0.50s", "1"]
    assert len(lines) == 3
    assert lines[1].index("main") == lines[2].index("hello")  # columns line up


def test_runs_limit_and_json(home: Path) -> None:
    assert len(invoke(runs, "--limit", "1").output.splitlines()) == 2

    data = json.loads(invoke(runs, "-o", "json").output)
    assert [r["id"] for r in data] == ["fail0002", "ok0001"]
    assert data[0]["state"] == "failed"
    assert data[0]["inputs"] == {"n": 2}
    assert data[0]["outputs"] is None
    assert data[0]["duration"] == pytest.approx(75)
    assert data[0]["actions"] == 4


def test_runs_without_any_records(isolated_config: Path) -> None:
    result = invoke(runs)
    assert result.exit_code == 0
    assert "no runs recorded yet" in result.output
    assert json.loads(invoke(runs, "-o", "json").output) == []
    assert not (isolated_config / "runs.sqlite3").exists()  # looking creates nothing


def test_show_prints_the_action_tree_with_resources_and_usage(home: Path) -> None:
    result = invoke(runs, "show", "fail")  # a unique prefix is enough

    assert result.exit_code == 0, result.output
    out = result.output
    assert "run       fail0002" in out
    assert "state     failed" in out
    assert "error     task train (action 0.1, attempt 2/2) failed: ValueError: bad shard s1\n" in out
    lines = out.splitlines()
    header = next(i for i, line in enumerate(lines) if line.startswith("ACTION"))
    assert lines[header].split() == [
        "ACTION", "TASK", "STATE", "ATTEMPTS", "DURATION", "CPU", "MEMORY", "GPU", "PEAK", "MEMORY", "CPU", "TIME"
    ]  # fmt: skip
    table = lines[header + 1 :]
    assert table[0].split() == ["0", "main", "failed", "1", "1m15s", "500m", "512Mi", "-", "-", "-"]
    assert table[1].split() == ["0.0", "train", "succeeded", "1", "2.50s", "2", "1.5Gi", "1", "1.2Gi", "2.25s"]
    assert table[1].startswith("  0.0")  # indented by depth
    assert table[2].startswith("  0.1 ")
    assert table[3].strip() == "error: ValueError: bad shard s1"  # the exception line, not "Traceback ..."
    assert table[3].startswith("      error:")
    assert table[4].startswith("    0.1.0 ")
    assert table[4].split()[:4] == ["0.1.0", "prep", "cached", "0"]
    assert len(table) == 5


def test_show_json(home: Path) -> None:
    data = json.loads(invoke(runs, "show", "fail0002", "-o", "json").output)

    assert data["run"]["id"] == "fail0002"
    assert [a["id"] for a in data["actions"]] == ["0", "0.0", "0.1", "0.1.0"]
    train = data["actions"][1]
    assert (train["memory"], train["peak_memory"], train["cpu_millis"], train["gpus"]) == (
        3 * GiB // 2,
        GiB + GiB // 5,
        2000,
        1,
    )
    assert train["duration"] == pytest.approx(2.5)
    assert train["state"] == "succeeded"
    assert "logs" not in train
    assert data["actions"][2]["error"] == TRACEBACK


def test_logs_of_one_action(home: Path) -> None:
    result = invoke(logs, "fail0002", "0.0")
    assert result.exit_code == 0
    assert result.output == "epoch 1\nepoch 2\n"


def test_logs_of_every_action_under_headers(home: Path) -> None:
    result = invoke(logs, "fail0")
    assert result.exit_code == 0
    assert result.output == "== 0 main ==\nstarting\n== 0.0 train ==\nepoch 1\nepoch 2\n"


def test_logs_of_an_action_that_printed_nothing(home: Path) -> None:
    result = invoke(logs, "fail0002", "0.1")
    assert result.exit_code == 0
    assert result.stdout == ""
    assert "no output captured" in result.stderr


@pytest.mark.parametrize(
    ("command", "args", "message"),
    [
        (runs, ["show", "nope"], "Error: no run 'nope' in the run records"),
        (logs, ["nope"], "Error: no run 'nope' in the run records"),
        (logs, ["fail0002", "9.9"], "Error: run fail0002 has no action '9.9'"),
        (runs, ["show", ""], "Error: no run ''"),
    ],
)
def test_a_missing_run_or_action_is_one_line_and_exit_code_2(
    home: Path, command: object, args: list[str], message: str
) -> None:
    result = invoke(command, *args)
    assert result.exit_code == 2
    assert result.stdout == ""
    assert result.stderr.startswith(message)
    assert len(result.stderr.splitlines()) == 1


def test_an_ambiguous_prefix_names_the_matches(home: Path) -> None:
    with RecordStore(load_settings().db_path) as store:
        store.write(RunRecord("fail0003", "main", created=T0 + 200), [])
    result = invoke(logs, "fail")
    assert result.exit_code == 2
    assert "ambiguous" in result.stderr
    assert "fail0002" in result.stderr
    assert "fail0003" in result.stderr


def test_show_without_any_records(isolated_config: Path) -> None:
    result = invoke(runs, "show", "abc")
    assert result.exit_code == 2
    assert result.stderr.startswith("Error: no run 'abc'")
    assert not (isolated_config / "runs.sqlite3").exists()


def _traceback_of(error: BaseException) -> str:
    return "".join(traceback.format_exception(error)).rstrip()


def test_error_summary_is_the_final_exception_line() -> None:
    def fail() -> None:
        try:
            raise KeyError("key")
        except KeyError as e:
            raise ValueError("bad shard s1\n  detail on a second line") from e

    try:
        fail()
    except ValueError as e:
        text = _traceback_of(e)
    assert "KeyError" in text  # a chained traceback: the cause comes first
    assert _error_summary(text) == "ValueError: bad shard s1"
    assert _error_summary("task failed: boom\nsecond") == "task failed: boom"
    assert _error_summary("") == ""


def test_show_folds_wide_fan_outs_but_lists_every_failure(isolated_config: Path) -> None:
    children = [
        ActionRecord(
            "fan001",
            f"0.{i}",
            "0",
            "work",
            "v1",
            ActionState.FAILED if i in (7, 12) else ActionState.SUCCEEDED,
            1,
            T0,
            T0,
            T0 + 0.1,
            error="Traceback (most recent call last):\nValueError: bad shard" if i in (7, 12) else None,
        )
        for i in range(15)
    ]
    root = ActionRecord("fan001", "0", None, "main", "v1", ActionState.FAILED, 1, T0, T0, T0 + 1)
    with RecordStore(load_settings().db_path) as store:
        store.write(
            RunRecord("fan001", "main", RunState.FAILED, created=T0, ended=T0 + 1, actions=16), [root, *children]
        )
    folded = invoke(runs, "show", "fan001").stdout
    ids = [line.split()[0] for line in folded.splitlines() if line.startswith("  0.")]
    assert ids == ["0.0", "0.1", "0.2", "0.7", "0.12"]
    assert "... 10 more work: 10 succeeded (--all lists them)" in folded
    assert folded.count("error: ValueError: bad shard") == 2
    every = invoke(runs, "show", "--all", "fan001").stdout
    assert len([line for line in every.splitlines() if line.startswith("  0.")]) == 15
    assert "more work" not in every


# --- lost runs -------------------------------------------------------------------------------------------------


@pytest.fixture
def lost_home(isolated_config: Path) -> float:
    """A run recorded as running by a process that is gone (pid reaped, on this host); returns its last seen time."""
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    seen = T0 + 200
    with RecordStore(load_settings().db_path) as store:
        store.write(
            RunRecord("gone0003", "main", created=T0 + 100, actions=2, pid=process.pid, host=socket.gethostname()),
            [
                ActionRecord("gone0003", "0", None, "main", "v1", ActionState.RUNNING, 1, T0 + 100, T0 + 100),
                ActionRecord(
                    "gone0003", "0.0", "0", "train", "v1", ActionState.SUCCEEDED, 1, T0 + 101, T0 + 101, T0 + 150
                ),
            ],
            [Event("gone0003", 1, "0.0", "succeeded", 1, seen)],
        )
    return seen


def _local(epoch: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(epoch))


def test_runs_shows_a_lost_run_with_when_it_was_last_seen(lost_home: float) -> None:
    result = invoke(runs)
    assert result.exit_code == 0
    [row] = [line for line in result.output.splitlines() if line.startswith("gone0003")]
    assert f"lost (last seen {_local(lost_home)})" in row
    assert "1m40s" in row  # from its start until it was last seen, not growing forever

    [data] = json.loads(invoke(runs, "-o", "json").stdout)
    assert (data["state"], data["last_seen"], data["duration"]) == ("lost", lost_home, 100.0)
    assert data["pid"] > 0
    assert data["host"] == socket.gethostname()
    assert data["heartbeat"] is None


def test_runs_show_of_a_lost_run_shows_its_unfinished_actions_aborted(lost_home: float) -> None:
    result = invoke(runs, "show", "gone")
    assert result.exit_code == 0
    out = result.output
    assert f"state     lost (last seen {_local(lost_home)})" in out
    assert "is gone or stopped reporting; the run's end was never recorded" in out
    rows = {line.split()[0]: line.split()[2] for line in out.splitlines() if line.lstrip().startswith("0")}
    assert rows == {"0": "aborted", "0.0": "succeeded"}

    data = json.loads(invoke(runs, "show", "gone", "-o", "json").stdout)
    assert (data["run"]["state"], data["run"]["last_seen"]) == ("lost", lost_home)
    assert [(a["id"], a["state"], a["ended"]) for a in data["actions"]] == [
        ("0", "aborted", lost_home),
        ("0.0", "succeeded", T0 + 150),
    ]


def test_json_gives_when_each_run_was_last_seen(home: Path) -> None:
    data = {r["id"]: r["last_seen"] for r in json.loads(invoke(runs, "-o", "json").stdout)}
    assert data == {"ok0001": T0 + 0.5, "fail0002": T0 + 135}  # finished runs: when they ended


def test_a_records_file_that_cannot_be_opened_is_an_error_not_a_traceback(isolated_config: Path) -> None:
    path = load_settings().db_path
    path.write_bytes(b"not a database" * 100)
    for args in ((), ("show", "x")):
        result = CliRunner().invoke(runs, list(args))
        assert result.exit_code == 1, result.output
        assert result.output.strip().startswith(f"Error: cannot open the run records {path}: file is not a database")
        assert f"move it aside (mv {path} {path}.corrupt)" in result.output
