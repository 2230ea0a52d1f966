"""What the executor keeps about an action only while it runs (beside its record, which outlives it)."""

from __future__ import annotations

import anyio

from flytelike._executor._model import ActionRecord
from flytelike._executor._protocols import Lease
from flytelike._executor._values import Values

__all__ = ["Live", "Submitted"]


class Live:
    """Per-action bookkeeping that only matters while the action runs."""

    __slots__ = ("by_id", "children", "lease", "outstanding", "record")

    def __init__(self, record: ActionRecord) -> None:
        self.record = record
        self.children = 0
        self.outstanding = 0
        self.lease: Lease | None = None
        # Children submitted with their own ids (from another process): id -> finished event and outcome.
        self.by_id: dict[str, Submitted] | None = None


class Submitted:
    __slots__ = ("done", "error", "outputs")

    def __init__(self) -> None:
        self.done = anyio.Event()
        self.outputs: Values | None = None
        self.error: BaseException | None = None
