"""``flytelike run FILE TASK --input value ...``: options typed from the task's interface, outputs, exit codes and
error messages; in-process through click's runner, and through the real entry point in a subprocess."""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys
import textwrap
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from flytelike._cli import cli
from flytelike._config import load_settings
from flytelike._executor import RunRecord
from flytelike._storage import RecordStore

REPO = Path(__file__).resolve().parents[1]

TASKS = """
    import asyncio
    import enum
    from dataclasses import dataclass

    from pydantic import BaseModel

    import flytelike as fl

    env = fl.TaskEnvironment(name="{env}")


    class Color(enum.Enum):
        RED = "red"
        BLUE = "blue"


    class Point(BaseModel):
        x: int
        y: int = 0


    @dataclass
    class Box:
        w: float
        h: float


    @env.task
    async def main(
        n: int,
        scale: float = 1.5,
        loud: bool = False,
        color: Color = Color.RED,
        tags: list[str] = ["a"],
        point: Point | None = None,
        box: Box = Box(1.0, 2.0),
        note: str | None = None,
    ) -> dict[str, str]:
        \"\"\"Echo the typed inputs back.\"\"\"
        return {{
            "n": repr(n),
            "scale": repr(scale),
            "loud": repr(loud),
            "color": color.name,
            "tags": repr(tags),
            "point": repr(point),
            "box": repr(box),
            "note": repr(note),
        }}


    @env.task
    async def hello(name: str = "world") -> str:
        return f"Hello, {{name}}!"


    @env.task
    async def numbers(n: int = 3) -> list[int]:
        return list(await asyncio.gather(*(square(i) for i in range(n))))


    @env.task
    async def square(i: int) -> int:
        return i * i


    @env.task
    async def breaks(x: int = 1) -> int:
        raise RuntimeError(f"it broke on {{x}}")


    @env.task
    async def calls_breaks() -> int:
        return await breaks(7)


    @env.task(resources=fl.Resources(cpu=512))
    async def greedy() -> int:
        return 1
"""

_names = itertools.count()


@pytest.fixture
def tasks_file(tmp_path: Path) -> Iterator[Path]:
    """The tasks above in a file of their own (a unique module name, as files are imported by their stem)."""
    name = f"cli_tasks_{os.getpid()}_{next(_names)}"
    path = tmp_path / f"{name}.py"
    path.write_text(textwrap.dedent(TASKS.format(env=name.replace("_", "-"))))
    yield path
    sys.modules.pop(name, None)
    if str(tmp_path) in sys.path:
        sys.path.remove(str(tmp_path))


def env_of(path: Path) -> str:
    return path.stem.replace("_", "-")


def invoke(*args: str | Path) -> Result:
    return CliRunner().invoke(cli, ["run", *map(str, args)], catch_exceptions=False)


def subprocess_run(*args: str | Path, home: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "flytelike", "run", *map(str, args)],
        cwd=REPO,
        env={**os.environ, "FLYTELIKE_HOME": str(home)},
        capture_output=True,
        text=True,
        timeout=60,
    )


def recorded_runs() -> list[RunRecord]:
    with RecordStore(load_settings().db_path) as store:
        return store.runs()


# --- typed options -------------------------------------------------------------------------------------------


