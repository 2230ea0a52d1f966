"""The warm worker pool behind ``fl.Local(process=True)``: results, output capture, errors, memory limits, crashes,
per-job environment and cpu pinning, reuse, concurrency, cancellation, no orphan processes, and the calls a task
makes to other tasks (served by ``on_call``). Jobs carry templates and literal bytes, never pickles."""

from __future__ import annotations

import os
import pickle
import sys
import textwrap
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import anyio
import pytest

import flytelike as fl
from flytelike._backends.local._process_pool import (
    ChildCall,
    ProcessJob,
    ProcessPool,
    ProcessResult,
    TaskProcessError,
)
from flytelike._loader import find_task, load_file
from flytelike._proto.core.v1 import literals_pb2, tasks_pb2
from flytelike._serde import decode_values, encode_values, task_template
from flytelike._serde._decode import value_of
from flytelike.errors import BackendError, OutOfMemoryError

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the pool reads /proc (Linux only)")

TASKS = textwrap.dedent(
    """
    import asyncio
    import os
    import sys
    import threading
    import time

    import flytelike as fl

    env = fl.TaskEnvironment(name="t")
    CALLS = []


    class Custom(Exception):
        pass


    @env.task
    async def add(x: int, y: int) -> int:
        await asyncio.sleep(0)
        return x + y


    @env.task
    def shout(words: list[str]) -> dict[str, int]:
        return {w.upper(): len(w) for w in words}


    @env.task
    def chatty() -> None:
        print("printed line")
        os.write(1, b"raw stdout\\n")
        print("to stderr", file=sys.stderr)
        os.write(2, b"raw stderr\\n")


    @env.task
    def fails() -> None:
        raise ValueError("bad value 42")


    @env.task
    async def fails_async() -> None:
        await asyncio.sleep(0)
        raise KeyError("missing")


    @env.task
    def fails_unpicklable() -> None:
        raise Custom(threading.Lock())


    @env.task
    def hog(total_mb: int, chunk_mb: int) -> int:
        chunks = []
        for _ in range(total_mb // chunk_mb):
            chunk = bytearray(chunk_mb * 2**20)
            chunk[::4096] = b"x" * len(chunk[::4096])
            chunks.append(chunk)
            time.sleep(0.01)
        return len(chunks)


    @env.task
    def huge() -> int:
        return len(bytearray(10**10))


    @env.task
    def suicide() -> None:
        print("about to die")
        os.kill(os.getpid(), 9)


    @env.task
    def die_after(seconds: float) -> None:
        time.sleep(seconds)
        os.kill(os.getpid(), 9)


    @env.task
    def environment() -> list[str | None]:
        return [os.environ.get("POOL_TEST_VAR"), os.environ.get("CUDA_VISIBLE_DEVICES")]


    @env.task
    def affinity() -> list[int]:
        return sorted(os.sched_getaffinity(0))


    @env.task
    def pid() -> int:
        return os.getpid()


    @env.task
    def calls() -> int:
        CALLS.append(1)
        return len(CALLS)


    @env.task
    def reads_stdin() -> str:
        return sys.stdin.read()


    @env.task
    async def nap(seconds: float) -> float:
        await asyncio.sleep(seconds)
        return seconds


    @env.task
    async def fan_add(n: int) -> list[int]:
        return list(await asyncio.gather(*(add(i, 10 * i) for i in range(n))))


    @env.task
    def sync_calls(x: int) -> list[int]:
        return [add(x, 1), add(x, 2)]


    @env.task
    async def call_fails() -> str:
        try:
            await add(1, 2)
        except fl.errors.TaskFailedError as e:
            if e.task == "t.add" and not e.action:
                return f"{type(e).__name__} {e.cause_type}: {e}"
            return f"{type(e).__name__} {e.cause_type} {e.task} {e.action} {e.attempt}: {e}"
        return "no error"


    @env.task
    def wrong_type() -> int:
        return "not an int"  # type: ignore[return-value]


    LEFT: list[str] = []


    async def _late(tag: str) -> None:
        await asyncio.sleep(0.2)
        LEFT.append(tag)


    @env.task
    async def leaves_task(custom_factory: bool) -> None:
        loop = asyncio.get_running_loop()
        if custom_factory:
            loop.set_task_factory(lambda loop, coro, **kw: asyncio.Task(coro, loop=loop, **kw))
        asyncio.create_task(_late("left"))


    @env.task
    async def left_behind(seconds: float) -> list[str]:
        await asyncio.sleep(seconds)
        return list(LEFT)


    @env.task
    def grows_in_thread(mb: int) -> int:
        def fill() -> None:
            chunk = bytearray(mb * 2**20)
            chunk[::4096] = b"x" * len(chunk[::4096])

        thread = threading.Thread(target=fill)
        thread.start()
        thread.join()
        return mb


    @env.task
    def moves(to: str) -> str:
        if to:
            os.chdir(to)
        return os.getcwd()


    @env.task
    async def sleepy(pid_file: str) -> None:
        with open(pid_file + ".tmp", "w") as f:
            f.write(str(os.getpid()))
        os.replace(pid_file + ".tmp", pid_file)
        await asyncio.sleep(30)
    """
)


