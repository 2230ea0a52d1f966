"""``flytelike-entry``: its exit codes, the files it writes, and what it imports."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from flytelike._bundle import build_bundle
from flytelike._config import load_settings
from flytelike._loader import load_file
from flytelike._proto.worker.v1 import worker_pb2
from flytelike._runtime import Runtime
from flytelike.entry import EXIT_BOOTSTRAP, EXIT_OK, EXIT_TASK
from flytelike.testing import SubprocessBackend

Kind = worker_pb2.Error.Kind

TASKS = """
import flytelike as fl

env = fl.TaskEnvironment(name="{name}")


@env.task
async def inc(x: int) -> int:
    return x + 1


@env.task
async def fail(x: int) -> int:
    raise KeyError(x)


@env.task
async def calls(x: int) -> int:
    return await inc(x)
"""


@pytest.fixture
def tasks(tmp_path: Path) -> Iterator[Any]:
    root = tmp_path / "project"
    root.mkdir()
    (root / "pyproject.toml").write_text("[project]\nname = 'entry-demo'\n")
    name = f"entry_tasks_{id(root):x}"
    path = root / f"{name}.py"
    path.write_text(textwrap.dedent(TASKS.format(name=name)))
    module = load_file(path)
    yield module
    sys.modules.pop(module.__name__, None)
    if str(root) in sys.path:
        sys.path.remove(str(root))


async def _command(task: Any) -> tuple[list[str], dict[str, str], Path]:
    """Run ``task`` once through the subprocess backend; the entrypoint's command and environment, and the store."""
    settings = load_settings()
    async with Runtime(settings=settings, backends={"local": SubprocessBackend.from_input}) as rt:
        handle = await rt.start(task, 1)
        with contextlib.suppress(Exception):
            await handle.result()
        backend = await rt.backend("local")
        assert isinstance(backend, SubprocessBackend)
        command = list(backend.commands[0])
    home = Path(settings.home) / "entry-home"
    env = {"FLYTELIKE_STORE__URL": settings.store.url, "FLYTELIKE_HOME": str(home)}
    return command, env, Path(settings.store.url.removeprefix("file://"))


def _arg(command: list[str], name: str) -> str:
    return command[command.index(name) + 1]


def _with(command: list[str], name: str, value: str) -> list[str]:
    out = list(command)
    out[out.index(name) + 1] = value
    return out


