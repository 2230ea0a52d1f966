"""The task object made by ``@env.task``.

Outside a run, calling a task calls its function, so tasks are unit-testable as plain functions. Inside a run,
calling a task creates an action through the current :mod:`flytelike._context` submitter.
"""

from __future__ import annotations

import functools
import inspect
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Generic, ParamSpec, TypeVar

from flytelike import _context
from flytelike._interface import Interface
from flytelike._options import TaskOptions
from flytelike._platforms import Platform
from flytelike._policies import REUSE_OFF, Cache, RetryPolicy, ReusePolicy, Secret, Timeout
from flytelike._resources import Resources
from flytelike.errors import SpecError

if TYPE_CHECKING:
    from flytelike._environment import TaskEnvironment

__all__ = ["Resolved", "Task"]

P = ParamSpec("P")
R = TypeVar("R")

_NO_RETRIES = RetryPolicy(0)
TASK_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,62}")
"""A task name: a Python identifier of at most 63 characters (it becomes part of pod and job names)."""


@dataclass(frozen=True, slots=True)
class Resolved:
    """Everything a task runs with, after env <- task <- override merging and platform combination."""

    image: str | None
    resources: Resources
    platform: Platform | None
    retries: RetryPolicy
    timeout: Timeout | None
    cache: Cache | None
    env_vars: dict[str, str]
    secrets: tuple[Secret, ...]
    reusable: ReusePolicy | None


class Task(Generic[P, R]):
    """A typed unit of work bound to a TaskEnvironment.

    Attributes:
        name: the task's name within its environment.
        env: the environment it belongs to.
        interface: typed inputs and outputs.
        fn: the wrapped function.

    Example:
        >>> import asyncio, flytelike as fl
        >>> env = fl.TaskEnvironment(name="demo")
        >>> @env.task
        ... async def double(x: int) -> int:
        ...     return 2 * x
        >>> asyncio.run(double(21))  # outside a run: a plain function call
        42
    """

    __slots__ = ("__dict__", "env", "fn", "full_name", "interface", "is_async", "name", "options")

    def __init__(
        self,
        fn: Callable[P, R],
        env: TaskEnvironment,
        *,
        name: str,
        options: TaskOptions,
        interface: Interface | None = None,
    ) -> None:
        self.fn = fn
        self.env = env
        self.name = name
        self.options = options
        self.is_async = inspect.iscoroutinefunction(fn)
        #: ``env.task``, unique within a project.
        self.full_name = f"{env.name}.{name}"
        self.interface = interface or Interface.of(fn, task=self.full_name)
        functools.update_wrapper(self, fn)

    def __repr__(self) -> str:
        return f"<Task {self.full_name}>"

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R:
        submitter = _context.current_submitter()
        if submitter is None:
            return self.fn(*args, **kwargs)
        values = self.interface.bind(args, kwargs, task=self.full_name)
        if self.is_async:
            return submitter.submit(self, values)  # type: ignore[return-value]
        if submitter.in_event_loop_thread():
            raise SpecError(
                self.full_name,
                "called from async code",
                "a sync task cannot be called without await from inside an async task (it would block the run)",
                accepted=f"await {self.name}.aio(...)",
            )
        return submitter.submit_blocking(self, values)  # type: ignore[no-any-return]

    def aio(self, *args: P.args, **kwargs: P.kwargs) -> Awaitable[Any]:
        """Call any task (sync or async) and get an awaitable; sync tasks run in a worker thread."""
        submitter = _context.current_submitter()
        if submitter is None:
            if self.is_async:
                return self.fn(*args, **kwargs)  # type: ignore[return-value]
            return _completed(self.fn(*args, **kwargs))
        return submitter.submit(self, self.interface.bind(args, kwargs, task=self.full_name))

    def override(self, **options: Any) -> Task[P, R]:
        """A copy with options replaced field by field (``resources``, ``retries``, ``timeout``, ...).

        ``reusable="off"`` runs the copy in a container of its own rather than in its environment's warm replicas
        (``None`` inherits). A task running in replicas cannot change its ``resources``, ``env_vars`` or
        ``secrets`` unless the same override turns reuse off.

        Example:
            >>> import flytelike as fl
            >>> env = fl.TaskEnvironment(name="demo", resources=fl.Resources(cpu=2))
            >>> @env.task
            ... def f() -> None: ...
            >>> f.override(resources=fl.Resources(memory="1Gi")).resolved().resources
            Resources(cpu='2', memory='1Gi')
        """
        name = options.pop("name", self.name)
        if not isinstance(name, str) or not TASK_NAME.fullmatch(name):
            raise SpecError(f"{self.full_name}.override.name", name, "not a task name", accepted="a Python identifier")
        layer = TaskOptions.build(f"{self.full_name}.override", **options)
        reuse = self.env.options.merge(self.options).reusable
        if isinstance(reuse, ReusePolicy) and layer.reusable != REUSE_OFF:
            changed = [n for n in ("resources", "env_vars", "secrets") if getattr(layer, n) is not None]
            if changed:
                raise SpecError(
                    f"{self.full_name}.override.{changed[0]}",
                    options[changed[0]],
                    f"task {self.full_name} runs in shared warm replicas (reusable=ReusePolicy(...)), which all "
                    f"have the environment's resources, env vars and secrets: an override cannot change its "
                    f"{', '.join(changed)} for one call",
                    accepted=f"{self.name}.override(reusable='off', {changed[0]}=...) to run it in a container of "
                    "its own",
                )
        return Task(self.fn, self.env, name=name, options=self.options.merge(layer), interface=self.interface)

    def resolved(self, with_platform: Platform | None = None) -> Resolved:
        """The settings this task runs with; ``with_platform`` is a run's ``--with`` platform.

        Attributes the task sets win over ``with_platform``, except resources, which take the larger value.

        Raises:
            SpecError: the task is pinned to a different platform than ``with_platform``.
        """
        o = self.env.options.merge(self.options)
        platform = o.platform
        resources = o.resources or Resources()
        if platform is not None:
            resources = resources.combine_max(platform.resources())
        if with_platform is not None:
            if platform is None:
                platform = with_platform
            elif type(platform) is not type(with_platform):
                raise SpecError(
                    self.full_name,
                    f"--with {with_platform.name}",
                    f"task {self.full_name} is pinned to platform {platform.name!r}",
                    accepted=f"--with {platform.name}, or no --with for this run",
                )
            else:
                platform = platform.overlay(with_platform)
            resources = resources.combine_max(with_platform.resources())
        return Resolved(
            # A platform's own image (Metaflow's @batch(image=...)) wins over the environment's.
            image=getattr(platform, "image", None) or o.image,
            resources=resources,
            platform=platform,
            retries=o.retries or _NO_RETRIES,
            timeout=o.timeout,
            cache=o.cache if o.cache is not None and o.cache.enabled else None,
            env_vars=dict(o.env_vars or {}),
            secrets=o.secrets or (),
            reusable=o.reusable if isinstance(o.reusable, ReusePolicy) else None,
        )


async def _completed(value: R) -> R:
    return value
