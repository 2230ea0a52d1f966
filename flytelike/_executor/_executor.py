"""The executor: runs a task graph on backends, speaking task templates and values only."""

from __future__ import annotations

import dataclasses
import os
import socket
import warnings
from collections.abc import Iterable, Mapping
from typing import Any, Literal

import anyio

from flytelike._executor._admission import Admission, Capacity, Request
from flytelike._executor._model import ExecTask, RunRecord, RunState
from flytelike._executor._protocols import Backend, CacheStore, Codec, Recorder
from flytelike._executor._run import Run
from flytelike.errors import AdmissionError, BackendError, CancelledError, CapacityWarning, FlytelikeError

__all__ = ["Executor", "ResourcePolicy"]

ResourcePolicy = Literal["check", "strict", "ignore"]

_FLUSH_EVERY = 0.5
_GiB = 1024**3


def _gib(n: int) -> str:
    return f"{n / _GiB:.1f} GiB"


class Executor:
    """Runs actions on backends; one executor can serve many runs.

    Args:
        backends: by platform name (``local``, ``kubernetes``, ``batch``).
        codec: turns values into bytes for the cache and remote backends.
        recorder: persists runs and actions.
        cache: the output cache.
        capacity: this machine, for local admission.
        resource_policy: ``check`` fails memory that can never fit and warns for cpu/GPUs; ``strict`` fails
            all three; ``ignore`` runs everything anyway.
    """

    def __init__(
        self,
        *,
        backends: Mapping[str, Backend],
        codec: Codec,
        recorder: Recorder,
        cache: CacheStore,
        capacity: Capacity,
        resource_policy: ResourcePolicy = "check",
    ) -> None:
        self.backends = dict(backends)
        self.codec = codec
        self.recorder = recorder
        self.cache = cache
        self.admission = Admission(capacity)
        self.resource_policy = resource_policy
        self._warned: set[tuple[str, str]] = set()

    def backend_for(self, platform: str, *, task: str = "") -> Backend:
        backend = self.backends.get(platform)
        if backend is None:
            who = f"task {task} runs on" if task else "this run uses"
            raise BackendError(
                f"{who} platform {platform!r}, but no {platform} backend is available in this installation "
                f"(available: {', '.join(sorted(self.backends))}); run it locally without --with, or pin it with "
                "platform=fl.Local()"
            )
        return backend

    # --- local admission policy -------------------------------------------------------------------------------

    def check_local(self, tasks: Iterable[ExecTask]) -> None:
        """Fail before anything starts if a task can never run here; warn (once) for cpu and GPUs it lacks."""
        for task in tasks:
            if task.platform in ("", "local"):
                self.local_request(task, Request(task.cpu_millis, task.memory, task.gpus), "")

    def local_request(self, task: ExecTask, request: Request, action: str) -> Request:
        """The request to admit locally, after the resource policy; raises AdmissionError if it can never fit."""
        cap = self.admission.capacity
        policy = self.resource_policy
        if policy == "ignore":
            return cap.clamp(request)
        where = f"task {task.name}" + (f" (action {action})" if action else "")
        hint = (
            "Run it where it fits with `--with kubernetes` or `--with batch`, or run it here anyway with "
            '`flytelike run --local-resources ignore` (config: [local] resources = "ignore").'
        )
        if request.memory > cap.memory:
            raise AdmissionError(
                f"{where} requests {_gib(request.memory)} of memory but this machine has {_gib(cap.memory)}; "
                f"it can never fit. {hint}"
            )
        problems: list[tuple[str, str]] = []
        if request.cpu_millis > cap.cpu_millis:
            problems.append(
                (
                    "cpu",
                    f"{where} requests {request.cpu_millis / 1000:g} cpu but this machine has "
                    f"{cap.cpu_millis / 1000:g} cores; it will run slower",
                )
            )
        if request.gpus > cap.gpus:
            problems.append(
                ("gpu", f"{where} requests {request.gpus} GPU(s) but this machine has {cap.gpus}; it runs without them")
            )
        for kind, problem in problems:
            if policy == "strict":
                raise AdmissionError(f'{problem}. {hint} (strict mode is on: [local] resources = "strict")')
            if (task.name, kind) not in self._warned:
                self._warned.add((task.name, kind))
                warnings.warn(f"{problem}.", CapacityWarning, stacklevel=2)
        return cap.clamp(request)

    # --- runs -----------------------------------------------------------------------------------------------

    def new_run(self, run_id: str, task: ExecTask, *, platform: str = "local", inputs_json: str = "{}") -> Run:
        record = RunRecord(run_id, task.name, platform=platform, inputs_json=inputs_json)
        record.pid, record.host = os.getpid(), socket.gethostname()  # so readers can tell a lost run from a live one
        return Run(self, record, platform)

    async def execute(self, run: Run, task: ExecTask, values: Mapping[str, Any]) -> Mapping[str, Any]:
        """Execute ``task`` as the root action of ``run``; records are written as it goes and at the end.

        Raises:
            TaskFailedError: the root task failed (``run_id`` is set on the error).
            CancelledError: the run was cancelled through ``run.cancel_scope``.
        """
        flusher = anyio.CancelScope()
        outcome: Mapping[str, Any] | FlytelikeError | None = None
        state, error = RunState.ABORTED, "cancelled"
        try:
            async with anyio.create_task_group() as tg:
                tg.start_soon(self._flush_periodically, run, flusher)
                try:
                    outcome = await self._root(run, task, values)
                finally:
                    flusher.cancel()
            if outcome is None:
                outcome = CancelledError(f"run {run.id} was cancelled")
            if isinstance(outcome, FlytelikeError):
                state = RunState.ABORTED if isinstance(outcome, CancelledError) else RunState.FAILED
                error = str(outcome)
                outcome.run_id = run.id
                raise outcome
            state, error = RunState.SUCCEEDED, ""
            return outcome
        finally:
            run.finish(state, error or None)
            with anyio.CancelScope(shield=True):
                await self._flush(run)

    async def _root(self, run: Run, task: ExecTask, values: Mapping[str, Any]) -> Mapping[str, Any] | FlytelikeError:
        with run.cancel_scope:
            try:
                return await run.execute(task, values, None, "0")
            except FlytelikeError as e:
                return e
        return CancelledError(f"run {run.id} was cancelled")

    async def _flush_periodically(self, run: Run, scope: anyio.CancelScope) -> None:
        with scope:
            while True:
                await anyio.sleep(_FLUSH_EVERY)
                await self._flush(run)

    async def _flush(self, run: Run) -> None:
        dirty = run.take_dirty()
        record = dataclasses.replace(run.record)
        await anyio.to_thread.run_sync(self.recorder.write, record, dirty)
