"""Public test helpers: run the remote task path, and the cloud backends' emulators, on one machine.

Nothing here is needed to run tasks; it exists so that the out-of-process path (code bundle, blob store,
entrypoint, controller) can be exercised and tried without a cluster or a cloud account.

The emulators (:class:`KubernetesEmulator`, :class:`BatchEmulator`) need the ``emulators`` extra (aiohttp, moto);
each is imported on first use, so importing this package imports neither.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from flytelike.testing._launcher import Launched, Launcher, LaunchInput, ProcessExit
from flytelike.testing._subprocess import SubprocessBackend

if TYPE_CHECKING:
    from flytelike.testing.batch import BatchEmulator
    from flytelike.testing.kubernetes import KubernetesEmulator

__all__ = [
    "BatchEmulator",
    "KubernetesEmulator",
    "LaunchInput",
    "Launched",
    "Launcher",
    "ProcessExit",
    "SubprocessBackend",
]

# name -> the module that defines it, imported when the name is first used (aiohttp is heavy and optional).
_LAZY = {"BatchEmulator": "flytelike.testing.batch", "KubernetesEmulator": "flytelike.testing.kubernetes"}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