def test_options_are_typed_from_the_interface(tasks_file: Path) -> None:
    result = invoke(
        "--no-progress", "-o", "json", tasks_file, "main",
        "--n", "3",
        "--scale", "2",
        "--loud",
        "--color", "BLUE",
        "--tags", '["x", "y"]',
        "--point", '{"x": 1}',
        "--box", '{"w": 3, "h": 4.5}',
        "--note", "hi",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    outputs = json.loads(result.stdout)["outputs"]
    assert outputs == {
        "n": "3",
        "scale": "2.0",
        "loud": "True",
        "color": "BLUE",
        "tags": "['x', 'y']",
        "point": "Point(x=1, y=0)",
        "box": "Box(w=3.0, h=4.5)",
        "note": "'hi'",
    }


def test_omitted_options_take_the_task_defaults(tasks_file: Path) -> None:
    result = invoke("--no-progress", "-o", "json", tasks_file, "main", "--n", "1", "--no-loud")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["outputs"] == {
        "n": "1",
        "scale": "1.5",
        "loud": "False",
        "color": "RED",
        "tags": "['a']",
        "point": "None",
        "box": "Box(w=1.0, h=2.0)",
        "note": "None",
    }


def test_help_lists_the_inputs_with_types_and_defaults(tasks_file: Path) -> None:
    result = invoke(tasks_file, "main", "--help")
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert "Echo the typed inputs back." in out
    lines = {line.split()[0]: line for line in out.splitlines() if line.strip().startswith("--")}
    assert "--n INT" in lines["--n"]
    assert "required" in lines["--n"]
    assert "--scale FLOAT" in lines["--scale"]
    assert "[default: 1.5]" in lines["--scale"]
    assert "--no-loud" in lines["--loud"]
    assert "[RED|BLUE]" in lines["--color"]
    assert "RED" in lines["--color"].split("[RED|BLUE]")[1]
    assert "--tags list[str]" in lines["--tags"]
    assert 'JSON  [default: ["a"]]' in lines["--tags"]
    assert '[default: {"w": 1.0, "h": 2.0}]' in lines["--box"]
    assert recorded_runs() == []  # nothing ran


def test_a_missing_required_input_exits_2(tasks_file: Path) -> None:
    result = invoke("--no-progress", tasks_file, "main")
    assert result.exit_code == 2
    assert "Missing option '--n'" in result.stderr
    assert recorded_runs() == []


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--n", "abc"], ["'--n'", "main(n)", "'abc'"]),
        (["--n", "1", "--color", "GREEN"], ["'--color'", "'GREEN'", "RED", "BLUE"]),
        (["--n", "1", "--point", '{"z": 1}'], ["'--point'", "main(point)"]),
        (["--n", "1", "--tags", "[1, 2"], ["'--tags'", "main(tags)", "JSON"]),
        (["--n", "1", "--tags", "[1, 2]"], ["'--tags'", "main(tags)"]),
    ],
    ids=["int", "enum", "model", "bad-json", "list-item-type"],
)
def test_a_bad_value_exits_2_naming_the_input(tasks_file: Path, args: list[str], expected: list[str]) -> None:
    result = invoke("--no-progress", tasks_file, "main", *args)
    assert result.exit_code == 2, result.output
    for text in expected:
        assert text in result.stderr
    assert recorded_runs() == []


# --- outputs ---------------------------------------------------------------------------------------------------


def test_json_output_has_run_task_and_outputs(tasks_file: Path) -> None:
    result = invoke("--no-progress", "-o", "json", tasks_file, "numbers", "--n", "4")
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert set(doc) == {"run", "task", "outputs"}
    assert doc["task"] == f"{env_of(tasks_file)}.numbers"
    assert doc["outputs"] == [0, 1, 4, 9]
    with RecordStore(load_settings().db_path) as store:
        run = store.run(doc["run"])
        assert run is not None
        assert run.state.value == "succeeded"
        assert len(store.actions(doc["run"])) == 5


def test_text_output_prints_strings_as_is_and_the_rest_as_json(tasks_file: Path) -> None:
    result = invoke("--no-progress", tasks_file, "hello", "--name", "you")
    assert (result.exit_code, result.stdout) == (0, "Hello, you!\n")
    result = invoke("--no-progress", tasks_file, "numbers")
    assert (result.exit_code, result.stdout) == (0, "[0, 1, 4]\n")


# --- failures ----------------------------------------------------------------------------------------------------


def test_a_failed_task_exits_1_with_one_paragraph_naming_task_action_and_attempt(tasks_file: Path) -> None:
    result = invoke("--no-progress", tasks_file, "calls_breaks")
    assert result.exit_code == 1
    assert result.stdout == ""
    err = result.stderr
    assert err.startswith("Error: ")
    assert "\n\n" not in err.strip()  # one paragraph
    env = env_of(tasks_file)
    assert f"task {env}.calls_breaks (action 0, attempt 1/1)" in err
    # The user's exception comes right after "failed:", then where it was raised.
    assert f"failed: RuntimeError: it broke on 7 (raised in task {env}.breaks, action 0.0)" in err
    assert "TaskFailedError" not in err
    [run] = recorded_runs()
    assert f"flytelike runs show {run.id}" in err
    assert run.state.value == "failed"


def test_a_syntax_error_exits_2_naming_file_and_line(tmp_path: Path) -> None:
    bad = tmp_path / "cli_syntax_error.py"
    bad.write_text("import flytelike as fl\n\n\ndef broken(:\n    pass\n")
    result = invoke(bad, "main")
    assert result.exit_code == 2
    assert f"{bad}:4" in result.stderr
    assert "syntax error" in result.stderr


