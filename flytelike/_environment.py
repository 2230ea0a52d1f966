"""TaskEnvironment: the defaults a group of tasks share, and the ``@env.task`` decorator.

Example:
    >>> import flytelike as fl
    >>> env = fl.TaskEnvironment(name="training", resources=fl.Resources(cpu=2, memory="4Gi"))
    >>> @env.task(retries=3, timeout="2h")
    ... async def train(shard: str, lr: float = 1e-3) -> float:
    ...     return lr
    >>> train.resolved().retries.count, str(train.resolved().resources.memory.request)
    (3, '4Gi')
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any, ParamSpec, TypeVar, overload

from flytelike._options import TaskOptions
from flytelike._platforms import Platform
from flytelike._policies import Cache, RetryPolicy, ReusePolicy, Secret, Timeout
from flytelike._resources import Resources
from flytelike._task import TASK_NAME, Task
from flytelike.errors import SpecError

__all__ = ["TaskEnvironment"]

P = ParamSpec("P")
R = TypeVar("R")

_NAME = re.compile(r"[a-z0-9]([a-z0-9_\-]{0,61}[a-z0-9])?")


class TaskEnvironment:
    """Shared defaults (image, resources, platform, policies) for the tasks declared with ``@env.task``.

    Args:
        name: lowercase letters, digits, ``-`` and ``_`` (it names pods and jobs), at most 63 characters.
        image: container image for remote runs; it must contain flytelike and the tasks' dependencies.
        resources: default Resources of its tasks.
        platform: ``fl.Kubernetes(...)``, ``fl.Batch(...)`` or ``fl.Local(...)`` to pin every task there.
        env_vars: environment variables set for its tasks.
        secrets: secrets its tasks receive.
        cache: ``fl.Cache(...)``, ``True`` or ``"auto"`` to cache outputs by inputs.
        reusable: ``fl.ReusePolicy(...)`` to keep warm replicas.
        depends_on: environments deployed together with this one.
        description: free text shown in listings.
    """

    def __init__(
        self,
        name: str,
        *,
        image: str | None = None,
        resources: Resources | None = None,
        platform: Platform | str | None = None,
        env_vars: Mapping[str, str] | None = None,
        secrets: Iterable[Secret | str] | Secret | str | None = None,
        cache: Cache | bool | str | None = None,
        reusable: ReusePolicy | str | None = None,
        retries: RetryPolicy | int | None = None,
        timeout: Timeout | str | int | None = None,
        depends_on: Iterable[TaskEnvironment] = (),
        description: str | None = None,
    ) -> None:
        if not isinstance(name, str) or not _NAME.fullmatch(name):
            suggestion = re.sub(r"[^a-z0-9_\-]+", "-", str(name).lower())[:63].strip("-_") or "my-env"
            raise SpecError(
                "TaskEnvironment.name",
                name,
                "not a valid environment name",
                accepted=f"lowercase letters, digits, '-' and '_', at most 63 characters, e.g. {suggestion!r}",
            )
        self.name = name
        self.options = TaskOptions.build(
            name,
            image=image,
            resources=resources,
            platform=platform,
            env_vars=env_vars,
            secrets=secrets,
            cache=cache,
            reusable=reusable,
            retries=retries,
            timeout=timeout,
        )
        deps = tuple(depends_on)
        for d in deps:
            if not isinstance(d, TaskEnvironment):
                raise SpecError(f"{name}.depends_on", d, "not a TaskEnvironment", accepted="[other_env]")
        self.depends_on = deps
        if description is not None and not isinstance(description, str):
            raise SpecError(f"{name}.description", description, "must be a string", accepted="'nightly training'")
        self.description = description
        self.tasks: dict[str, Task[..., Any]] = {}

    def __repr__(self) -> str:
        return f"TaskEnvironment(name={self.name!r}, tasks={sorted(self.tasks)})"

    def clone_with(self, name: str, **changes: Any) -> TaskEnvironment:
        """A new environment named ``name``: this one's settings with ``changes`` replacing whole fields.

        Any constructor argument may be changed (``image``, ``resources``, ``env_vars``, ``depends_on`` ...); a
        field given replaces this environment's value rather than merging with it. The clone has no tasks, and
        dependencies added to it later (:meth:`add_dependency`) are its own.

        Raises:
            SpecError: ``name`` is not a valid environment name, or a change is not an environment setting.

        Example:
            >>> import flytelike as fl
            >>> cpu = fl.TaskEnvironment(name="cpu", image="acme/train:1", resources=fl.Resources(cpu=2))
            >>> gpu = cpu.clone_with("gpu", resources=fl.Resources(cpu=2, gpu="T4:1"))
            >>> gpu.name, gpu.image, gpu.resources.gpu_count, gpu.tasks
            ('gpu', 'acme/train:1', 1, {})
        """
        o = self.options
        current: dict[str, Any] = {
            "image": o.image,
            "resources": o.resources,
            "platform": o.platform,
            "env_vars": o.env_vars,
            "secrets": o.secrets,
            "cache": o.cache,
            "reusable": o.reusable,
            "retries": o.retries,
            "timeout": o.timeout,
            "depends_on": self.depends_on,
            "description": self.description,
        }
        if unknown := sorted(set(changes) - set(current)):
            raise SpecError(
                f"{self.name}.clone_with", unknown[0], "not an environment setting", accepted=", ".join(current)
            )
        return TaskEnvironment(name, **{**current, **changes})

    def add_dependency(self, *envs: TaskEnvironment) -> None:
        """Add environments this one depends on (deployed with it, their tasks callable from its tasks).

        Raises:
            SpecError: an argument is not a TaskEnvironment, or is this environment itself.

        Example:
            >>> import flytelike as fl
            >>> base, gpu = fl.TaskEnvironment(name="base"), fl.TaskEnvironment(name="gpu")
            >>> base.add_dependency(gpu)
            >>> [d.name for d in base.depends_on]
            ['gpu']
        """
        added = list(self.depends_on)
        for env in envs:
            if not isinstance(env, TaskEnvironment):
                raise SpecError(
                    f"{self.name}.add_dependency",
                    env,
                    "not a TaskEnvironment",
                    accepted="env.add_dependency(other_env)",
                )
            if env is self:
                raise SpecError(
                    f"{self.name}.add_dependency",
                    env.name,
                    "an environment cannot depend on itself",
                    accepted="another TaskEnvironment",
                )
            if env not in added:
                added.append(env)
        self.depends_on = tuple(added)

    @property
    def image(self) -> str | None:
        return self.options.image

    @property
    def resources(self) -> Resources | None:
        return self.options.resources

    @overload
    def task(self, fn: Callable[P, R], /) -> Task[P, R]: ...

    @overload
    def task(
        self,
        fn: None = None,
        /,
        *,
        name: str | None = None,
        resources: Resources | None = None,
        platform: Platform | str | None = None,
        retries: RetryPolicy | int | None = None,
        timeout: Timeout | str | int | None = None,
        cache: Cache | bool | str | None = None,
        env_vars: Mapping[str, str] | None = None,
        secrets: Iterable[Secret | str] | Secret | str | None = None,
        image: str | None = None,
    ) -> Callable[[Callable[P, R]], Task[P, R]]: ...

    def task(
        self,
        fn: Callable[..., Any] | None = None,
        /,
        *,
        name: str | None = None,
        resources: Resources | None = None,
        platform: Platform | str | None = None,
        retries: RetryPolicy | int | None = None,
        timeout: Timeout | str | int | None = None,
        cache: Cache | bool | str | None = None,
        env_vars: Mapping[str, str] | None = None,
        secrets: Iterable[Secret | str] | Secret | str | None = None,
        image: str | None = None,
    ) -> Any:
        """Declare a task, bare (``@env.task``) or with options (``@env.task(retries=3)``).

        The interface is read from the annotations now, so an unsupported type fails here, not at run time.
        """
        options: dict[str, Any] = {
            "name": name,
            "resources": resources,
            "platform": platform,
            "retries": retries,
            "timeout": timeout,
            "cache": cache,
            "env_vars": env_vars,
            "secrets": secrets,
            "image": image,
        }
        if fn is not None:
            return self._declare(fn, options)
        return lambda f: self._declare(f, options)

    def _declare(self, fn: Callable[P, R], options: dict[str, Any]) -> Task[P, R]:
        if not callable(fn) or isinstance(fn, Task):
            raise SpecError(f"{self.name}.task", fn, "not a function", accepted="a def or async def function")
        if inspect.isasyncgenfunction(fn) or inspect.isgeneratorfunction(fn):
            raise SpecError(f"{self.name}.task", fn.__name__, "generators cannot be tasks", accepted="return a list")
        # A callable object has no __name__: it then needs name=, and gets a SpecError rather than AttributeError.
        name = options.pop("name", None) or getattr(fn, "__name__", None)
        if not isinstance(name, str) or not TASK_NAME.fullmatch(name):
            raise SpecError(f"{self.name}.task.name", name, "not a task name", accepted="a Python identifier")
        if name in self.tasks:
            raise SpecError(
                f"{self.name}.task.name",
                name,
                f"environment {self.name!r} already has a task named {name!r}",
                accepted="a unique name= per environment",
            )
        self._check_unique_in_module(fn, name)
        task = Task(fn, self, name=name, options=TaskOptions.build(f"{self.name}.{name}", **options))
        self.tasks[name] = task
        return task

    def _check_unique_in_module(self, fn: Callable[..., Any], name: str) -> None:
        """Two environments of one name in one module defining the same task would make ``env.task`` name two
        tasks (which one runs would depend on lookup order): refused when the second is defined."""
        scope = getattr(fn, "__globals__", None)
        if not isinstance(scope, dict):
            return
        full = f"{self.name}.{name}"
        for value in list(scope.values()):
            if isinstance(value, TaskEnvironment):
                clash = value is not self and value.name == self.name and name in value.tasks
            elif isinstance(value, Task):
                # A task of an environment the module no longer holds is a cell or file run again (the name is
                # about to be rebound): only another function under the same full name is a clash.
                clash = (
                    value.env is not self
                    and value.full_name == full
                    and getattr(value.fn, "__qualname__", None) != getattr(fn, "__qualname__", None)
                )
            else:
                continue
            if not clash:
                continue
            raise SpecError(
                f"{self.name}.task.name",
                name,
                f"task {full} is already defined in module {fn.__module__!r} by another environment named "
                f"{self.name!r}: the two could not be told apart",
                accepted="one TaskEnvironment per name in a module, or another task name",
            )
