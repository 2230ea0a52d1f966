"""Every example in ``examples/`` run the way the README shows: ``flytelike run`` in a fresh process."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from flytelike._config import load_settings
from flytelike._executor import ActionRecord, RunRecord
from flytelike._storage import RecordStore

REPO = Path(__file__).resolve().parents[1]
EXAMPLES = REPO / "examples"


def flytelike_run(*args: str, home: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "flytelike", "run", *args],
        cwd=REPO,
        env={**os.environ, "FLYTELIKE_HOME": str(home)},
        capture_output=True,
        text=True,
        timeout=60,
    )


def only_run() -> tuple[RunRecord, list[ActionRecord]]:
    with RecordStore(load_settings().db_path) as store:
        [run] = store.runs()
        return run, store.actions(run.id)


COVERED = {"hello.py", "fanout.py", "retries.py", "models.py", "train.py", "bigsum.py"}


def test_every_example_is_covered_here() -> None:
    assert {p.name for p in EXAMPLES.glob("*.py")} == COVERED


def test_hello(isolated_config: Path) -> None:
    result = flytelike_run("examples/hello.py", "main", "--name", "you", "--times", "2", home=isolated_config)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == ["Hello, you #0!", "Hello, you #1!"]
    run, actions = only_run()
    assert run.state.value == "succeeded"
    assert len(actions) == 3


def test_the_readme_command(isolated_config: Path) -> None:
    readme = (REPO / "README.md").read_text()
    assert "flytelike run examples/hello.py main" in readme
    result = flytelike_run("examples/hello.py", "main", home=isolated_config)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == [f"Hello, world #{i}!" for i in range(3)]


def test_fanout_main_and_chain(isolated_config: Path) -> None:
    wide = flytelike_run("--no-progress", "examples/fanout.py", "main", "--n", "200", home=isolated_config)
    assert wide.returncode == 0, wide.stderr
    assert int(wide.stdout) == sum(i * i for i in range(200))
    chain = flytelike_run("--no-progress", "examples/fanout.py", "chain", "--n", "50", home=isolated_config)
    assert chain.returncode == 0, chain.stderr
    assert int(chain.stdout) == sum(i * i for i in range(50))
    with RecordStore(load_settings().db_path) as store:
        assert sorted(r.actions for r in store.runs()) == [51, 201]


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="memory limits need Linux (/proc)")
def test_retries(isolated_config: Path) -> None:
    result = flytelike_run("--no-progress", "-o", "json", "examples/retries.py", "main", home=isolated_config)
    assert result.returncode == 0, result.stderr
    outputs = json.loads(result.stdout)["outputs"]
    assert outputs["flaky succeeded on attempt"] == "3"
    assert outputs["slow timed out"].startswith("yes: task retries.slow (action 0.1, attempt 2/2) timed out")
    assert int(outputs["hungry ran in pid"]) > 0
    _, actions = only_run()
    by_task = {a.task: a for a in actions}
    assert by_task["retries.flaky"].attempts == 3
    assert by_task["retries.slow"].state.value == "timed_out"
    assert (by_task["retries.hungry"].state.value, by_task["retries.hungry"].attempts) == ("succeeded", 2)
    assert by_task["retries.hungry"].memory == 300 * 1024**2


def test_models_with_a_config(isolated_config: Path) -> None:
    result = flytelike_run(
        "--no-progress", "-o", "json", "examples/models.py", "main", "--config", '{"rows": 5, "scale": 2.0}',
        home=isolated_config,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["outputs"] == {"rows": 5, "total": 20.0, "source": "table.csv"}

    invalid = flytelike_run(
        "--no-progress", "examples/models.py", "main", "--config", '{"rows": 0}', home=isolated_config
    )
    assert invalid.returncode == 2
    assert "--config" in invalid.stderr


@pytest.mark.skipif(shutil.which("nvidia-smi") is not None, reason="this machine has GPUs: nothing to warn about")
def test_train_warns_that_there_is_no_gpu(isolated_config: Path) -> None:
    result = flytelike_run("--no-progress", "examples/train.py", "main", "--n", "3", home=isolated_config)
    assert result.returncode == 0, result.stderr
    assert 0 <= float(result.stdout) <= 1
    assert "Warning: task training.train requests 1 GPU(s) but this machine has 0; it runs without them" in (
        result.stderr
    )
    assert result.stderr.count("training.train requests 1 GPU") == 1  # once, not once per shard


@pytest.mark.skipif(
    os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") >= 60000 * 1024**2,
    reason="this machine has the 60000Mi bigsum asks for",
)
def test_bigsum_fails_at_once_with_the_admission_error(isolated_config: Path) -> None:
    started = time.monotonic()
    result = flytelike_run("--no-progress", "examples/bigsum.py", "start", home=isolated_config)
    assert time.monotonic() - started < 3
    assert result.returncode != 0
    assert result.stdout == ""
    err = result.stderr
    assert "task bigsum.big_sum requests 58.6 GiB of memory" in err
    assert "it can never fit" in err
    assert "--with kubernetes" in err
    assert "--with batch" in err
    assert "--local-resources ignore" in err
    assert "Computing it took" not in err
    with RecordStore(load_settings().db_path) as store:
        assert store.runs() == []  # refused before anything started
