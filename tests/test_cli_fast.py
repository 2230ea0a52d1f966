"""The front door of ``flytelike`` (flytelike._cli._fast): the plain ``flytelike runs`` and ``--version`` answered
without click print exactly what the click command prints, and every other command line is left to click."""

from __future__ import annotations

import json
import os
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from flytelike._cli import _fast, cli
from flytelike._cli._fast import answer
from flytelike._executor._model import ActionRecord, RunRecord, RunState
from flytelike._storage import RecordStore
from flytelike._storage._liveness import this_host
from flytelike._storage._run_query import RUN_STATES
from flytelike._storage._sqlite import BUSY_TIMEOUT

ROOT = Path(__file__).resolve().parents[1]
NOW = time.time()
DEAD_PID = 2**22 + 17  # above the default pid_max: no such process


@pytest.fixture
def records(isolated_config: Path) -> Path:
    """Runs in every state a listing can show the same twice (finished, and lost: a running run whose process is
    gone, or whose heartbeat stopped), with labels, inputs, outputs and errors."""
    runs = [
        RunRecord("r-ok", "train.main", RunState.SUCCEEDED, created=NOW - 7200, ended=NOW - 7100, actions=3),
        RunRecord(
            "r-failed",
            "train.main",
            RunState.FAILED,
            created=NOW - 3600,
            ended=NOW - 3000,
            error="Traceback ...\nValueError: bad",
            labels_json='{"team": "ml"}',
            inputs_json='{"n": 3}',
            outputs_json=None,
        ),
        RunRecord("r-etl", "etl.load", RunState.SUCCEEDED, created=NOW - 600, ended=NOW - 30, outputs_json='{"o0": 1}'),
        RunRecord("r-abort", "etl.load", RunState.ABORTED, created=NOW - 500, ended=NOW - 400, inputs=b"\x00\x01"),
        RunRecord("r-gone", "train.main", RunState.RUNNING, created=NOW - 300, pid=DEAD_PID, host=this_host()),
        RunRecord("r-silent", "etl.load", RunState.QUEUED, created=NOW - 200, heartbeat=NOW - 120, host="elsewhere"),
    ]
    with RecordStore(isolated_config / "runs.sqlite3") as store:
        for r in runs:
            store.write(r, [ActionRecord(r.id, "0", None, r.task, "v1", created=r.created, started=r.created + 1)])
    return isolated_config


def by_click(args: list[str]) -> tuple[int, str]:
    result = CliRunner().invoke(cli, args, catch_exceptions=False)
    return result.exit_code, result.output


