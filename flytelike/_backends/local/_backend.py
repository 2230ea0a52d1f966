"""The local backend: async tasks in this process, ``Local(process=True)`` tasks in a warm child process.

It owns this machine's capacity: requests are checked against the resource policy before a run starts and
admitted in arrival order while it runs (:mod:`._admission`). In a child process the task's memory limit is
enforced, its cpu is pinned when it asks for whole cores, and ``CUDA_VISIBLE_DEVICES`` shows it the GPUs it was
given (and none when it asked for none). Tasks it calls come back to this process as child actions of its action.
"""

from __future__ import annotations

from collections.abc import Awaitable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING

import anyio

from flytelike._backends._input import BackendInput, InProcess
from flytelike._backends.local._admission import Admission, AdmissionLease, Request
from flytelike._backends.local._capacity import Capacity, probe_gpus
from flytelike._backends.local._policy import ResourcePolicy, ResourceRules
from flytelike._executor import (
    ActionRecord,
    AdmitInput,
    AttemptInput,
    AttemptResult,
    ExecTask,
    Spawner,
    Values,
)
from flytelike.errors import BackendError, OutOfMemoryError, TaskCodeError

if TYPE_CHECKING:
    from flytelike._backends.local._process_pool import ChildCall, OnCall, ProcessPool

__all__ = ["WORKER_MEMORY", "LocalBackend", "LocalInput", "from_input", "pool_size"]


@dataclass(frozen=True, slots=True)
class LocalInput:
    """What a local backend is built from.

    Attributes:
        in_process: runs Python code in this process.
        policy: how Resources are treated here (``check``, ``strict``, ``ignore``).
        workers: warm worker processes for process-isolated tasks (default, and most: one per core, and no more
            than the memory holds at ``WORKER_MEMORY`` each).
        capacity: this machine's capacity (default: probed on entry).
        home: where probe results are kept between runs.
    """

    in_process: InProcess
    policy: ResourcePolicy = "check"
    workers: int | None = None
    capacity: Capacity | None = None
    home: Path | None = None


@dataclass(frozen=True, slots=True)
class _JobParts:
    template: bytes
    code_file: str | None
    env: Mapping[str, str]