@pytest.fixture
def tasks_file(tmp_path: Path) -> str:
    path = tmp_path / "pool_tasks.py"
    path.write_text(TASKS)
    return str(path)


def sdk_task(file: str, name: str) -> fl.Task[..., Any]:
    return find_task(load_file(file), name)


def job(file: str, task: str, action: str = "a0", **inputs: Any) -> ProcessJob:
    """A job of ``task`` in ``file``, as the local backend makes one: the template and the encoded inputs."""
    t = sdk_task(file, task)
    template = task_template(t).SerializeToString(deterministic=True)
    data = encode_values(t.interface.bind((), inputs, task=t.full_name), t.interface.inputs, where=t.full_name)
    return ProcessJob(run_id="r1", action_id=action, attempt=1, template=template, inputs=data, code_file=file)


def value(result: ProcessResult) -> Any:
    """The single output of a job (None for none), read from its literal bytes without the task's types."""
    literals = literals_pb2.LiteralMap.FromString(result.outputs).literals
    return value_of(literals["o0"]) if "o0" in literals else None


def children() -> set[int]:
    """Pids (zombies included) whose parent is this process, read from /proc."""
    found = set()
    me = os.getpid()
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        # The command name may contain spaces; the fields after its closing parenthesis are fixed.
        if int(stat.rsplit(")", 1)[1].split()[1]) == me:
            found.add(int(entry))
    return found


def alive(pid: int) -> bool:
    return Path(f"/proc/{pid}").exists()


async def test_tasks_a_job_leaves_running_are_cancelled_when_it_ends(tasks_file: str) -> None:
    async with ProcessPool(1) as pool:
        for custom_factory in (False, True):  # also when the task replaced the loop's task factory
            await pool.run(job(tasks_file, "leaves_task", custom_factory=custom_factory))
            assert value(await pool.run(job(tasks_file, "left_behind", seconds=0.4))) == []


async def test_the_peak_of_a_job_is_its_own_after_a_larger_job_and_a_thread_that_exited(tasks_file: str) -> None:
    mib = 2**20
    async with ProcessPool(1) as pool:
        big = await pool.run(job(tasks_file, "grows_in_thread", mb=300))
        small = await pool.run(job(tasks_file, "add", x=1, y=2))
    assert big.peak_memory > 300 * mib
    assert small.peak_memory < big.peak_memory - 200 * mib


async def test_a_task_that_changes_directory_does_not_move_the_next_job(tasks_file: str, tmp_path: Path) -> None:
    async with ProcessPool(1) as pool:
        before = value(await pool.run(job(tasks_file, "moves", to="")))
        assert value(await pool.run(job(tasks_file, "moves", to=str(tmp_path)))) == str(tmp_path)
        assert value(await pool.run(job(tasks_file, "moves", to=""))) == before != str(tmp_path)


