"""The parts of ``flytelike-entry`` (:mod:`flytelike.entry`) beyond the task's execution itself, which is the
worker's (:mod:`flytelike._worker`): moving a task's calls, files and large values through the store."""

from flytelike._entry._refs import INLINE_BYTES, RefChannel

__all__ = ["INLINE_BYTES", "RefChannel"]
