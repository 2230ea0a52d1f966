"""Where a run stood when the server running it stopped, read from its recorded events.

A restarted ``flytelike serve`` gives each unfinished run back to its run source with one
:class:`~flytelike._executor.Resumed` per recorded action: the latest state and attempt, the retries spent from
each budget, the memory escalations, and a final failure's error. The executor goes on from there.
"""

from __future__ import annotations

from collections.abc import Iterable

from flytelike._executor import ActionState, Resumed
from flytelike._proto.remote.v1 import runs_pb2

__all__ = ["resume_points"]

_SYSTEM_KINDS = frozenset({"system", "infra"})


def resume_points(events: Iterable[runs_pb2.Event]) -> tuple[dict[str, Resumed], int]:
    """Each action's :class:`Resumed` from its events (in recorded order), and the last seq of the run's source.

    Example:
        >>> events = [
        ...     runs_pb2.Event(seq=1, action_id="0", state="queued", attempt=0),
        ...     runs_pb2.Event(seq=2, action_id="0", state="running", attempt=1),
        ...     runs_pb2.Event(seq=3, action_id="0", state="retrying", attempt=1, kind="oom"),
        ...     runs_pb2.Event(seq=4, action_id="0", state="running", attempt=2),
        ... ]
        >>> points, last = resume_points(events)
        >>> points["0"].state.value, points["0"].attempt, points["0"].user_retries, points["0"].oom_retries, last
        ('running', 2, 1, 1, 4)
    """
    latest: dict[str, runs_pb2.Event] = {}
    spent: dict[str, list[int]] = {}  # user, system, oom
    last_seq = 0
    for event in events:
        last_seq = max(last_seq, event.seq)
        latest[event.action_id] = event
        if event.state == ActionState.RETRYING.value:
            counts = spent.setdefault(event.action_id, [0, 0, 0])
            if event.kind in _SYSTEM_KINDS:
                counts[1] += 1
            else:
                counts[0] += 1
                counts[2] += event.kind == "oom"
    points = {}
    for action_id, event in latest.items():
        user, system, oom = spent.get(action_id, (0, 0, 0))
        points[action_id] = Resumed(
            ActionState(event.state),
            event.attempt,
            user_retries=user,
            system_retries=system,
            oom_retries=oom,
            error=event.reason,
            kind=event.kind,
        )
    return points, last_seq