async def test_async_and_sync_tasks_round_trip_values(tasks_file: str) -> None:
    async with ProcessPool(2) as pool:
        assert value(await pool.run(job(tasks_file, "add", x=2, y=40))) == 42
        result = await pool.run(job(tasks_file, "t.shout", words=["ab", "cde"]))
    assert value(result) == {"AB": 2, "CDE": 3}
    assert result.peak_memory > 1_000_000
    assert result.cpu_time >= 0


async def test_module_jobs_and_startup_env(tmp_path: Path, tasks_file: str) -> None:
    path = os.pathsep.join(filter(None, [str(tmp_path), os.environ.get("PYTHONPATH")]))
    async with ProcessPool(1, startup_env={"PYTHONPATH": path}) as pool:
        module_job = replace(job(tasks_file, "t.calls"), code_file=None)
        # The module is loaded once and kept: module-level state survives from one job to the next.
        assert [value(await pool.run(module_job)) for _ in range(2)] == [1, 2]


async def test_print_and_raw_fd_output_is_captured_per_job(tasks_file: str) -> None:
    async with ProcessPool(1) as pool:
        logs = (await pool.run(job(tasks_file, "chatty"))).logs
        assert logs.splitlines() == ["printed line", "raw stdout", "to stderr", "raw stderr"]
        assert (await pool.run(job(tasks_file, "add", x=1, y=1))).logs == ""
        # The task's stdin is /dev/null, never the request pipe.
        assert value(await pool.run(job(tasks_file, "reads_stdin"))) == ""


async def test_task_exception_carries_type_message_and_traceback_as_text(tasks_file: str) -> None:
    async with ProcessPool(1) as pool:
        with pytest.raises(TaskProcessError) as caught:
            await pool.run(job(tasks_file, "fails"))
        error = caught.value
        assert error.type_name == "ValueError"
        assert error.message == "bad value 42"
        assert "pool_tasks.py" in error.traceback_text
        assert 'raise ValueError("bad value 42")' in error.traceback_text
        # Named like what the task raised, for whoever reports errors by their class.
        assert (type(error).__name__, type(error).__module__) == ("ValueError", "builtins")
        assert not hasattr(error, "original")
        assert pickle.loads(pickle.dumps(error)).traceback_text == error.traceback_text

        with pytest.raises(TaskProcessError) as caught:
            await pool.run(job(tasks_file, "fails_async"))
        # The traceback starts at the task, not in the worker or asyncio.
        assert caught.value.traceback_text.splitlines()[1].startswith(f'  File "{tasks_file}"')

        # An exception that could never be pickled travels as text like any other.
        with pytest.raises(TaskProcessError) as caught:
            await pool.run(job(tasks_file, "fails_unpicklable"))
        assert caught.value.type_name == "pool_tasks.Custom"
        assert "lock" in caught.value.message
        # The worker survives a failing task.
        assert value(await pool.run(job(tasks_file, "add", x=1, y=2))) == 3


async def test_outputs_that_do_not_match_the_interface_are_a_task_error(tasks_file: str) -> None:
    async with ProcessPool(1) as pool:
        with pytest.raises(TaskProcessError) as caught:
            await pool.run(job(tasks_file, "wrong_type"))
    assert caught.value.type_name == "flytelike.errors.ValueConversionError"


async def test_a_template_whose_code_changed_is_refused_before_the_task_runs(tmp_path: Path, tasks_file: str) -> None:
    stale = job(tasks_file, "add", x=1, y=2)
    async with ProcessPool(1) as pool:
        Path(tasks_file).write_text(TASKS + "\n# edited\n")
        with pytest.raises(BackendError, match=r"could not start it: .*LoadError: .*not the code this version"):
            await pool.run(stale)


