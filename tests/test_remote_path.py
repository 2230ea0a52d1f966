"""The remote task path on one machine: every attempt runs ``flytelike-entry`` in a new process (SubprocessBackend)
that shares only the store and the controller's address with the run, against a file:// store and moto's S3."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from s3_server import FaultyS3, moto_s3

import flytelike as fl
from flytelike._config import Settings, load_settings
from flytelike._executor import ActionState
from flytelike._loader import load_file
from flytelike._runtime import Runtime
from flytelike._storage import FileStore
from flytelike.testing import SubprocessBackend

REPO = Path(__file__).resolve().parent.parent

TASKS = """
import asyncio
import pathlib

import flytelike as fl

env = fl.TaskEnvironment(name="{name}")


@env.task
async def leaf(x: int) -> int:
    print("leaf", x)
    return x + 1


@env.task
async def middle(x: int) -> int:
    return 10 * await leaf(x)


@env.task
async def nested(n: int) -> int:
    return sum(await asyncio.gather(*(middle(i) for i in range(n))))


@env.task
async def boom(x: int) -> int:
    raise ValueError(f"no good: {{x}}")


@env.task
async def shout(f: fl.File) -> fl.File:
    out = pathlib.Path("shouted-" + pathlib.Path(f).name)
    out.write_text(pathlib.Path(f).read_text().upper())
    return fl.File(str(out.resolve()))


@env.task
async def echo_big(data: bytes) -> bytes:
    return data[::-1]


