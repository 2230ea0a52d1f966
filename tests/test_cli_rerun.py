"""`flytelike rerun RUN [--recover] [--set k=v]`: the same task from the same file, with the recorded inputs (their
literal bytes, so dataclasses come back as dataclasses), overridden by --set; with --recover, what succeeded is
reused from its recorded outputs (same action id, task version and inputs) and only the rest runs again."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

import flytelike as fl
from flytelike._cli import cli
from flytelike._config import load_settings
from flytelike._executor._model import ActionRecord, RunRecord
from flytelike._loader import load_file
from flytelike._storage import RecordStore

REPO = Path(__file__).resolve().parents[1]
TASKS = """
import asyncio
from dataclasses import dataclass
from pathlib import Path

import flytelike as fl

env = fl.TaskEnvironment(name="rerun")
CALLS = Path({calls!r})
BROKEN = Path({broken!r})


@dataclass
class Plan:
    shards: int = 3
    label: str = "x"


@env.task
async def step(i: int, label: str) -> str:
    with CALLS.open("a") as f:
        f.write(f"step {{i}}\\n")
    # The shards listed in BROKEN fail (shard 1 when it lists none).
    if BROKEN.exists() and i in ([int(n) for n in BROKEN.read_text().split()] or [1]):
        raise ValueError(f"shard {{i}} broke")
    return f"{{label}}{{i * 10}}"


@env.task
async def main(plan: Plan = Plan(), times: int = 1) -> list[str]:
    with CALLS.open("a") as f:
        f.write("main\\n")
    first = await step(0, plan.label)
    rest = await asyncio.gather(*(step(i, plan.label) for i in range(1, plan.shards)))
    return [first, *rest] * times
