"""The run source of ``flytelike serve``: runs executed by a :class:`~flytelike._runtime.Runtime`, as local runs are.

Each run starts from its root template, literal inputs and bundle digest (``Runtime.start_template``): the user's
code is never imported here. The run's events are reported as they happen; an attempt's output is reported when
the action ends (from what the runtime kept of it).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from types import TracebackType

import anyio
import anyio.abc

from flytelike._backends import BackendInput
from flytelike._config import Settings
from flytelike._executor import ActionState, Backend
from flytelike._proto.remote.v1 import runs_pb2
from flytelike._remote._source import RunReports
from flytelike._run_handle import RunHandle
from flytelike._runtime import Runtime, TemplateRunInput
from flytelike.errors import CancelledError, FlytelikeError

__all__ = ["RuntimeRunSource"]

log = logging.getLogger("flytelike.serve")


class RuntimeRunSource:
    """Runs on one Runtime; an async context manager.

    Args:
        settings: the server's settings (store, backends' sections).
        platform: the platform of tasks without one (the run's own ``platform`` wins).
        backends: backend factories by platform name beside the built-in ones.
    """

    def __init__(
        self,
        settings: Settings,
        *,
        platform: str,
        backends: Mapping[str, Callable[[BackendInput], Backend]] | None = None,
    ) -> None:
        self._runtime = Runtime(settings=settings, backends=backends)
        self._platform = platform
        self._handles: dict[str, RunHandle] = {}
        self._tg: anyio.abc.TaskGroup | None = None

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
        # Runs still going are cancelled (recorded as aborted), and their followers report that before the end.
        self._runtime.cancel()
        try:
            if tg is not None:
                await tg.__aexit__(None, None, None)
        finally:
            await self._runtime.__aexit__(None, None, None)

    async def start(self, run_id: str, request: runs_pb2.CreateRunRequest, reports: RunReports) -> None:
        if self._tg is None:
            raise RuntimeError("RuntimeRunSource used outside `async with`")
        root = next(c for c in request.tasks if f"{c.template.id.name}@{c.template.id.version}" == request.root)
        handle = await self._runtime.start_template(
            TemplateRunInput(
                template=root.template.SerializeToString(deterministic=True),
                inputs=request.inputs,
                bundle=request.bundle_digest,
                module=root.module,
                platform=request.platform or self._platform,
                labels=dict(request.labels),
            )
        )
        self._handles[run_id] = handle
        # Subscribed before anything can happen on the loop: the first event is not missed.
        events = handle.events()
        reports.running(run_id)
        self._tg.start_soon(self._follow, run_id, handle, events, reports)

    async def _follow(self, run_id: str, handle: RunHandle, events: object, reports: RunReports) -> None:
        actions = handle.actions()
        async for event in events:  # type: ignore[attr-defined]
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
            if record is not None and ActionState(event.state).done and record.logs:
                reports.logs(run_id, event.action, max(record.attempts, 1), 0, "".join(record.logs).encode())
        try:
            outputs = await handle.result()
        except CancelledError as e:
            reports.finished(run_id, "aborted", error=str(e))
        except FlytelikeError as e:
            reports.finished(run_id, "failed", error=str(e))
        else:
            reports.finished(run_id, "succeeded", outputs=outputs)
        finally:
            self._handles.pop(run_id, None)

    async def abort(self, run_id: str, action_id: str, reason: str) -> str:
        handle = self._handles.get(run_id)
        if handle is None:
            return "not running here"
        if action_id and action_id != "0":
            return "not done: this server aborts whole runs only (abort the run)"
        log.info("aborting run %s: %s", run_id, reason)
        handle.cancel()
        return "cancelled"
