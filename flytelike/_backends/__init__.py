"""Backends run action attempts: in this process, in a warm child process, in a pod, or as a Batch job.

Each is a package loaded by name on first use (:func:`load_backend`), so optional dependencies (the Kubernetes
client, aioboto3) are imported only by runs that use them. A backend package offers ``from_input(BackendInput)``.
"""

from __future__ import annotations

import functools
import importlib
from collections.abc import Callable

from flytelike._backends._input import BackendInput, InProcess
from flytelike._executor import Backend
from flytelike.errors import BackendError

__all__ = ["KNOWN_BACKENDS", "BackendInput", "InProcess", "load_backend"]

KNOWN_BACKENDS = ("local", "kubernetes", "batch")


@functools.cache
def load_backend(name: str) -> Callable[[BackendInput], Backend]:
    """The factory of backend ``name``.

    Raises:
        BackendError: no such backend, or it is not available in this installation.
    """
    if name not in KNOWN_BACKENDS:
        raise BackendError(f"no backend named {name!r}; known: {', '.join(KNOWN_BACKENDS)}")
    try:
        module = importlib.import_module(f"flytelike._backends.{name}")
    except ModuleNotFoundError as e:
        missing = e.name or name
        raise BackendError(f"no {name} backend is available in this installation ({missing} is missing)") from None
    factory: Callable[[BackendInput], Backend] = module.from_input
    return factory