def _entry(command: list[str], env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    cwd.mkdir(parents=True, exist_ok=True)
    return subprocess.run(command, env=env, cwd=cwd, capture_output=True, text=True, timeout=60, check=False)


def _error(store: Path, command: list[str]) -> worker_pb2.Error:
    prefix = _arg(command, "--output-prefix").removeprefix("file://")
    return worker_pb2.Error.FromString(Path(prefix, "error.pb").read_bytes())


async def test_success_writes_outputs_last_and_metrics(tasks: Any, tmp_path: Path) -> None:
    command, env, _store = await _command(tasks.inc)
    command = _with(command, "--attempt", "2")
    command = _with(command, "--output-prefix", _arg(command, "--output-prefix").rsplit("/", 1)[0] + "/2")
    done = _entry(command, env, tmp_path / "work")
    assert done.returncode == EXIT_OK, done.stderr
    prefix = Path(_arg(command, "--output-prefix").removeprefix("file://"))
    assert (prefix / "outputs.pb").is_file()
    metrics = json.loads((prefix / "metrics.json").read_text())
    assert metrics["peak_rss"] > 10 * 2**20
    assert metrics["cpu_seconds"] > 0
    assert (prefix / "outputs.pb").stat().st_mtime_ns >= (prefix / "metrics.json").stat().st_mtime_ns


async def test_a_task_that_raises_exits_10_with_its_error(tasks: Any, tmp_path: Path) -> None:
    command, env, store = await _command(tasks.fail)
    done = _entry(command, env, tmp_path / "work")
    assert done.returncode == EXIT_TASK
    error = _error(store, command)
    assert error.kind == Kind.USER
    assert error.type_name == "KeyError"


async def test_a_missing_bundle_exits_11(tasks: Any, tmp_path: Path) -> None:
    command, env, store = await _command(tasks.inc)
    url, _, digest = _arg(command, "--bundle").partition("#sha256=")
    other = "0" * 64
    command = _with(command, "--bundle", url.replace(digest, other) + f"#sha256={other}")
    done = _entry(command, env, tmp_path / "work")
    assert done.returncode == EXIT_BOOTSTRAP
    error = _error(store, command)
    assert error.kind == Kind.SETUP
    assert error.type_name == "flytelike.errors.BlobNotFoundError"


async def test_a_bundle_that_is_not_its_digest_exits_11(tasks: Any, tmp_path: Path) -> None:
    command, env, store = await _command(tasks.inc)
    url, _, digest = _arg(command, "--bundle").partition("#sha256=")
    archive = Path(url.removeprefix("file://"))
    # Another project's archive stored under this bundle's name.
    other = tmp_path / "other"
    other.mkdir()
    (other / "x.py").write_text("print('something else')\n")
    build_bundle(other / "x.py").write_to(tmp_path / "other.tar.gz")
    os.chmod(archive, 0o644)
    shutil.copyfile(tmp_path / "other.tar.gz", archive)
    done = _entry(command, env, tmp_path / "work")
    assert done.returncode == EXIT_BOOTSTRAP
    error = _error(store, command)
    assert error.kind == Kind.SETUP
    assert error.type_name == "flytelike.errors.BundleIntegrityError"
    assert digest in error.message


async def test_bad_arguments_exit_11(tmp_path: Path) -> None:
    done = _entry([sys.executable, "-m", "flytelike.entry", "--run", "r"], {}, tmp_path / "work")
    assert done.returncode == EXIT_BOOTSTRAP
    assert "required" in done.stderr


async def test_an_attempt_without_calls_imports_no_grpc_and_no_cloud_client(tasks: Any, tmp_path: Path) -> None:
    command, env, _ = await _command(tasks.inc)
    probe = (
        "import sys, flytelike.entry as e\n"
        "code = e.run(sys.argv[1:])\n"
        "heavy = sorted({m.split('.')[0] for m in sys.modules} & {'grpc', 'aioboto3', 'boto3', 'kubernetes'})\n"
        "print('HEAVY', heavy, file=sys.__stderr__)\n"
        "sys.exit(code)\n"
    )
    done = _entry([sys.executable, "-c", probe, *command[3:]], env, tmp_path / "work")
    assert done.returncode == EXIT_OK, done.stderr
    assert "HEAVY []" in done.stderr


async def test_an_unreachable_controller_exits_11_naming_the_address(tasks: Any, tmp_path: Path) -> None:
    command, env, store = await _command(tasks.inc)
    env = {**env, "FLYTELIKE_CONTROLLER__TOKEN": "not-a-run-token"}
    done = _entry([*command, "--controller", "127.0.0.1:9"], env, tmp_path / "work")
    assert done.returncode == EXIT_BOOTSTRAP
    error = _error(store, command)
    assert error.kind == Kind.SETUP
    assert error.type_name == "flytelike.errors.ControllerUnreachableError"
    assert "127.0.0.1:9" in error.message
    assert "[controller] address" in error.message


async def test_an_unreachable_controller_is_the_run_s_recorded_error(tasks: Any, tmp_path: Path) -> None:
    """A task that calls tasks, told an address nobody listens on: the run fails at once with that error."""
    settings = load_settings(controller={"address": "127.0.0.1:9"})
    async with Runtime(settings=settings, backends={"local": SubprocessBackend.from_input}) as rt:
        handle = await rt.start(tasks.calls, 1)
        with pytest.raises(Exception, match=r"cannot reach the controller at 127\.0\.0\.1:9"):
            await handle.result()
        action = handle.actions()["0"]
        assert action.attempts == 1  # not retried: the same address would fail the same way
        assert "ControllerUnreachableError" in (action.error or "")
