"""The run source of ``flytelike serve``: runs executed by a :class:`~flytelike._runtime.Runtime`, as local runs are.

Each run starts from its root template, literal inputs and bundle digest (``Runtime.start_template``): the user's
code is never imported here. The run's events are reported as they happen; an attempt's output is reported when
it reaches the runtime (a pod's log stream, a task's output sent back while it runs, or the output collected when
the attempt ends, as each backend delivers it).
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable, Mapping
from types import TracebackType
from typing import TYPE_CHECKING

import anyio
import anyio.abc

from flytelike._backends import BackendInput
from flytelike._config import Settings
from flytelike._executor import Backend, Event, LogSink, Resumed, Stream
from flytelike._proto.remote.v1 import runs_pb2
from flytelike._remote._source import RunReports
from flytelike._run_handle import RunHandle
from flytelike._runtime import Runtime, TemplateRunInput
from flytelike.errors import CancelledError, FlytelikeError, SpecError

if TYPE_CHECKING:
    from flytelike._remote._server import ActionServer

__all__ = ["RuntimeRunSource"]

log = logging.getLogger("flytelike.serve")


class RuntimeRunSource:
    """Runs on one Runtime; an async context manager.

    Args:
        settings: the server's settings (store, backends' sections).
        platform: the platform of tasks without one (the run's own ``platform`` wins).
        backends: backend factories by platform name beside the built-in ones.
        controller: the ActionService the runs' tasks call back on (the server's own, on its port).
        executor: the name the backends label what they start with (pods): the same across restarts of one
            server, so a restarted server finds what the one before started.
    """

    def __init__(
        self,
        settings: Settings,
        *,
        platform: str,
        backends: Mapping[str, Callable[[BackendInput], Backend]] | None = None,
        controller: ActionServer | None = None,
        executor: str | None = None,
    ) -> None:
        options = {"kubernetes": {"executor": executor}} if executor else None
        self._runtime = Runtime(settings=settings, backends=backends, controller=controller, backend_options=options)
        self._platform = platform
        self._allowed = frozenset(_names(settings.serve.backends)) | {platform}
        self._handles: dict[str, RunHandle] = {}
        self._tg: anyio.abc.TaskGroup | None = None
        self._leaving = False

    async def __aenter__(self) -> RuntimeRunSource:
        await self._runtime.__aenter__()
        try:
            self._tg = await anyio.create_task_group().__aenter__()
        except BaseException:
            await self._runtime.__aexit__(None, None, None)
            raise
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        tg, self._tg = self._tg, None
        # Runs still going are left as they are, in the records and where their attempts run: the next server on
        # these records takes them over. Nothing is reported from here on (their cancellation here is no end).
        self._leaving = True
        self._runtime.leave()
        try:
            if tg is not None:
                await tg.__aexit__(None, None, None)
        finally:
            await self._runtime.__aexit__(None, None, None)

    async def start(self, run_id: str, request: runs_pb2.CreateRunRequest, reports: RunReports) -> None:
        await self._start(run_id, request, reports, None, 0)

    async def resume(
        self,
        run_id: str,
        request: runs_pb2.CreateRunRequest,
        reports: RunReports,
        actions: Mapping[str, Resumed],
        last_seq: int,
    ) -> None:
        """Go on with a run a previous server process started (see :class:`~flytelike._executor.Resumed`)."""
        await self._start(run_id, request, reports, actions, last_seq)

    async def _start(
        self,
        run_id: str,
        request: runs_pb2.CreateRunRequest,
        reports: RunReports,
        resume: Mapping[str, Resumed] | None,
        last_seq: int,
    ) -> None:
        if self._tg is None:
            raise RuntimeError("RuntimeRunSource used outside `async with`")
        root = next(c for c in request.tasks if f"{c.template.id.name}@{c.template.id.version}" == request.root)
        platform = request.platform or self._platform
        if platform not in self._allowed:
            raise SpecError(
                "platform", platform, "is not a backend of this server", accepted=", ".join(sorted(self._allowed))
            )
        handle = await self._runtime.start_template(
            TemplateRunInput(
                template=root.template.SerializeToString(deterministic=True),
                inputs=request.inputs,
                bundle=request.bundle_digest,
                module=root.module,
                platform=platform,
                labels=dict(request.labels),
                run_id=run_id,
                resume=resume,
                first_seq=last_seq,
            )
        )
        self._handles[run_id] = handle
        # Both are attached before anything can happen on the loop (the run has not had a turn yet): the first event
        # and the first byte of output are not missed. Events are reported as they are emitted, not through a
        # queue, so that once the reports are durable so is every event before (see Run.durable).
        run = handle.run
        run.logs = _Tee(run.logs, run_id, reports)
        actions = run.actions

        def report(event: Event) -> None:
            if self._leaving:
                return
            record = actions.get(event.action)
            reports.event(
                runs_pb2.Event(
                    run_id=run_id,
                    seq=event.seq,
                    action_id=event.action,
                    parent=(record.parent or "") if record is not None else "",
                    task=record.task if record is not None else "",
                    state=event.state,
                    attempt=event.attempt,
                    time=event.time,
                    kind=event.kind,
                    reason=event.reason,
                )
            )

        unsubscribe = run.subscribe(report)
        run.durable_hook = reports.durable
        reports.running(run_id)
        self._tg.start_soon(self._follow, run_id, handle, reports, unsubscribe)

    async def _follow(
        self, run_id: str, handle: RunHandle, reports: RunReports, unsubscribe: Callable[[], None]
    ) -> None:
        try:
            outputs = await handle.result()
        except CancelledError as e:
            if not self._leaving:
                reports.finished(run_id, "aborted", error=str(e))
        except FlytelikeError as e:
            if not self._leaving:
                reports.finished(run_id, "failed", error=str(e))
        else:
            reports.finished(run_id, "succeeded", outputs=outputs)
        finally:
            unsubscribe()
            self._handles.pop(run_id, None)

    async def abort(self, run_id: str, action_id: str, reason: str) -> str:
        handle = self._handles.get(run_id)
        if handle is None:
            return "not running here"
        if action_id and action_id != "0":
            if handle.run.abort_action(action_id, reason):
                log.info("aborting action %s of run %s: %s", action_id, run_id, reason)
                return "aborted"
            return "not done: the action has no attempt running (it ended, or has not started)"
        log.info("aborting run %s: %s", run_id, reason)
        handle.cancel()
        return "cancelled"


class _Tee:
    """The run's log sink, passing every piece of output on to the server's reports too, with its byte offset.

    Output may be appended from another thread (a backend's worker thread); it is reported from the event loop.
    """

    def __init__(self, sink: LogSink, run_id: str, reports: RunReports) -> None:
        self._sink = sink
        self._run_id = run_id
        self._reports = reports
        self._offsets: dict[tuple[str, int], int] = {}
        self._lock = threading.Lock()
        self._loop = asyncio.get_running_loop()
        self._loop_thread = threading.get_ident()

    def append(self, action_id: str, attempt: int, data: str | bytes, stream: Stream = "out") -> None:
        self._sink.append(action_id, attempt, data, stream)
        chunk = data.encode() if isinstance(data, str) else data
        if not chunk:
            return
        with self._lock:
            offset = self._offsets.get((action_id, attempt), 0)
            self._offsets[(action_id, attempt)] = offset + len(chunk)
        if threading.get_ident() == self._loop_thread:
            self._reports.logs(self._run_id, action_id, attempt, offset, chunk)
        else:
            self._loop.call_soon_threadsafe(self._reports.logs, self._run_id, action_id, attempt, offset, chunk)

    def read(self, action_id: str, attempt: int) -> bytes:
        return self._sink.read(action_id, attempt)


def _names(entries: tuple[str, ...]) -> list[str]:
    """The backend names of ``[serve] backends`` (``NAME`` or ``NAME=module:factory``)."""
    return [entry.partition("=")[0].strip() for entry in entries]
