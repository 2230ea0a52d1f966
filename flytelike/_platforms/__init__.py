"""Platform settings: where a task runs (Kubernetes, AWS Batch, this machine) and how, beyond its Resources.

A task with a platform always runs there; a task with only ``Resources`` runs wherever the run sends it. Every
field defaults to ``None`` (unset), so an overlay can tell what was really given: attributes a task sets win over
``--with``, while resources named on both sides take the larger value.

Example:
    >>> import flytelike as fl
    >>> fl.Batch(cpu=4, memory=8000, queue="gpu").resources()
    Resources(cpu='4', memory='8000Mi')
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from flytelike._platforms._common import Platform, _bool

if TYPE_CHECKING:
    from flytelike._platforms._batch import Batch
    from flytelike._platforms._kubernetes import Kubernetes, Toleration

__all__ = ["PLATFORM_NAMES", "Batch", "Kubernetes", "Local", "Platform", "Toleration", "platform_class"]

# Kubernetes and Batch (large, validated dataclasses) are defined in modules of their own, imported on first use:
# most runs never name them, and building their classes costs start-up time.
_LAZY = {
    "Kubernetes": "flytelike._platforms._kubernetes",
    "Toleration": "flytelike._platforms._kubernetes",
    "Batch": "flytelike._platforms._batch",
}
# What --with NAME selects, and the class attribute each class is found under.
_CLASSES = {"kubernetes": "Kubernetes", "batch": "Batch", "local": "Local"}
PLATFORM_NAMES = tuple(_CLASSES)


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def platform_class(name: str) -> type[Platform] | None:
    """The platform class ``--with NAME`` selects (``kubernetes``, ``batch``, ``local``), or None."""
    attribute = _CLASSES.get(name)
    if attribute is None:
        return None
    cls: type[Platform] = globals()[attribute] if attribute in globals() else __getattr__(attribute)
    return cls


@dataclass(frozen=True, slots=True, repr=False)
class Local(Platform):
    """Run on this machine: in-process by default, or isolated in a child process.

    ``process=True`` gives the task its own process, where its memory limit is enforced and cpu/GPU visibility
    is set.

    Example:
        >>> import flytelike as fl
        >>> fl.Local(process=True).process
        True
    """

    name: ClassVar[str] = "local"

    process: bool | None = None

    def __post_init__(self) -> None:
        if self.process is not None:
            _bool(self.process, "Local.process")
