"""What the backends whose tasks run in another process share: the blob store, code bundles, the controller's
service for tasks calling back, and the steps of an attempt through ``flytelike-entry`` (design.md §4.3).

Names are loaded on first use: every runtime holds a :class:`RemoteServices`, but a run whose tasks all stay in
this process tree never loads the attempt steps, the controller's side of calls, or the worker messages.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from flytelike._backends._remote._attempt import (
        EntryLaunch,
        entry_args,
        prepare_attempt,
        read_attempt,
        record_verdict,
        stored_outcome,
    )
    from flytelike._backends._remote._services import BundleRef, RemoteServices, module_path

__all__ = [
    "BundleRef",
    "EntryLaunch",
    "RemoteServices",
    "entry_args",
    "module_path",
    "prepare_attempt",
    "read_attempt",
    "record_verdict",
    "stored_outcome",
]

_MODULES = {
    "BundleRef": "_services",
    "RemoteServices": "_services",
    "module_path": "_services",
    "EntryLaunch": "_attempt",
    "entry_args": "_attempt",
    "prepare_attempt": "_attempt",
    "read_attempt": "_attempt",
    "record_verdict": "_attempt",
    "stored_outcome": "_attempt",
}


def __getattr__(name: str) -> Any:
    module = _MODULES.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{module}"), name)
