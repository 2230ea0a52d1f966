"""Running tasks: ``fl.run`` (blocking), ``fl.run_async`` and the :class:`Runner` they use.

A run executes on this machine by default, with no server and no account. ``platform`` (the ``--with`` option of
the CLI) sends every task without a platform of its own to that platform.

Example:
    >>> import flytelike as fl
    >>> env = fl.TaskEnvironment(name="doc-run")
    >>> @env.task
    ... async def square(x: int) -> int:
    ...     return x * x
    >>> @env.task
    ... async def total(n: int = 3) -> int:
    ...     import asyncio
    ...     return sum(await asyncio.gather(*(square(i) for i in range(n))))
    >>> fl.run(total, n=4).outputs
    14
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine, Mapping
from typing import Any

import anyio

from flytelike._config import ResourcePolicy, Settings
from flytelike._platforms import Platform
from flytelike._run_context import RunContext
from flytelike._runtime import RunHandle, Runtime
from flytelike._task import Task
from flytelike.errors import FlytelikeError

__all__ = ["RunHandle", "Runner", "run", "run_async"]


class Runner:
    """Runs tasks with a set of options, each run in a :class:`~flytelike._runtime.Runtime` of its own.

    Args:
        platform: a platform (``"kubernetes"``, ``"batch:queue=q"`` or a platform object) for every task that
            has none; ``None`` runs them on this machine.
        local_resources: how local runs treat Resources (``check``, ``strict`` or ``ignore``); default from the
            configuration (``[local] resources``).
        settings: resolved settings; default: read from the configuration files and environment.
        progress: an async function given the run's handle while it executes (the CLI's progress view); it is
            cancelled when the run ends.
        context: run-scoped defaults; usually made by :meth:`with_context`.
    """

    def __init__(
        self,
        *,
        platform: Platform | str | None = None,
        local_resources: ResourcePolicy | None = None,
        settings: Settings | None = None,
        progress: Callable[[RunHandle], Coroutine[Any, Any, None]] | None = None,
        context: RunContext | None = None,
    ) -> None:
        self.progress = progress
        self.context = context
        # Built now so that a bad platform or setting fails here, before any run.
        self._runtime_args: dict[str, Any] = {
            "platform": platform,
            "local_resources": local_resources,
            "context": context,
        }
        self._probe = Runtime(settings=settings, **self._runtime_args)
        self.settings = self._probe.settings
        self.platform = self._probe.platform
        self.local_resources: ResourcePolicy = local_resources or self.settings.local.resources
        self._active: set[RunHandle] = set()
        self._runtimes: list[Runtime] = []

    def with_context(
        self,
        *,
        name: str | None = None,
        labels: Mapping[str, str] | None = None,
        env_vars: Mapping[str, str] | None = None,
        overwrite_cache: bool = False,
        cache: bool = True,
    ) -> Runner:
        """A runner like this one whose runs have run-scoped defaults (Flyte's ``with_runcontext``).

        Args:
            name: the run id's prefix (``nightly-3f9a2c``) instead of the date and time.
            labels: recorded on each run (``flytelike runs show``).
            env_vars: environment variables for every task of the run; a task's own ``env_vars`` win.
            overwrite_cache: every cached task runs and overwrites its cached result.
            cache: False: no task reads or writes the cache (tests that must run every task).

        Returns:
            A new Runner (this one is unchanged); calling ``with_context`` on it again merges with these.

        Example:
            >>> import flytelike as fl
            >>> env = fl.TaskEnvironment(name="doc-with-context")
            >>> @env.task
            ... async def mode() -> str:
            ...     return fl.ctx().env["MODE"]
            >>> handle = fl.Runner().with_context(name="nightly", env_vars={"MODE": "full"}).run(mode)
            >>> handle.outputs, handle.id.startswith("nightly-")
            ('full', True)
        """
        added = RunContext.build(
            name=name, labels=labels, env_vars=env_vars, overwrite_cache=overwrite_cache, cache=cache
        )
        return Runner(
            platform=self.platform,
            local_resources=self._runtime_args["local_resources"],
            settings=self.settings,
            progress=self.progress,
            context=self.context.merged(added) if self.context is not None else added,
        )

    @property
    def threads_running(self) -> int:
        """Sync tasks of this runner's runs that still run in threads after their run ended (timed out or
        cancelled; a thread cannot be interrupted)."""
        return sum(r.threads_running for r in self._runtimes)

    def cancel(self) -> None:
        """Cancel the runs this runner is executing: every running action stops and each run is recorded as
        aborted (their ``run_async`` raises CancelledError). Call it from the event loop the runs execute on."""
        for handle in list(self._active):
            handle.cancel()

    def run(self, task: Task[..., Any], /, *args: Any, **inputs: Any) -> RunHandle:
        """Run ``task`` to completion and return its handle; raises the task's error if it failed.

        Raises:
            FlytelikeError: called inside a running event loop (an async function or test): await ``run_async``
                there.
        """
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return anyio.run(lambda: self.run_async(task, *args, **inputs))
        raise FlytelikeError(
            "fl.run() was called inside a running event loop (an async function or an async test), which it would "
            "block: use `await fl.run_async(task, ...)` (or `await runner.run_async(...)`) there"
        )

    async def run_async(self, task: Task[..., Any], /, *args: Any, **inputs: Any) -> RunHandle:
        """As :meth:`run`, from inside an event loop."""
        runtime = Runtime(settings=self.settings, **self._runtime_args)
        self._runtimes = [r for r in self._runtimes if r.threads_running] + [runtime]
        async with runtime:
            handle = await runtime.start(task, *args, **inputs)
            self._active.add(handle)
            try:
                async with anyio.create_task_group() as tg:
                    if self.progress is not None:
                        tg.start_soon(self.progress, handle)
                    try:
                        await handle.result()
                    except Exception:  # raised below, outside the task group, unwrapped
                        pass
                    finally:
                        tg.cancel_scope.cancel()
            finally:
                self._active.discard(handle)
        handle.outputs  # noqa: B018  (raises the run's error)
        return handle


def run(task: Task[..., Any], /, *args: Any, **inputs: Any) -> RunHandle:
    """Run a task on this machine (no server, no account) and wait for it.

    Raises:
        TaskFailedError: the task failed (after its retries); the error names the task, action and attempt.
        AdmissionError: a task can never fit this machine (nothing was started).
    """
    return Runner().run(task, *args, **inputs)


async def run_async(task: Task[..., Any], /, *args: Any, **inputs: Any) -> RunHandle:
    """As :func:`run`, from inside an event loop."""
    return await Runner().run_async(task, *args, **inputs)
