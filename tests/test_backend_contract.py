"""The backend contract (design: running tasks elsewhere), one suite over every backend.

Each backend runs one attempt of an action from its template and literal inputs and gives back literal outputs;
failures come back classified; cancellation tears down what the attempt started; children go through the run;
what an attempt printed is there afterwards; a backend that admits work does so behind leases. The suite drives a
backend directly through its contract (no executor): the run it is given is a small stand-in that executes each
child with the same backend, so what is tested is the backend alone.

Parametrised over the local backend's two places (this process, a warm worker process), the reference
out-of-process backend (each attempt a new ``flytelike-entry`` process), and the Kubernetes and Batch backends
against their emulators. The remote ones are slow (a process per attempt) and marked so.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import sys
import textwrap
import time
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
import pytest

from flytelike._backends import BackendInput, load_backend
from flytelike._backends._remote import RemoteServices
from flytelike._backends.local import Capacity
from flytelike._config import load_settings
from flytelike._executor import (
    ActionRecord,
    ActionState,
    AdmitInput,
    AttemptInput,
    AttemptResult,
    Backend,
    Encoder,
    ExecTask,
    LogSink,
    TailOnly,
    Values,
)
from flytelike._invoke import Invoker, TaskIndex
from flytelike._loader import load_file
from flytelike._serde import decode_values, encode_values
from flytelike.errors import AdmissionError, OutOfMemoryError, TaskCodeError
from flytelike.testing import BatchEmulator, KubernetesEmulator, SubprocessBackend

MiB = 2**20

TASKS = """
import os
import time
from pathlib import Path

import flytelike as fl

PLACE = {place!r}
platform = fl.Local(process=True) if PLACE == "worker" else None
env = fl.TaskEnvironment(name="contract_" + PLACE, platform=platform)
MARKS = Path({marks!r})


@env.task
async def add(x: int, y: int) -> int:
    return x + y


@env.task
async def boom(why: str) -> int:
    raise ValueError(why)


@env.task
async def sleepy() -> str:
    (MARKS / "pid").write_text(str(os.getpid()))
    try:
        import asyncio
        await asyncio.sleep(60)
    finally:
        (MARKS / "left").write_text("yes")
    return "woke"


@env.task
async def chatty(word: str) -> str:
    print(f"saying {{word}}")
    return word


@env.task
async def parent(n: int) -> int:
    total = 0
    for i in range(n):
        total += await add(i, i)
    return total


@env.task
async def hog(mib: int) -> int:
    blocks = [bytearray(1024 * 1024) for _ in range(mib)]
    return len(blocks)