async def test_missing_task_is_a_backend_error(tasks_file: str) -> None:
    good = job(tasks_file, "add", x=1, y=2)
    template = tasks_pb2.TaskTemplate.FromString(good.template)
    template.id.name = "t.nope"
    async with ProcessPool(1) as pool:
        with pytest.raises(BackendError, match=r"no task named 't\.nope'"):
            await pool.run(replace(good, template=template.SerializeToString()))
        with pytest.raises(BackendError, match=r"could not start it: .*ValueConversionError"):
            await pool.run(replace(good, inputs=b"not a literal map"))


async def test_memory_limit_kills_a_growing_task_and_reports_the_peak(tasks_file: str) -> None:
    limit = 150 * 2**20
    async with ProcessPool(1) as pool:
        hog = job(tasks_file, "hog", action="a7", total_mb=300, chunk_mb=10)
        with pytest.raises(OutOfMemoryError) as caught:
            await pool.run(replace(hog, memory_limit=limit))
        error = caught.value
        assert "memory limit of 150.0 MiB" in str(error)
        assert "peak resident memory" in str(error)
        assert (error.task, error.action, error.attempt) == ("t.hog", "a7", 1)
        peak = error.peak_memory  # type: ignore[attr-defined]
        assert peak > limit * 0.9
        assert f"{peak / 2**20:.1f} MiB" in str(error)
        # The next job gets a fresh, working worker.
        assert value(await pool.run(job(tasks_file, "add", x=1, y=2))) == 3


async def test_one_huge_allocation_fails_fast_as_out_of_memory(tasks_file: str) -> None:
    async with ProcessPool(1) as pool:
        started = time.monotonic()
        with pytest.raises(OutOfMemoryError, match=r"memory limit of 100\.0 MiB"):
            await pool.run(replace(job(tasks_file, "huge"), memory_limit=100 * 2**20))
        assert time.monotonic() - started < 5
        # The next job, without a limit, may use more.
        assert value(await pool.run(job(tasks_file, "hog", total_mb=200, chunk_mb=100))) == 2


async def test_a_worker_killed_mid_job_is_a_backend_error_and_is_replaced(tasks_file: str) -> None:
    async with ProcessPool(1) as pool:
        first = value(await pool.run(job(tasks_file, "pid")))
        with pytest.raises(BackendError, match=r"suicide.*SIGKILL") as caught:
            await pool.run(job(tasks_file, "suicide"))
        assert "about to die" in caught.value.logs  # type: ignore[attr-defined]
        assert not alive(first)
        second = value(await pool.run(job(tasks_file, "pid")))
        assert second != first


async def test_env_vars_and_cuda_devices_apply_to_one_job_only(tasks_file: str) -> None:
    assert "POOL_TEST_VAR" not in os.environ
    base = job(tasks_file, "environment")
    async with ProcessPool(1) as pool:
        with_env = replace(base, env={"POOL_TEST_VAR": "yes"}, cuda_visible_devices="1,3")
        assert value(await pool.run(with_env)) == ["yes", "1,3"]
        hidden = replace(base, cuda_visible_devices="")
        assert value(await pool.run(hidden)) == [None, ""]
        assert value(await pool.run(job(tasks_file, "environment"))) == [None, os.environ.get("CUDA_VISIBLE_DEVICES")]


@pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="needs more than one cpu")
async def test_cpu_pinning_applies_to_one_job_only(tasks_file: str) -> None:
    async with ProcessPool(1) as pool:
        pinned = replace(job(tasks_file, "affinity"), cpus=(0,))
        assert value(await pool.run(pinned)) == [0]
        assert value(await pool.run(job(tasks_file, "affinity"))) == sorted(os.sched_getaffinity(0))


async def test_workers_are_reused(tasks_file: str) -> None:
    async with ProcessPool(2) as pool:
        pids = [value(await pool.run(job(tasks_file, "pid"))) for _ in range(5)]
    assert len(set(pids)) == 1
    assert pids[0] != os.getpid()