def test_an_import_error_exits_2_naming_file_and_line(tmp_path: Path) -> None:
    bad = tmp_path / "cli_import_error.py"
    bad.write_text('import flytelike as fl\nx = 1\nraise ValueError("boom at import")\n')
    try:
        result = invoke(bad, "main")
    finally:
        sys.path[:] = [p for p in sys.path if p != str(tmp_path)]
    assert result.exit_code == 2
    assert f"{bad}:3" in result.stderr
    assert "ValueError: boom at import" in result.stderr


def test_a_missing_file_exits_2(tmp_path: Path) -> None:
    result = invoke(tmp_path / "nowhere.py", "main")
    assert result.exit_code == 2
    assert "no such file" in result.stderr


def test_an_unknown_task_lists_the_tasks(tasks_file: Path) -> None:
    result = invoke(tasks_file, "nope")
    assert result.exit_code == 2
    assert "no task named 'nope'" in result.stderr
    assert "breaks, calls_breaks, greedy, hello, main, numbers, square" in result.stderr


def test_with_kubernetes_and_no_cluster_is_a_clear_error(
    tasks_file: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "no-such-kubeconfig"))
    result = invoke("--no-progress", "--with", "kubernetes", tasks_file, "hello")
    assert result.exit_code == 2
    assert "no Kubernetes cluster configured" in result.stderr
    assert "flytelike emulator kubernetes" in result.stderr
    assert f"{env_of(tasks_file)}.hello" in result.stderr
    assert recorded_runs() == []  # refused before anything started


@pytest.mark.parametrize("platform", ["batch", "batch:queue=gpu"])
def test_with_batch_and_no_aws_region_is_a_clear_error(
    tasks_file: Path, platform: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("AWS_DEFAULT_REGION", "AWS_REGION", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent/aws-config")
    result = invoke("--no-progress", "--with", platform, tasks_file, "hello")
    assert result.exit_code == 2
    assert "no AWS region is configured for Batch" in result.stderr
    assert "flytelike emulator batch" in result.stderr
    assert f"{env_of(tasks_file)}.hello" in result.stderr
    assert recorded_runs() == []  # refused before anything started


def test_local_resources_strict_fails_an_oversized_cpu_request(tasks_file: Path) -> None:
    result = invoke("--no-progress", "--local-resources", "strict", tasks_file, "greedy")
    assert result.exit_code == 2
    assert f"task {env_of(tasks_file)}.greedy requests 512 cpu" in result.stderr
    assert "strict" in result.stderr
    assert recorded_runs() == []


def test_an_oversized_cpu_request_warns_and_runs_by_default(tasks_file: Path) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("always")
        result = invoke("--no-progress", tasks_file, "greedy")
    assert result.exit_code == 0, result.output
    assert result.stdout == "1\n"
    assert f"Warning: task {env_of(tasks_file)}.greedy requests 512 cpu" in result.stderr
    assert result.stderr.count("Warning:") == 1


# --- the real command --------------------------------------------------------------------------------------------


def test_the_command_in_a_subprocess(tasks_file: Path, isolated_config: Path) -> None:
    ok = subprocess_run("-o", "json", tasks_file, "numbers", "--n", "2", home=isolated_config)
    assert ok.returncode == 0, ok.stderr
    doc = json.loads(ok.stdout)
    assert doc["outputs"] == [0, 1]
    # Not a terminal: progress as plain lines on stderr, the run's start and its summary; with -v, every change.
    assert f"{env_of(tasks_file)}.numbers started" in ok.stderr
    assert "succeeded in" in ok.stderr
    assert "3 actions (3 succeeded)" in ok.stderr
    verbose = subprocess_run("-v", tasks_file, "numbers", "--n", "2", home=isolated_config)
    assert f"0 {env_of(tasks_file)}.numbers succeeded" in verbose.stderr
    assert f"0.1 {env_of(tasks_file)}.square succeeded" in verbose.stderr

    failed = subprocess_run("--no-progress", tasks_file, "breaks", home=isolated_config)
    assert failed.returncode == 1
    assert failed.stdout == ""
    assert "(action 0, attempt 1/1) failed: RuntimeError: it broke on 1" in failed.stderr
    assert "flytelike runs show" in failed.stderr

    missing = subprocess_run("--no-progress", tasks_file, "main", home=isolated_config)
    assert missing.returncode == 2
    assert "Missing option '--n'" in missing.stderr