@env.task
async def big_round_trip(n: int) -> int:
    data = bytes(range(256)) * (n // 256)
    back = await echo_big(data)
    return len(back) if back == data[::-1] else -1


@env.task
async def pass_on(f: fl.File) -> str:
    shouted = await shout(f)
    return pathlib.Path(shouted).name + ":" + pathlib.Path(shouted).read_text()
"""


@pytest.fixture
def project(tmp_path: Path) -> Iterator[Any]:
    root = tmp_path / "project"
    root.mkdir()
    (root / "pyproject.toml").write_text("[project]\nname = 'remote-demo'\n")
    name = f"remote_tasks_{id(root):x}"
    path = root / f"{name}.py"
    path.write_text(textwrap.dedent(TASKS.format(name=name)))
    module = load_file(path)
    yield module
    sys.modules.pop(module.__name__, None)
    if str(root) in sys.path:
        sys.path.remove(str(root))


def _settings(**store: str) -> Settings:
    return load_settings(store=store) if store else load_settings()


async def _run(task: Any, *args: Any, settings: Settings | None = None) -> tuple[Any, Any, SubprocessBackend]:
    async with Runtime(settings=settings or _settings(), backends={"local": SubprocessBackend.from_input}) as rt:
        handle = await rt.start(task, *args)
        try:
            result = await handle.result()
        except Exception as e:
            result = e
        backend = await rt.backend("local")
        assert isinstance(backend, SubprocessBackend)
        return result, handle, backend


async def test_a_task_runs_in_its_own_process_and_is_recorded(project: Any) -> None:
    result, handle, backend = await _run(project.leaf, 41)
    assert result == 42
    assert backend.launched == 1
    (action,) = handle.actions().values()
    assert action.state is ActionState.SUCCEEDED
    assert action.attempts == 1
    assert action.peak_memory is not None
    assert action.peak_memory > 10 * 2**20
    assert action.cpu_time is not None
    assert "leaf 41" in "".join(action.logs or ())


async def test_nested_calls_give_the_in_process_result_with_every_child_recorded(project: Any) -> None:
    expected = (await fl.run_async(project.nested, 4)).outputs
    result, handle, backend = await _run(project.nested, 4)
    assert result == expected == sum(10 * (i + 1) for i in range(4))
    actions = handle.actions()
    assert sorted(actions) == sorted(["0"] + [f"0.{i}" for i in range(4)] + [f"0.{i}.0" for i in range(4)])
    assert backend.launched == 9  # one process per action: root, middles, leaves
    for action_id in (f"0.{i}.0" for i in range(4)):
        action = actions[action_id]
        assert action.state is ActionState.SUCCEEDED
        assert action.peak_memory
        assert f"leaf {action_id.split('.')[1]}" in "".join(action.logs or ())


async def test_a_task_that_raises_fails_with_its_error(project: Any) -> None:
    result, handle, _ = await _run(project.boom, 3)
    assert isinstance(result, fl.errors.TaskFailedError)
    assert "ValueError" in str(result)
    assert "no good: 3" in str(result)
    assert handle.actions()["0"].failure_kind == "user"


async def test_files_travel_by_content_and_come_back_under_their_name(project: Any, tmp_path: Path) -> None:
    source = tmp_path / "notes.txt"
    source.write_text("quiet words")
    result, _, _ = await _run(project.shout, fl.File(str(source)))
    assert Path(result).name == "shouted-notes.txt"
    assert Path(result).read_text() == "QUIET WORDS"
    # A task in another process that calls a task with a file it made, and reads the file it gets back.
    named, _, _ = await _run(project.pass_on, fl.File(str(source)))
    assert named == "shouted-notes.txt:QUIET WORDS"


async def test_values_larger_than_a_message_travel_through_the_store(project: Any) -> None:
    """5 MiB each way: more than gRPC's 4 MiB message limit, so the call and its result go by store reference."""
    size = 5 * 1024 * 1024
    result, handle, _ = await _run(project.big_round_trip, size)
    assert result == size
    assert handle.actions()["0.0"].state is ActionState.SUCCEEDED


async def test_an_unchanged_project_is_uploaded_once(project: Any) -> None:
    settings = _settings()
    store = FileStore(settings.store.url.removeprefix("file://"))
    await _run(project.leaf, 1, settings=settings)
    bundles = sorted(Path(store.root, "bundles").rglob("*.tar.gz"))
    writes = [p.stat().st_mtime_ns for p in bundles]
    await _run(project.leaf, 2, settings=settings)
    assert len(bundles) == 1
    assert [p.stat().st_mtime_ns for p in bundles] == writes


def test_the_fanout_example_through_subprocesses(tmp_path: Path) -> None:
    """The example file as a user runs it, end to end, against the in-process result."""
    code = textwrap.dedent(
        """
        import anyio, sys
        import flytelike as fl
        from flytelike._loader import load_file
        from flytelike._runtime import Runtime
        from flytelike.testing import SubprocessBackend
        example = load_file(sys.argv[1])

        async def main() -> None:
            async with Runtime(backends={"local": SubprocessBackend.from_input}) as rt:
                handle = await rt.start(example.main, 6)
                print(await handle.result(), len(handle.actions()))

        anyio.run(main)
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", code, str(REPO / "examples" / "fanout.py")],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == [str(sum(i * i for i in range(6))), "7"]


@pytest.fixture(scope="module")
def s3_server() -> Iterator[tuple[str, FaultyS3]]:
    with pytest.MonkeyPatch.context() as mp:
        for name, value in {
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_CONFIG_FILE": "/nonexistent/aws-config",
            "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent/aws-credentials",
        }.items():
            mp.setenv(name, value)
        mp.delenv("AWS_PROFILE", raising=False)
        with moto_s3() as served:
            yield served


async def test_nested_calls_and_files_through_an_s3_store(
    project: Any, tmp_path: Path, s3_server: tuple[str, FaultyS3]
) -> None:
    endpoint, counts = s3_server
    boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1").create_bucket(Bucket="remote-path")
    settings = _settings(url="s3://remote-path/team", endpoint_url=endpoint)
    expected = (await fl.run_async(project.nested, 3)).outputs
    counts.reset()
    result, handle, _ = await _run(project.nested, 3, settings=settings)
    assert result == expected
    assert len(handle.actions()) == 7
    puts = counts.counts["PutObject"] + counts.counts["CreateMultipartUpload"]
    assert puts > 0  # the path really went through the bucket
    assert len([key for key in counts.keys("PutObject") if "/bundles/" in key]) == 1
    source = tmp_path / "poem.txt"
    source.write_text("by the sea")
    named, _, _ = await _run(project.pass_on, fl.File(str(source)), settings=settings)
    assert named == "shouted-poem.txt:BY THE SEA"
    # The same project again: its bundle is found in the bucket and not uploaded a second time.
    counts.reset()
    await _run(project.leaf, 5, settings=settings)
    bundle_puts = [key for key in counts.keys("PutObject") if "/bundles/" in key]
    assert bundle_puts == []