async def test_size_jobs_run_in_parallel_and_the_rest_wait(tasks_file: str) -> None:
    async with ProcessPool(2) as pool:
        started = time.monotonic()
        async with anyio.create_task_group() as tg:
            for _ in range(2):
                tg.start_soon(pool.run, job(tasks_file, "nap", seconds=0.5))
        assert time.monotonic() - started < 0.9
        started = time.monotonic()
        async with anyio.create_task_group() as tg:
            for _ in range(3):
                tg.start_soon(pool.run, job(tasks_file, "nap", seconds=0.3))
        assert time.monotonic() - started >= 0.6


async def test_cancelling_a_job_kills_its_worker(tmp_path: Path, tasks_file: str) -> None:
    pid_file = tmp_path / "sleepy.pid"
    async with ProcessPool(1) as pool:
        # The deadline is long for a loaded machine; the job is cancelled as soon as it is known to be running.
        with anyio.move_on_after(10) as scope:
            async with anyio.create_task_group() as tg:
                tg.start_soon(pool.run, job(tasks_file, "sleepy", pid_file=str(pid_file)))
                while not pid_file.exists():
                    await anyio.sleep(0.01)
                scope.cancel()
        assert scope.cancel_called
        pid = int(pid_file.read_text())
        assert not alive(pid)
        assert value(await pool.run(job(tasks_file, "add", x=1, y=2))) == 3


async def test_exit_reaps_every_worker(tasks_file: str) -> None:
    before = children()
    async with ProcessPool(3) as pool:
        pids = {value(await pool.run(job(tasks_file, "pid")))}
        assert len(children() - before) == 3
    assert children() == before
    assert not any(alive(p) for p in pids)


async def test_a_worker_that_cannot_start_is_a_backend_error(tmp_path: Path) -> None:
    before = children()
    with pytest.raises(BackendError, match="failed to start"):
        async with ProcessPool(2, startup_env={"PYTHONPATH": str(tmp_path)}, python=_broken_python(tmp_path)):
            pass
    assert children() == before


def _broken_python(tmp_path: Path) -> str:
    script = tmp_path / "broken-python"
    script.write_text("#!/bin/sh\necho 'no interpreter here' >&2\nexit 3\n")
    script.chmod(0o755)
    return str(script)


class Calls:
    """An ``on_call`` that answers calls of ``t.add`` after all ``expect`` of them have arrived, in any order."""

    def __init__(self, file: str, expect: int = 1, error: Exception | None = None) -> None:
        self.add = sdk_task(file, "add")
        self.seen: list[tuple[str, str, dict[str, Any]]] = []
        self.expect = expect
        self.error = error
        self.all_arrived = anyio.Event()

    async def __call__(self, call: ChildCall) -> bytes:
        values = decode_values(call.inputs, self.add.interface.inputs, where="add")
        assert tasks_pb2.TaskTemplate.FromString(call.template).id.name == "t.add"
        self.seen.append((call.action_id, call.task, values))
        arrived = len(self.seen)
        if arrived == self.expect:
            self.all_arrived.set()
        if self.error is not None:
            raise self.error
        # Every call waits until all have arrived: they can only succeed if the pool serves them concurrently.
        await self.all_arrived.wait()
        # Earlier calls are answered last: answers must find their callers whatever their order.
        await anyio.sleep(0.002 * max(0, self.expect - arrived))
        return encode_values({"o0": values["x"] + values["y"] + 1000}, self.add.interface.outputs, where="add")


async def test_calls_go_to_on_call_concurrently_in_call_order(tasks_file: str) -> None:
    calls = Calls(tasks_file, expect=8)
    async with ProcessPool(1) as pool:
        with anyio.fail_after(20):
            result = await pool.run(job(tasks_file, "fan_add", action="0.3", n=8), on_call=calls)
    assert value(result) == [1000 + 11 * i for i in range(8)]
    version = task_template(calls.add).id.version
    assert calls.seen == [(f"0.3.{i}", f"t.add@{version}", {"x": i, "y": 10 * i}) for i in range(8)]


async def test_a_sync_task_waits_for_each_call(tasks_file: str) -> None:
    calls = Calls(tasks_file)
    async with ProcessPool(1) as pool:
        assert value(await pool.run(job(tasks_file, "sync_calls", x=5), on_call=calls)) == [1006, 1007]