"""


class Project:
    def __init__(self, folder: Path) -> None:
        self.calls = folder / "calls.txt"
        self.broken = folder / "broken"
        self.path = folder / f"rerun_tasks_{id(self)}.py"
        self.write()

    def write(self, extra: str = "") -> None:
        self.path.write_text(textwrap.dedent(TASKS.format(calls=str(self.calls), broken=str(self.broken))) + extra)
        sys.modules.pop(self.path.stem, None)  # as a new process would, import the file afresh

    def taken_calls(self) -> list[str]:
        calls = self.calls.read_text().splitlines() if self.calls.exists() else []
        self.calls.unlink(missing_ok=True)
        return sorted(calls)


@pytest.fixture
def project(tmp_path: Path) -> Iterator[Project]:
    p = Project(tmp_path)
    yield p
    sys.modules.pop(p.path.stem, None)
    if str(tmp_path) in sys.path:
        sys.path.remove(str(tmp_path))


def invoke(*args: str) -> Result:
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


def latest() -> RunRecord:
    with RecordStore(load_settings().db_path) as store:
        return store.runs(limit=1)[0]


def actions(run_id: str) -> dict[str, ActionRecord]:
    with RecordStore(load_settings().db_path) as store:
        return {a.id: a for a in store.actions(run_id)}


def test_a_rerun_repeats_the_task_with_its_recorded_inputs(project: Project) -> None:
    ran = invoke("run", "--no-progress", str(project.path), "main", "--plan", '{"shards": 2, "label": "p"}')
    assert ran.exit_code == 0, ran.output
    assert json.loads(ran.output) == ["p0", "p10"]
    first = latest()
    assert json.loads(first.inputs_json) == {"plan": {"label": "p", "shards": 2}, "times": 1}  # JSON, not a repr
    assert first.file == str(project.path.resolve())
    project.taken_calls()

    again = invoke("rerun", "--no-progress", first.id)
    assert again.exit_code == 0, again.output
    assert json.loads(again.output) == ["p0", "p10"]
    second = latest()
    assert second.id != first.id
    assert second.rerun_of == first.id
    assert second.inputs == first.inputs
    assert project.taken_calls() == ["main", "step 0", "step 1"]  # without --recover, everything runs
    assert "rerun of  " + first.id in invoke("runs", "show", second.id).output

    as_json = json.loads(invoke("rerun", "--no-progress", "-o", "json", first.id).output)
    assert as_json == {"run": latest().id, "rerun_of": first.id, "task": "rerun.main", "outputs": ["p0", "p10"]}


def test_set_overrides_inputs_typed_like_run_options(project: Project) -> None:
    assert invoke("run", "--no-progress", str(project.path), "main").exit_code == 0
    first = latest()
    result = invoke("rerun", "--no-progress", first.id, "--set", "times=2", "--set", 'plan={"shards": 1}')
    assert result.exit_code == 0, result.output
    assert json.loads(result.output) == ["x0", "x0"]

    bad = invoke("rerun", first.id, "--set", "times=many")
    assert bad.exit_code == 2
    assert "'many' is not a int" in bad.output
    unknown = invoke("rerun", first.id, "--set", "tims=2")
    assert unknown.exit_code == 2
    assert "has no input 'tims'; did you mean times?" in unknown.output
    assert "'--set'" in unknown.output
    malformed = invoke("rerun", first.id, "--set", "times")
    assert malformed.exit_code == 2
    assert "'times' is not INPUT=VALUE" in malformed.output


def test_recover_reuses_what_succeeded_and_runs_only_the_rest(project: Project) -> None:
    project.broken.touch()
    failed = invoke("run", "--no-progress", str(project.path), "main", "--plan", '{"shards": 3}')
    assert failed.exit_code == 1
    first = latest()
    assert {a.id: a.state.value for a in actions(first.id).values()} == {
        "0": "failed",
        "0.0": "succeeded",
        "0.1": "failed",
        "0.2": "succeeded",
    }
    project.taken_calls()

    project.broken.unlink()
    # In a process of its own, with the progress view on (plain, as stderr is not a terminal).
    recovered = subprocess.run(
        [sys.executable, "-m", "flytelike", "rerun", first.id, "--recover"],
        env={**os.environ, "PYTHONPATH": str(REPO)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert recovered.returncode == 0, recovered.stderr
    assert json.loads(recovered.stdout) == ["x0", "x10", "x20"]
    # The root failed, so it runs again; of its children only the one that failed runs.
    assert project.taken_calls() == ["main", "step 1"]
    second = latest()
    states = {a.id: (a.state.value, a.recovered_from) for a in actions(second.id).values()}
    assert states == {
        "0": ("succeeded", None),
        "0.0": ("recovered", first.id),
        "0.1": ("succeeded", None),
        "0.2": ("recovered", first.id),
    }
    assert "4 actions (2 recovered, 2 succeeded)" in recovered.stderr  # the plain view's summary
    shown = invoke("runs", "show", second.id).output
    assert "recovered 2 action(s)" in shown
    assert any(line.split()[:3] == ["0.2", "rerun.step", "recovered"] for line in shown.splitlines())

    # A rerun of a run that succeeded recovers all of it, the root included: nothing runs.
    whole = invoke("rerun", "--no-progress", second.id, "--recover")
    assert json.loads(whole.output) == ["x0", "x10", "x20"]
    assert project.taken_calls() == []
    assert {a.state.value for a in actions(latest().id).values()} == {"recovered"}


def test_recover_after_3_of_50_children_failed_runs_exactly_those_and_their_parent(project: Project) -> None:
    project.broken.write_text("7 23 41")
    failed = invoke("run", "--no-progress", str(project.path), "main", "--plan", '{"shards": 50}')
    assert failed.exit_code == 1
    first = latest()
    states = {a.id: a.state.value for a in actions(first.id).values()}
    assert sorted(i for i, state in states.items() if state == "failed") == ["0", "0.23", "0.41", "0.7"]
    project.taken_calls()

    project.broken.unlink()
    recovered = invoke("rerun", "--no-progress", first.id, "--recover")
    assert recovered.exit_code == 0, recovered.output
    assert json.loads(recovered.output) == [f"x{i * 10}" for i in range(50)]
    assert project.taken_calls() == sorted(["main", "step 7", "step 23", "step 41"])
    second = {a.id: a.state.value for a in actions(latest().id).values()}
    assert sorted(i for i, state in second.items() if state != "recovered") == ["0", "0.23", "0.41", "0.7"]
    assert sum(state == "recovered" for state in second.values()) == 47


def test_recover_runs_again_what_got_other_inputs_or_other_code(project: Project) -> None:
    assert invoke("run", "--no-progress", str(project.path), "main").exit_code == 0
    first = latest()
    project.taken_calls()

    relabelled = invoke("rerun", "--no-progress", first.id, "--recover", "--set", 'plan={"label": "y"}')
    assert json.loads(relabelled.output) == ["y0", "y10", "y20"]  # every step got other inputs
    assert project.taken_calls() == ["main", "step 0", "step 1", "step 2"]

    project.write(extra="\n\nVERSION_BUMP = 1\n")  # the file's code changed, so every task's version did
    changed = invoke("rerun", "--no-progress", first.id, "--recover")
    assert changed.exit_code == 0, changed.output
    after = actions(latest().id)
    assert {a.state.value for a in after.values()} == {"succeeded"}
    assert all(after[i].task_version != a.task_version for i, a in actions(first.id).items())
    assert project.taken_calls() == ["main", "step 0", "step 1", "step 2"]


def test_recover_from_a_run_that_kept_no_outputs_says_so_and_runs_everything(project: Project) -> None:
    module = load_file(project.path)
    try:
        fl.run(module.main)  # the library keeps no outputs unless asked to
    finally:
        sys.modules.pop(project.path.stem, None)
    first = latest()
    project.taken_calls()
    result = CliRunner().invoke(cli, ["rerun", "--no-progress", first.id, "--recover"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert f"Warning: run {first.id} kept no outputs of actions that succeeded" in result.stderr
    assert project.taken_calls() == ["main", "step 0", "step 1", "step 2"]


def test_rerun_errors_name_what_is_wrong(project: Project) -> None:
    missing = invoke("rerun", "nope")
    assert missing.exit_code == 2
    assert "no run 'nope'" in missing.output

    assert invoke("run", "--no-progress", str(project.path), "main").exit_code == 0
    first = latest()
    project.path.unlink()
    gone = invoke("rerun", first.id)
    assert gone.exit_code == 2
    assert f"the file of run {first.id}'s task, {project.path.resolve()}, is gone" in gone.output


def test_runs_recorded_before_inputs_were_kept_as_literals_rerun_from_their_json(project: Project) -> None:
    with RecordStore(load_settings().db_path) as store:
        store.write(
            RunRecord(
                "old1",
                "rerun.main",
                created=1.0,
                inputs_json='{"plan": {"shards": 2, "label": "o"}, "times": 2}',
                file=str(project.path),
            ),
            [],
        )
        store.write(RunRecord("old2", "rerun.main", created=2.0), [])  # an older flytelike kept no file
    result = invoke("rerun", "--no-progress", "old1")
    assert result.exit_code == 0, result.output
    assert json.loads(result.output) == ["o0", "o10", "o0", "o10"]
    no_file = invoke("rerun", "old2")
    assert no_file.exit_code == 2
    assert "run old2 did not record the file of its task" in no_file.output


ISOLATED = """

