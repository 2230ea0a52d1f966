"""flytelike: typed async tasks that declare their compute once and run anywhere.

Declare what a task needs with :class:`Resources` (and :class:`GPU`, :class:`TPU`, :class:`Device`), group tasks
in a :class:`TaskEnvironment`, and run them locally, on Kubernetes or on AWS Batch without changing code.

Example:
    >>> import flytelike as fl
    >>> env = fl.TaskEnvironment(name="hello", resources=fl.Resources(cpu=1, memory="1Gi"))
    >>> @env.task
    ... async def greet(name: str) -> str:
    ...     return f"hello {name}"
"""

from __future__ import annotations

import importlib as _importlib

from flytelike import errors
from flytelike._version import __version__
from flytelike.errors import SpecError

# Not typing's: typing costs `flytelike runs` and `flytelike --version`, which import this package, a sixth of their
# time. Type checkers take any TYPE_CHECKING as true.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any as _Any

    from flytelike._accelerators import GPU, TPU, Device, DeviceClass, DeviceSpec, catalog, register_device
    from flytelike._context import TaskContext, ctx, group
    from flytelike._environment import TaskEnvironment
    from flytelike._files import Dir, File
    from flytelike._map import map
    from flytelike._platform_spec import parse_platform_spec
    from flytelike._platforms import Batch, Kubernetes, Local, Platform, Toleration
    from flytelike._policies import Cache, RetryPolicy, ReusePolicy, Secret, Timeout
    from flytelike._quantity import Quantity
    from flytelike._remote._api import Remote
    from flytelike._resources import Amount, Resources
    from flytelike._runner import RunHandle, Runner, run, run_async
    from flytelike._task import Task


# Every name is loaded on first use, so that whatever imports the package without needing the SDK model or the
# runtime (the `flytelike` command and its --help, `flytelike runs`, a worker, `flytelike.errors`) does not pay
# for them: the model costs tens of milliseconds, running (executor, protobuf, anyio) more.
_EXPORTS = {
    "_accelerators": ("GPU", "TPU", "Device", "DeviceClass", "DeviceSpec", "catalog", "register_device"),
    "_context": ("TaskContext", "ctx", "group"),
    "_environment": ("TaskEnvironment",),
    "_files": ("Dir", "File"),
    "_map": ("map",),
    "_platform_spec": ("parse_platform_spec",),
    "_platforms": ("Batch", "Kubernetes", "Local", "Platform", "Toleration"),
    "_policies": ("Cache", "RetryPolicy", "ReusePolicy", "Secret", "Timeout"),
    "_quantity": ("Quantity",),
    "_remote._api": ("Remote",),
    "_resources": ("Amount", "Resources"),
    "_runner": ("RunHandle", "Runner", "run", "run_async"),
    "_task": ("Task",),
}
_LAZY = {name: f"flytelike.{module}" for module, names in _EXPORTS.items() for name in names}


def __getattr__(name: str) -> _Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'flytelike' has no attribute {name!r}")
    value = getattr(_importlib.import_module(module), name)
    globals()[name] = value
    return value


del TYPE_CHECKING


def __dir__() -> list[str]:
    return sorted(__all__)


__all__ = [
    "GPU",
    "TPU",
    "Amount",
    "Batch",
    "Cache",
    "Device",
    "DeviceClass",
    "DeviceSpec",
    "Dir",
    "File",
    "Kubernetes",
    "Local",
    "Platform",
    "Quantity",
    "Remote",
    "Resources",
    "RetryPolicy",
    "ReusePolicy",
    "RunHandle",
    "Runner",
    "Secret",
    "SpecError",
    "Task",
    "TaskContext",
    "TaskEnvironment",
    "Timeout",
    "Toleration",
    "__version__",
    "catalog",
    "ctx",
    "errors",
    "group",
    "map",
    "parse_platform_spec",
    "register_device",
    "run",
    "run_async",
]