async def test_an_error_of_on_call_is_raised_where_the_task_called(tasks_file: str) -> None:
    async with ProcessPool(1) as pool:
        failing = job(tasks_file, "call_fails")
        text = value(await pool.run(failing, on_call=Calls(tasks_file, error=KeyError("gone"))))
        assert text == "TaskFailedError KeyError: 'gone'"
        # The failure of a task the call ran keeps its task, action, attempt and cause.
        failed = fl.errors.TaskTimeoutError("too slow", task="t.add", action="a0.0", attempt=2, cause_type="x.Y")
        text = value(await pool.run(failing, on_call=Calls(tasks_file, error=failed)))
        assert text == "TaskTimeoutError x.Y t.add a0.0 2: too slow"


async def test_without_on_call_calls_are_plain_function_calls(tasks_file: str) -> None:
    async with ProcessPool(1) as pool:
        assert value(await pool.run(job(tasks_file, "fan_add", n=3))) == [0, 11, 22]


async def test_a_job_queued_behind_one_whose_worker_dies_runs_in_another_worker(tasks_file: str) -> None:
    async with ProcessPool(1) as pool:
        results: dict[str, Any] = {}

        async def run(name: str, j: ProcessJob) -> None:
            try:
                results[name] = value(await pool.run(j))
            except BackendError as e:
                results[name] = e

        async with anyio.create_task_group() as tg:
            tg.start_soon(run, "dies", job(tasks_file, "die_after", seconds=0.3))
            await anyio.sleep(0.05)
            # No place is free: this one is queued behind the job that is about to die, and never starts there.
            tg.start_soon(run, "queued", job(tasks_file, "add", x=1, y=2))
            await anyio.sleep(0.05)
            assert [len(w.turns) for w in pool._busy] == [1]
    assert isinstance(results["dies"], BackendError)
    assert results["queued"] == 3


async def test_a_queued_job_that_is_cancelled_never_runs_where_it_was_queued(tmp_path: Path, tasks_file: str) -> None:
    pid_file = tmp_path / "queued.pid"
    async with ProcessPool(1) as pool:
        first: list[Any] = []

        async def nap() -> None:
            first.append(value(await pool.run(job(tasks_file, "nap", seconds=0.4))))

        async with anyio.create_task_group() as tg:
            tg.start_soon(nap)
            await anyio.sleep(0.1)
            with anyio.move_on_after(0.1):
                await pool.run(job(tasks_file, "sleepy", pid_file=str(pid_file)))
        assert first == [0.4]
        # The worker that started the unwanted job was stopped; the pool goes on with a fresh one.
        if pid_file.exists():
            assert not alive(int(pid_file.read_text()))
        assert value(await pool.run(job(tasks_file, "add", x=1, y=2))) == 3


async def test_a_queued_job_takes_a_place_that_frees_up_before_the_job_ahead_of_it_ends(tasks_file: str) -> None:
    async with ProcessPool(2) as pool:
        started = time.monotonic()
        ended: dict[str, float] = {}

        async def run(name: str, j: ProcessJob) -> None:
            await pool.run(j)
            ended[name] = time.monotonic() - started

        async with anyio.create_task_group() as tg:
            tg.start_soon(run, "long", job(tasks_file, "nap", seconds=1.5))
            await anyio.sleep(0.1)
            # A job with a memory limit is never queued behind: the next one can only queue behind the long job.
            tg.start_soon(run, "short", replace(job(tasks_file, "nap", seconds=0.3), memory_limit=2**30))
            await anyio.sleep(0.1)
            tg.start_soon(run, "queued", job(tasks_file, "add", x=1, y=2))
            await anyio.sleep(0.05)
            assert sorted(len(w.turns) for w in pool._busy) == [0, 1]
    # Withdrawn from behind the long job once the short one gave its place back, it ran in that place.
    assert ended["short"] < ended["queued"] < ended["long"] - 0.5