iso = fl.TaskEnvironment(name="rerun-iso", platform=fl.Local(process=True))


@iso.task
async def heavy(i: int) -> int:
    with CALLS.open("a") as f:
        f.write(f"heavy {i}\\n")
    # The shards listed in BROKEN fail (shard 1 when it lists none).
    if BROKEN.exists() and i in ([int(n) for n in BROKEN.read_text().split()] or [1]):
        raise ValueError("heavy broke")
    return i + 100


@env.task
async def isolated(n: int = 2) -> list[int]:
    return list(await asyncio.gather(*(heavy(i) for i in range(n))))
"""


def test_recover_reuses_outputs_of_process_isolated_tasks(project: Project) -> None:
    project.write(extra=ISOLATED)
    project.broken.touch()
    assert invoke("run", "--no-progress", str(project.path), "isolated").exit_code == 1
    first = latest()
    assert actions(first.id)["0.0"].outputs is not None  # the bytes a worker returned are kept
    project.taken_calls()
    project.broken.unlink()
    result = invoke("rerun", "--no-progress", first.id, "--recover")
    assert result.exit_code == 0, result.output
    assert json.loads(result.output) == [100, 101]
    assert project.taken_calls() == ["heavy 1"]
    assert actions(latest().id)["0.0"].state.value == "recovered"