class LocalBackend:
    """Runs attempts on this machine."""

    name = "local"

    def __init__(self, spec: LocalInput) -> None:
        self._spec = spec
        self._in_process = spec.in_process
        self.capacity = spec.capacity or Capacity(0, 0, 0)
        self._rules = ResourceRules(self.capacity, spec.policy)
        self._admission = Admission(0, 0, 0)
        self._pool: ProcessPool | None = None
        self._pool_lock = anyio.Lock()
        self._free_cpus: set[int] = set()
        self._free_gpus: set[int] = set()
        # What every job of a task version carries alike (its template's bytes, code file and env), made once.
        self._job_parts: dict[str, _JobParts] = {}

    async def __aenter__(self) -> LocalBackend:
        if self._spec.capacity is None:
            home = self._spec.home
            gpus = await anyio.to_thread.run_sync(lambda: probe_gpus(home))
            self.capacity = Capacity.of_this_machine(gpus)
        cap = self.capacity
        self._rules = ResourceRules(cap, self._spec.policy)
        self._admission = Admission(cap.cpu_millis, cap.memory, cap.gpus)
        self._free_cpus = set(range(cap.cpu_millis // 1000))
        self._free_gpus = set(range(cap.gpus))
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        pool, self._pool = self._pool, None
        if pool is not None:
            await pool.aclose()

    # --- admission ----------------------------------------------------------------------------------------------

    def check(self, tasks: Sequence[ExecTask]) -> None:
        for task in tasks:
            request = Request(task.cpu_millis, task.memory, task.gpus)
            if request:
                self._rules.request(task.name, request)

    async def admit(self, request: AdmitInput) -> AdmissionLease:
        wanted = self._rules.request(
            request.task.name, Request(request.cpu_millis, request.memory, request.gpus), request.action
        )
        if not self._admission.can_admit_now(wanted):
            request.on_wait("waiting for cpu, memory or GPUs on this machine")
        await self._admission.acquire(wanted)
        return AdmissionLease(self._admission, wanted)

    # --- attempts -----------------------------------------------------------------------------------------------

    def run_attempt(self, attempt: AttemptInput) -> Awaitable[AttemptResult]:
        if not attempt.task.process:
            # The invoker's coroutine itself, not one wrapping it: one layer less on every in-process action.
            return self._in_process.invoke(attempt)
        return self._in_worker(attempt)

    async def logs(self, action: ActionRecord, attempt: int) -> str:
        folder = action.log_path
        if folder is not None:
            path = Path(folder) / f"{attempt}.log"
            data = await anyio.to_thread.run_sync(_read_or_none, path)
            if data is not None:
                return data.decode("utf-8", errors="replace")
        return "".join(action.logs or ())

    async def start_pool(self) -> ProcessPool:
        """Start the warm workers (once); leaving the backend stops them."""
        async with self._pool_lock:
            if self._pool is None:
                # Imported here, not at the top: the worker pool (subprocess, tempfile, the worker protocol, memory
                # watching) costs a run of in-process tasks, most runs, a tenth of its start-up, for nothing.
                from flytelike._backends.local._process_pool import ProcessPool

                # One worker now, the others when jobs first need them.
                pool = ProcessPool(pool_size(self._spec.workers, self.capacity), prestart=1)
                await pool.__aenter__()
                self._pool = pool
            return self._pool

    async def _in_worker(self, attempt: AttemptInput) -> AttemptResult:
        # Lazy for start-up time, as in start_pool(): only process-isolated tasks need the pool's modules.
        from flytelike._backends.local._process_pool import ProcessJob, TaskProcessError

        task, action = attempt.task, attempt.action
        pool = self._pool or await self.start_pool()
        cpus = self._take(self._free_cpus, task.cpu_millis // 1000 if task.cpu_millis % 1000 == 0 else 0)
        gpus = self._take(self._free_gpus, task.gpus)
        parts = self._job_parts.get(task.key)
        if parts is None:
            parts = self._job_parts[task.key] = _JobParts(
                task.template.SerializeToString(deterministic=True),
                self._in_process.code_file(task),
                {kv.key: kv.value for kv in task.template.container.env},
            )
        job = ProcessJob(
            run_id=attempt.run.id,
            action_id=action.id,
            attempt=attempt.attempt,
            template=parts.template,
            inputs=attempt.inputs.data(),
            code_file=parts.code_file,
            memory_limit=attempt.memory,
            cpus=tuple(sorted(cpus)) if cpus else (),
            cuda_visible_devices=",".join(map(str, sorted(gpus))) if self.capacity.gpus else None,
            env=parts.env,
        )
        # The worker writes stdout and stderr to one file: its output is one stream, interleaved as written. It
        # comes as the job runs, and the rest with its end.
        sink = attempt.run.logs
        streamed: list[int] = []

        def on_logs(data: bytes) -> None:
            streamed.append(len(data))
            sink.append(action.id, attempt.attempt, data, "all")

        try:
            result = await pool.run(job, on_call=self._calls_from(attempt.run, action, task), on_logs=on_logs)
        except TaskProcessError as e:
            sink.append(action.id, attempt.attempt, e.logs, "all")
            raise TaskCodeError(e.type_name, e.message, e.traceback_text) from None
        except (OutOfMemoryError, BackendError) as e:
            # A worker that died mid-job leaves the tail of its log file, which repeats what was streamed.
            if not streamed:
                sink.append(action.id, attempt.attempt, getattr(e, "logs", ""), "all")
            raise
        finally:
            self._free_cpus |= cpus
            self._free_gpus |= gpus
        sink.append(action.id, attempt.attempt, result.logs, "all")
        return AttemptResult(Values(data=result.outputs), peak_memory=result.peak_memory, cpu_time=result.cpu_time)

    def _calls_from(self, run: Spawner, action: ActionRecord, caller: ExecTask) -> OnCall:
        """Runs the calls a process-isolated attempt makes as child actions of its action."""

        async def on_call(call: ChildCall) -> bytes:
            task = self._in_process.exec_task_called(call.template, caller)
            # The worker numbered its calls (parent id + call order); the run takes that id, so a retried
            # attempt that calls again gets the first call's outcome instead of a second child.
            outputs: Values = await run.spawn(action, task, Values(data=call.inputs), action_id=call.action_id)
            return outputs.data()

        return on_call

    @staticmethod
    def _take(free: set[int], n: int) -> set[int]:
        if n <= 0 or n > len(free):
            return set()
        taken = set(sorted(free)[:n])
        free -= taken
        return taken


def _read_or_none(path: Path) -> bytes | None:
    try:
        return path.read_bytes()
    except OSError:
        return None


WORKER_MEMORY = 256 * 1024**2
"""Memory set aside per warm worker when bounding the pool: an idle interpreter with flytelike is about 60 MiB."""


def pool_size(configured: int | None, capacity: Capacity) -> int:
    """Warm workers for ``[local] workers = configured`` on a machine of ``capacity``.

    Bounded by what the machine can hold: one worker per core at most (more would only make each slower, and a
    pool starts all of its workers with the first isolated task: ``workers = 32`` took 5 s before its first
    task), and no more than fit in memory.
    """
    cores = max(1, capacity.cpu_millis // 1000)
    fit = max(1, capacity.memory // WORKER_MEMORY) if capacity.memory else cores
    most = min(cores, fit)
    return min(configured, most) if configured else most


def from_input(spec: BackendInput) -> LocalBackend:
    """The local backend for a run: the policy and workers from ``[local]``, unless the run's options say."""
    local = spec.settings.local
    return LocalBackend(
        LocalInput(
            in_process=spec.in_process,
            policy=spec.options.get("policy") or local.resources,
            workers=local.workers,
            capacity=spec.options.get("capacity"),
            home=spec.settings.home,
        )
    )