def by_front_door(args: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    capsys.readouterr()
    assert answer(args, os.environ), f"{args} was left to click"
    return capsys.readouterr().out


ANSWERED = [
    ["runs"],
    ["runs", "-o", "json"],
    ["runs", "--output=json", "--limit", "2"],
    ["runs", "-n2"],
    ["runs", "-n", "3", "-otext"],
    ["runs", "--limit=1", "--limit", "4"],  # the last wins, as in click
    ["runs", "--state", "lost"],
    ["runs", "--state", "Succeeded,  failed", "-o", "json"],
    ["runs", "--state", "aborted", "--state", "lost", "-n", "2"],
    ["runs", "--task", "load"],
    ["runs", "--task=train.main", "--state", "failed", "-o", "json"],
    ["runs", "--task", "nothing.here"],
    ["runs", "--state", "queued"],
    ["--version"],
]


@pytest.mark.usefixtures("records")
@pytest.mark.parametrize("args", ANSWERED, ids=" ".join)
def test_the_front_door_prints_what_click_prints(args: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    fast = by_front_door(args, capsys)
    code, slow = by_click(args)
    assert code == 0
    assert fast == slow
    assert fast.strip()


def test_the_listing_shows_what_the_records_hold(records: Path, capsys: pytest.CaptureFixture[str]) -> None:
    listed = json.loads(by_front_door(["runs", "-o", "json"], capsys))
    states = {r["id"]: r["state"] for r in listed}
    assert states == {
        "r-ok": "succeeded",
        "r-failed": "failed",
        "r-etl": "succeeded",
        "r-abort": "aborted",
        "r-gone": "lost",
        "r-silent": "lost",
    }
    assert [r["id"] for r in listed][:2] == ["r-silent", "r-gone"]  # newest first
    failed = next(r for r in listed if r["id"] == "r-failed")
    assert (failed["labels"], failed["inputs"]) == ({"team": "ml"}, {"n": 3})
    assert "inputs_json" not in failed
    text = by_front_door(["runs", "--state", "lost"], capsys).splitlines()
    assert text[0].split() == ["ID", "TASK", "STATE", "STARTED", "DURATION", "ACTIONS"]
    assert [line.split()[0] for line in text[1:]] == ["r-silent", "r-gone"]
    assert "lost (last seen" in text[1]


@pytest.mark.parametrize(
    ("args", "message"), [(["runs"], "no runs recorded yet"), (["runs", "--state", "lost"], "no runs match")]
)
def test_without_records_nothing_is_created(
    args: list[str], message: str, isolated_config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fast = by_front_door(args, capsys)
    assert fast == by_click(args)[1]
    assert fast.startswith(message)
    assert not (isolated_config / "runs.sqlite3").exists()


LEFT_TO_CLICK = [
    [],
    ["--help"],
    ["runs", "--help"],
    ["runs", "-h"],
    ["runs", "show", "r-ok"],
    ["runs", "--since", "1h"],
    ["runs", "--label", "team=ml"],
    ["runs", "--remote"],
    ["runs", "--limit", "0"],
    ["runs", "--limit", "many"],
    ["runs", "--limit"],
    ["runs", "-n=3"],
    ["runs", "--lim", "3"],
    ["runs", "--state", "bogus"],
    ["runs", "--state", "lost,"],
    ["runs", "-o", "yaml"],
    ["runs", "-o", "JSON"],
    ["runs", "--task", "--limit"],
    ["runs", "--", "x"],
    ["runs", "extra"],
    ["--version", "runs"],
    ["logs", "r-ok"],
]


@pytest.mark.usefixtures("records")
@pytest.mark.parametrize("args", LEFT_TO_CLICK, ids=lambda a: " ".join(a) or "(none)")
def test_every_other_command_line_is_left_to_click(args: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert not answer(args, os.environ)
    assert capsys.readouterr() == ("", "")


@pytest.mark.usefixtures("records")
def test_settings_beyond_the_home_leave_the_listing_to_click(
    isolated_config: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    assert answer(["runs"], os.environ)
    assert capsys.readouterr().out.startswith("ID ")
    with monkeypatch.context() as m:
        m.setenv("FLYTELIKE_LOCAL__WORKERS", "2")
        assert not answer(["runs"], os.environ)
    with monkeypatch.context() as m:
        m.setenv("flytelike_home", "/elsewhere")  # settings read it too, case aside
        assert not answer(["runs"], os.environ)
    with monkeypatch.context() as m:
        m.setenv("_FLYTELIKE_COMPLETE", "bash_complete")
        assert not answer(["runs"], os.environ)
    (isolated_config / "config.toml").write_text('home = "/elsewhere"\n')
    assert not answer(["runs"], os.environ)
    (isolated_config / "config.toml").unlink()
    Path("flytelike.toml").write_text("[local]\nworkers = 2\n")
    assert not answer(["runs"], os.environ)
    assert capsys.readouterr() == ("", "")


def test_a_file_that_needs_migrating_is_left_to_click(
    isolated_config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = isolated_config / "runs.sqlite3"
    with RecordStore(path) as store:
        store.write(RunRecord("r-old", "train.main", RunState.SUCCEEDED, created=NOW - 60, ended=NOW - 50), [])
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA user_version = 4")  # as if written before the last migration
    conn.close()
    assert not answer(["runs"], os.environ)
    assert capsys.readouterr() == ("", "")
    path.write_bytes(b"not a database at all, but long enough to be read as one" * 100)
    assert not answer(["runs"], os.environ)
    code, output = by_click(["runs"])
    assert code == 1  # click's error, as before
    assert "damaged" in output


def test_the_states_answered_are_the_run_states() -> None:
    assert list(RUN_STATES) == [s.value for s in RunState]


def test_the_front_door_waits_for_a_locked_file_as_the_store_does() -> None:
    assert _fast._BUSY_TIMEOUT == BUSY_TIMEOUT


def test_this_host_is_the_name_runs_record() -> None:
    assert this_host() == socket.gethostname()


def test_the_console_script_answers_without_click_typing_or_dataclasses(records: Path) -> None:
    code = (
        "import sys\n"
        "sys.argv = ['flytelike', 'runs', '-n', '2']\n"
        "from flytelike._cli import main\n"
        "main()\n"
        "heavy = sorted(m for m in ('click', 'typing', 'dataclasses', 'pathlib') if m in sys.modules)\n"
        "print('LOADED', heavy)\n"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=60, check=True)
    lines = out.stdout.splitlines()
    assert lines[-1] == "LOADED []"
    assert [line.split()[0] for line in lines[1:-1]] == ["r-silent", "r-gone"]