"""


@dataclass
class DirectRun:
    """Stands in for the run: executes each child attempt with the same backend and notes the child ids."""

    backend: Backend
    id: str = "contract-run"
    children: list[str] = field(default_factory=list)
    _counts: dict[str, int] = field(default_factory=dict)
    actions: dict[str, ActionRecord] = field(default_factory=dict)
    reports: list[tuple[str, str]] = field(default_factory=list)
    logs: LogSink = field(init=False)

    def __post_init__(self) -> None:
        self.logs = TailOnly(self.actions)

    def spawn(self, parent: ActionRecord, task: ExecTask, inputs: Values, *, action_id: str | None = None) -> Any:
        return self.call(parent, task, inputs, None, action_id=action_id)

    def report(self, action: ActionRecord, state: ActionState, reason: str = "") -> None:
        self.reports.append((action.id, state.value))

    async def durable(self) -> None:
        pass  # nothing takes this run over after a crash

    def call(
        self,
        parent: ActionRecord,
        task: ExecTask,
        inputs: Values | Mapping[str, Any],
        convert: Callable[[Values], Any] | None,
        *,
        encode: Encoder | None = None,
        action_id: str | None = None,
    ) -> Any:
        if not isinstance(inputs, Values):
            inputs = Values(inputs, encode=encode)
        n = self._counts.get(parent.id, 0)
        self._counts[parent.id] = n + 1
        child = action_id or f"{parent.id}.{n}"
        self.children.append(child)

        async def attempt() -> Any:
            record = self.actions[child] = ActionRecord(self.id, child, parent.id, task.name, task.version)
            result = await self.backend.run_attempt(AttemptInput(self, record, task, inputs, 1, task.memory))
            return result.outputs if convert is None else convert(result.outputs)

        return attempt()


@dataclass
class Harness:
    place: str
    backend: Backend
    index: TaskIndex
    tasks: dict[str, Any]
    marks: Path

    def task(self, name: str) -> ExecTask:
        return self.index.exec_task(self.tasks[name])

    def inputs(self, name: str, /, **values: Any) -> Values:
        # Literal bytes only, as an attempt gets them from another process or the store.
        return Values(data=encode_values(values, self.tasks[name].interface.inputs, where=name))

    def outputs(self, name: str, result: AttemptResult) -> dict[str, Any]:
        return decode_values(result.outputs.data(), self.tasks[name].interface.outputs, where=name)

    async def attempt(self, name: str, /, *, memory: int = 0, **values: Any) -> tuple[AttemptResult, ActionRecord]:
        task = self.task(name)
        record = ActionRecord("contract-run", "0", None, task.name, task.version)
        run = DirectRun(self.backend)
        run.actions["0"] = record
        self.last_run = run
        result = await self.backend.run_attempt(AttemptInput(run, record, task, self.inputs(name, **values), 1, memory))
        return result, record


LOCAL = ["in-process", "worker"]
REMOTE = ["subprocess", "kubernetes", "batch"]
PLACES = [*LOCAL, *(pytest.param(p, marks=pytest.mark.slow) for p in REMOTE)]


@contextlib.asynccontextmanager
async def harness_for(place: str, tmp_path: Path) -> AsyncIterator[Harness]:
    """The backend of ``place``, entered, with the tasks of TASKS compiled for it (an emulator runs around it)."""
    local = place in LOCAL
    name = {"in-process": "inprocess"}.get(place, place)
    marks = tmp_path / "marks"
    marks.mkdir()
    project = tmp_path / "project"
    project.mkdir()
    (project / "pyproject.toml").write_text("[project]\nname = 'contract'\n")
    file = project / f"contract_tasks_{name}_{os.getpid()}_{time.monotonic_ns()}.py"
    file.write_text(textwrap.dedent(TASKS.format(place=name, marks=str(marks))))
    module = load_file(file)
    env = next(v for k, v in vars(module).items() if k == "env")
    index = TaskIndex()
    invoker = Invoker(index)
    entrypoint = [sys.executable, "-m", "flytelike.entry"]
    try:
        async with contextlib.AsyncExitStack() as stack:
            overrides: dict[str, Any] = {"local": {"workers": 2}}
            if place == "kubernetes":
                cluster = await stack.enter_async_context(KubernetesEmulator())
                overrides["kubernetes"] = {"kubeconfig": str(cluster.kubeconfig_path), "entrypoint": entrypoint}
            elif place == "batch":
                aws = await stack.enter_async_context(BatchEmulator(time_scale=0.01))
                overrides["batch"] = {
                    "endpoint_url": aws.endpoint_url,
                    "region": aws.region,
                    "queue": aws.queue,
                    "entrypoint": entrypoint,
                }
                for key, value in aws.credentials.items():
                    stack.enter_context(_env(key.upper(), value))
            settings = load_settings(**overrides)
            background = await stack.enter_async_context(anyio.create_task_group())
            stack.callback(background.cancel_scope.cancel)
            remote = RemoteServices(settings, invoker)
            stack.push_async_callback(remote.aclose)
            if local:
                options: dict[str, Any] = {"capacity": Capacity(2000, 8 * 1024 * MiB, 0)}
                factory = load_backend("local")
            else:
                options = {}
                factory = SubprocessBackend.from_input if place == "subprocess" else load_backend(place)
            backend = factory(BackendInput(settings, invoker, options, remote, background))
            await stack.enter_async_context(backend)
            yield Harness(place, backend, index, dict(env.tasks), marks)
    finally:
        sys.modules.pop(module.__name__, None)


@contextlib.contextmanager
def _env(name: str, value: str) -> Iterator[None]:
    old = os.environ.get(name)
    os.environ[name] = value
    try:
        yield
    finally:
        if old is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = old


@pytest.fixture(params=PLACES)
def place(request: pytest.FixtureRequest) -> str:
    param: str = request.param
    return param


async def test_outputs_come_back_as_literal_bytes(place: str, tmp_path: Path) -> None:
    async with harness_for(place, tmp_path) as harness:
        result, _ = await harness.attempt("add", x=2, y=3)
        assert harness.outputs("add", result) == {"o0": 5}


async def test_a_raising_task_fails_naming_its_exception(place: str, tmp_path: Path) -> None:
    async with harness_for(place, tmp_path) as harness:
        with pytest.raises((ValueError, TaskCodeError)) as caught:
            await harness.attempt("boom", why="on purpose")
        error = caught.value
        # In this process the task's own exception; from another process a description of it.
        name = error.type_name if isinstance(error, TaskCodeError) else type(error).__name__
        assert name.rpartition(".")[2] == "ValueError"
        assert "on purpose" in str(error)


async def test_cancellation_tears_down_what_the_attempt_started(place: str, tmp_path: Path) -> None:
    async with harness_for(place, tmp_path) as harness:
        async with anyio.create_task_group() as tg:
            tg.start_soon(harness.attempt, "sleepy")
            with anyio.fail_after(30):
                while not (harness.marks / "pid").exists():
                    await anyio.sleep(0.02)
            started = time.monotonic()
            tg.cancel_scope.cancel()
        assert time.monotonic() - started < 10
        pid = int((harness.marks / "pid").read_text())
        if harness.place == "in-process":
            assert (harness.marks / "left").read_text() == "yes"  # the coroutine was cancelled, its cleanup ran
        else:
            with anyio.fail_after(30):  # the process that ran it (a worker, a pod's, a job's) is killed
                while _alive(pid):
                    await anyio.sleep(0.05)


async def test_children_go_through_the_run_in_call_order(place: str, tmp_path: Path) -> None:
    async with harness_for(place, tmp_path) as harness:
        result, _ = await harness.attempt("parent", n=3)
        assert harness.outputs("parent", result) == {"o0": 0 + 2 + 4}
        assert harness.last_run.children == ["0.0", "0.1", "0.2"]


async def test_what_an_attempt_printed_is_in_its_logs(place: str, tmp_path: Path) -> None:
    async with harness_for(place, tmp_path) as harness:
        _, record = await harness.attempt("chatty", word="hello")
        assert "saying hello" in await harness.backend.logs(record, 1)


async def test_memory_past_the_limit_is_out_of_memory(place: str, tmp_path: Path) -> None:
    async with harness_for(place, tmp_path) as harness:
        if harness.place == "in-process":
            pytest.skip("in-process attempts share the controller's memory: no limit is enforced there (by design)")
        with pytest.raises(OutOfMemoryError) as caught:
            await harness.attempt("hog", mib=400, memory=128 * MiB)
        assert getattr(caught.value, "peak_memory", 0) > 100 * MiB


async def test_what_can_never_fit_is_refused_before_anything_starts(place: str, tmp_path: Path) -> None:
    if place not in LOCAL:
        pytest.skip(
            "the platform's scheduler admits work there (a pod or a job waits for room): nothing is refused here"
        )
    async with harness_for(place, tmp_path) as harness:
        huge = dataclasses.replace(harness.task("add"), memory=64 * 1024 * 1024 * MiB)
        with pytest.raises(AdmissionError) as caught:
            harness.backend.check([huge])
        assert caught.value.resource == "memory"


async def test_leases_admit_in_turn_and_suspend_while_waiting(place: str, tmp_path: Path) -> None:
    if place not in LOCAL:
        pytest.skip("the platform's scheduler admits work there: the backend's leases hold nothing")
    async with harness_for(place, tmp_path) as harness:
        task = harness.task("add")
        waits: list[str] = []

        def request(cpu: int) -> AdmitInput:
            return AdmitInput(task, "0", cpu, 0, 0, waits.append)

        first = await harness.backend.admit(request(2000))
        admitted = anyio.Event()

        async def second() -> None:
            lease = await harness.backend.admit(request(1000))
            admitted.set()
            lease.release()

        async with anyio.create_task_group() as tg:
            tg.start_soon(second)
            await anyio.sleep(0.05)
            assert not admitted.is_set()
            assert len(waits) == 1  # told once why it waits
            first.suspend()  # the holder only waits for its children: its capacity goes to others
            with anyio.fail_after(5):
                await admitted.wait()
            with anyio.fail_after(5):
                await first.resume()
        first.release()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split()[2] != "Z"
    except OSError:
        return False
