"""The control plane's commands refuse what they cannot do before reaching any server, naming the setting."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from flytelike._cli import cli

TASKS = """
import flytelike as fl

env = fl.TaskEnvironment(name="cli-remote")


@env.task
async def hello(name: str) -> str:
    return f"hello {name}"
"""


@pytest.fixture
def tasks_file(tmp_path: Path) -> Path:
    path = tmp_path / "cli_remote_tasks.py"
    path.write_text(TASKS)
    return path


def test_run_remote_without_an_endpoint_names_the_setting(tasks_file: Path) -> None:
    result = CliRunner().invoke(cli, ["run", "--remote", str(tasks_file), "hello", "--name", "x"])
    assert result.exit_code == 2
    assert "remote.endpoint" in result.output
    assert "FLYTELIKE_REMOTE__ENDPOINT" in result.output


def test_an_endpoint_with_another_scheme_is_refused(tasks_file: Path) -> None:
    result = CliRunner().invoke(
        cli, ["run", "--endpoint", "http://127.0.0.1:1", str(tasks_file), "hello", "--name", "x"]
    )
    assert result.exit_code == 2
    assert "'http' is not grpc or grpcs" in result.output


def test_bad_task_inputs_are_refused_before_anything_is_sent(tasks_file: Path) -> None:
    # Port 1 is never listening: an error from the server would be UNAVAILABLE, not this.
    result = CliRunner().invoke(cli, ["run", "--endpoint", "127.0.0.1:1", str(tasks_file), "hello"])
    assert result.exit_code == 2
    assert "--name" in result.output


def test_serve_refuses_a_bad_bind() -> None:
    result = CliRunner().invoke(cli, ["serve", "--bind", "nowhere"])
    assert result.exit_code == 2
    assert "is not host:port" in result.output


def test_abort_of_an_unreachable_server_says_so() -> None:
    result = CliRunner().invoke(cli, ["abort", "--endpoint", "127.0.0.1:1", "r-1"])
    assert result.exit_code == 2
    assert "AbortRun on 127.0.0.1:1 failed: UNAVAILABLE" in result.output
