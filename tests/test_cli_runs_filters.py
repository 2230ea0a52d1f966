"""`flytelike runs --state/--task/--since/--label` (combined), and `flytelike run --name/--label`, recorded and
found again; bad values are errors naming the option, the value and what is accepted."""

from __future__ import annotations

import json
import textwrap
import time
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from flytelike._cli import cli
from flytelike._config import load_settings
from flytelike._executor._model import RunRecord, RunState
from flytelike._storage import RecordStore

NOW = time.time()
HOUR = 3600.0


def invoke(*args: str) -> Result:
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


def listed(*args: str) -> list[str]:
    result = invoke("runs", "-o", "json", *args)
    assert result.exit_code == 0, result.output
    return [r["id"] for r in json.loads(result.output)]


@pytest.fixture
def records() -> None:
    runs = [
        RunRecord("a-old-ok", "train.main", RunState.SUCCEEDED, created=NOW - 48 * HOUR, ended=NOW - 47 * HOUR),
        RunRecord(
            "b-fail-ml",
            "train.main",
            RunState.FAILED,
            created=NOW - 2 * HOUR,
            ended=NOW - 2 * HOUR + 5,
            labels_json='{"team": "ml", "kind": "nightly"}',
        ),
        RunRecord(
            "c-ok-ml",
            "etl.load",
            RunState.SUCCEEDED,
            created=NOW - 30 * 60,
            ended=NOW - 29 * 60,
            labels_json='{"team": "ml"}',
        ),
        RunRecord("d-abort", "etl.load", RunState.ABORTED, created=NOW - 10 * 60, ended=NOW - 9 * 60),
        # Running, by a process that no longer exists on this host: read back as lost.
        RunRecord("e-lost", "train.main", RunState.RUNNING, created=NOW - 5 * 60, pid=2**22 + 17, host="h"),
    ]
    with RecordStore(load_settings().db_path) as store:
        for r in runs:
            if r.id == "e-lost":
                r.host = store._host
            store.write(r, [])


@pytest.mark.usefixtures("records")
def test_each_filter_alone() -> None:
    assert listed() == ["e-lost", "d-abort", "c-ok-ml", "b-fail-ml", "a-old-ok"]
    assert listed("--state", "failed") == ["b-fail-ml"]
    assert listed("--state", "succeeded") == ["c-ok-ml", "a-old-ok"]
    assert listed("--state", "lost") == ["e-lost"]
    assert listed("--task", "etl.load") == ["d-abort", "c-ok-ml"]
    assert listed("--task", "main") == ["e-lost", "b-fail-ml", "a-old-ok"]  # the task's name alone
    assert listed("--since", "1h") == ["e-lost", "d-abort", "c-ok-ml"]
    assert listed("--since", "1d") == ["e-lost", "d-abort", "c-ok-ml", "b-fail-ml"]
    assert listed("--label", "team=ml") == ["c-ok-ml", "b-fail-ml"]


@pytest.mark.usefixtures("records")
def test_filters_combine() -> None:
    assert listed("--label", "team=ml", "--state", "succeeded") == ["c-ok-ml"]
    assert listed("--label", "team=ml", "--label", "kind=nightly") == ["b-fail-ml"]
    assert listed("--state", "failed,aborted") == ["d-abort", "b-fail-ml"]
    assert listed("--state", "failed", "--state", "lost") == ["e-lost", "b-fail-ml"]
    assert listed("--task", "train.main", "--since", "3h") == ["e-lost", "b-fail-ml"]
    assert listed("--task", "train.main", "--since", "3h", "-n", "1") == ["e-lost"]
    assert listed("--state", "succeeded", "-n", "1") == ["c-ok-ml"]
    assert listed("--label", "team=ops") == []
    assert invoke("runs", "--label", "team=ops").output == "no runs match these filters\n"


@pytest.mark.usefixtures("records")
def test_since_takes_a_date_too() -> None:
    day = time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(NOW - 3 * HOUR))
    assert listed("--since", day) == ["e-lost", "d-abort", "c-ok-ml", "b-fail-ml"]


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--state", "done"], ["'--state'", "'done' is not a run state", "accepted: queued, running, succeeded"]),
        (["--since", "yesterday"], ["'--since'", "'yesterday'", "accepted: a duration ago (30m, 1h, 2d"]),
        (["--label", "team"], ["'--label'", "'team' is not KEY=VALUE", "accepted: e.g. team=ml"]),
        (["--label", "bad key=x"], ["'--label'", "'bad key=x'", "not a valid name"]),
    ],
)
def test_bad_filter_values_name_the_option_the_value_and_what_is_accepted(args: list[str], expected: list[str]) -> None:
    result = invoke("runs", *args)
    assert result.exit_code == 2
    for text in expected:
        assert text in result.output


TASKS = """
import flytelike as fl

env = fl.TaskEnvironment(name="labelled")


@env.task
async def hello(name: str = "world") -> str:
    return f"Hello, {name}!"
"""


@pytest.fixture
def hello(tmp_path: Path) -> Path:
    path = tmp_path / f"labelled_{id(tmp_path)}.py"
    path.write_text(textwrap.dedent(TASKS))
    return path


def test_run_name_and_labels_are_recorded_and_found(hello: Path) -> None:
    result = invoke(
        "run", "--no-progress", "--name", "nightly", "--label", "team=ml", "--label", "env=dev", str(hello), "hello"
    )
    assert result.exit_code == 0, result.output
    assert result.output == "Hello, world!\n"
    assert invoke("run", "--no-progress", str(hello), "hello").exit_code == 0
    (found,) = listed("--label", "team=ml", "--label", "env=dev")
    assert found.startswith("nightly-")
    with RecordStore(load_settings().db_path) as store:
        record = store.run(found)
    assert record is not None
    assert json.loads(record.labels_json) == {"team": "ml", "env": "dev"}
    shown = invoke("runs", "show", found).output
    assert "labels    env=dev, team=ml" in shown


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--name", "Nightly Run"], ["'--name'", "'Nightly Run'", "lowercase letters, digits and '-'"]),
        (["--label", "team"], ["'--label'", "'team' is not KEY=VALUE"]),
        (["--label", "-x=1"], ["'--label'", "'-x=1'", "not a valid name"]),
        (["--label", "k=" + "v" * 300], ["'--label'", "at most 256 characters"]),
    ],
)
def test_bad_run_names_and_labels_exit_2_before_anything_runs(
    hello: Path, args: list[str], expected: list[str]
) -> None:
    result = invoke("run", "--no-progress", *args, str(hello), "hello")
    assert result.exit_code == 2
    for text in expected:
        assert text in result.output
    assert not load_settings().db_path.exists()
