"""Shell completion for bash, zsh and fish: subcommands, the task names of a file, a task's input options and run
ids from the records, through click's completion protocol (what the sourced scripts call)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from flytelike._cli import cli
from flytelike._config import load_settings
from flytelike._executor._model import RunRecord, RunState
from flytelike._storage import RecordStore

REPO = Path(__file__).resolve().parents[1]
TASKS = """
import flytelike as fl

print("importing prints this, which completion must not show")
env = fl.TaskEnvironment(name="compl")


@env.task
async def train(epochs: int = 1, dry_run: bool = False, learning_rate: float = 0.1) -> int:
    \"\"\"Train a model.\"\"\"
    return epochs


@env.task
async def evaluate(model: str) -> float:
    return 0.5
"""


@pytest.fixture
def tasks(tmp_path: Path) -> Iterator[Path]:
    path = tmp_path / f"compl_tasks_{id(tmp_path)}.py"
    path.write_text(textwrap.dedent(TASKS))
    yield path
    sys.modules.pop(path.stem, None)
    if str(tmp_path) in sys.path:
        sys.path.remove(str(tmp_path))


def complete(shell: str, words: list[str]) -> list[str]:
    """The values click's completion answers for the command line ``words`` (the last one being completed)."""
    line = " ".join(["flytelike", *words])
    # bash and zsh pass the index of the word being completed; fish passes the word itself.
    current = words[-1] if shell == "fish" else str(len(words))
    env = {"_FLYTELIKE_COMPLETE": f"{shell}_complete", "COMP_WORDS": line, "COMP_CWORD": current}
    result = CliRunner().invoke(cli, [], env=env, prog_name="flytelike", catch_exceptions=False)
    assert result.exit_code == 0, result.output
    out = [line for line in result.output.splitlines() if line]
    if shell == "bash":  # "type,value" per item
        return [item.split(",", 1)[1] for item in out]
    if shell == "zsh":  # type, value, help: three lines per item
        return out[1::3]
    return [item.split(",", 1)[1].split("\t")[0] for item in out]  # fish: "type,value<TAB>help"


@pytest.mark.parametrize("shell", ["bash", "zsh", "fish"])
def test_subcommands_complete(shell: str) -> None:
    assert set(complete(shell, ["r"])) == {"run", "runs", "rerun"}
    assert complete(shell, ["conf"]) == ["config"]


@pytest.mark.parametrize("shell", ["bash", "zsh", "fish"])
def test_task_names_of_the_file_complete(shell: str, tasks: Path) -> None:
    assert complete(shell, ["run", str(tasks), ""]) == ["evaluate", "train"]
    assert complete(shell, ["run", str(tasks), "tr"]) == ["train"]
    assert complete(shell, ["run", str(tasks), "compl.e"]) == ["compl.evaluate"]


def test_a_file_that_does_not_import_completes_nothing(tmp_path: Path) -> None:
    broken = tmp_path / "broken_for_completion.py"
    broken.write_text("raise RuntimeError('no')\n")
    assert complete("bash", ["run", str(broken), ""]) == []
    assert complete("bash", ["run", str(tmp_path / "missing.py"), ""]) == []


@pytest.mark.parametrize("shell", ["bash", "zsh", "fish"])
def test_a_tasks_input_options_complete(shell: str, tasks: Path) -> None:
    assert complete(shell, ["run", str(tasks), "train", "--"]) == [
        "--epochs",
        "--dry-run",
        "--no-dry-run",
        "--learning-rate",
    ]
    assert complete(shell, ["run", str(tasks), "train", "--l"]) == ["--learning-rate"]
    assert complete(shell, ["run", str(tasks), "train", "--epochs", "2", "--e"]) == []  # given already
    assert complete(shell, ["run", str(tasks), "evaluate", "--"]) == ["--model"]


@pytest.mark.parametrize("shell", ["bash", "zsh", "fish"])
def test_run_ids_complete_from_the_records(shell: str) -> None:
    assert complete(shell, ["runs", "show", ""]) == []  # no records yet, and none are created
    assert not load_settings().db_path.exists()
    with RecordStore(load_settings().db_path) as store:
        store.write(RunRecord("r20261201-a1", "compl.train", RunState.SUCCEEDED, created=1.0, ended=2.0), [])
        store.write(RunRecord("r20261201-b2", "compl.train", RunState.FAILED, created=3.0, ended=4.0), [])
        store.write(RunRecord("nightly-c3", "compl.train", RunState.FAILED, created=5.0, ended=6.0), [])
    assert complete(shell, ["runs", "show", ""]) == ["nightly-c3", "r20261201-b2", "r20261201-a1"]
    assert complete(shell, ["rerun", "r2026"]) == ["r20261201-b2", "r20261201-a1"]


def test_completion_prints_each_shells_script() -> None:
    for shell, marker in (("bash", "complete -o"), ("zsh", "compdef"), ("fish", "complete --no-files")):
        result = CliRunner().invoke(cli, ["completion", shell], prog_name="flytelike", catch_exceptions=False)
        assert result.exit_code == 0
        assert f"_FLYTELIKE_COMPLETE={shell}_complete" in result.output
        assert marker in result.output
    bad = CliRunner().invoke(cli, ["completion", "tcsh"], catch_exceptions=False)
    assert bad.exit_code == 2
    assert "'tcsh' is not one of 'bash', 'zsh', 'fish'" in bad.output


def test_the_entry_point_answers_completion_requests(tasks: Path) -> None:
    env = {
        **os.environ,
        "PYTHONPATH": str(REPO),
        "_FLYTELIKE_COMPLETE": "bash_complete",
        "COMP_WORDS": f"flytelike run {tasks} ",
        "COMP_CWORD": "3",
    }
    result = subprocess.run(
        [sys.executable, "-m", "flytelike"], env=env, capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == ["plain,evaluate", "plain,train"]  # what the file prints is not there
