"""Whether a run recorded as queued or running is still going: the process recorded for it may be gone.

Readers (``flytelike runs``, ``runs show``) use this to report a run whose process died without recording its
end (killed, out of memory, machine lost) as ``lost`` instead of ``running`` forever.

A run is lost when it is recorded as queued or running and
- its heartbeat (the last time its process was seen alive) is older than ``LOST_AFTER`` seconds, on any host; or
- it was started on this host (:func:`this_host`) and its pid is gone: no such process, a zombie, or a
  process that started after the run did (the pid was reused by another program).
A run with neither pid nor heartbeat (written by an older flytelike) cannot be judged and keeps its state.
"""

from __future__ import annotations

import os

# Free of the records' classes (dataclasses cost more than `flytelike runs` may take): a run is judged from its
# stored values, so a reader of raw rows judges it the same way.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from flytelike._executor._model import RunRecord

__all__ = ["LOST_AFTER", "UNFINISHED_RUN", "is_lost", "lost", "process_gone", "this_host"]

# A run whose heartbeat is older than this (seconds) is reported lost, on any host.
LOST_AFTER = 30.0
# The stored states (RunState values) of a run that may be lost: those of a run not yet ended.
UNFINISHED_RUN = frozenset({"queued", "running"})

# A process that started this long (seconds) after the run it is recorded for is another process that reused the
# pid. Generous, because the wall clock may have been stepped forward since the run started.
_PID_REUSE_SLACK = 60.0


def this_host() -> str:
    """This machine's name, as ``socket.gethostname()`` (which runs record) returns it: on POSIX both are the
    kernel's node name, and importing socket would cost ``flytelike runs`` a tenth of its time."""
    return os.uname().nodename


def _linux_process(pid: int) -> tuple[str, float] | None:
    """State letter and start time (epoch seconds) of a process, from /proc; None where /proc cannot say."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as f:
            stat = f.read()
        with open("/proc/stat", encoding="ascii", errors="replace") as f:
            boot = next(float(line.split()[1]) for line in f if line.startswith("btime "))
        # The command name (field 2) is in parentheses and may itself contain spaces and parentheses.
        fields = stat[stat.rindex(")") + 2 :].split()
        return fields[0], boot + int(fields[19]) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError, StopIteration):
        return None


def process_gone(pid: int, *, since: float) -> bool:
    """Whether the process ``pid`` of this host, which was running at ``since`` (epoch seconds), has ended.

    A pid that exists is still gone if it is a zombie (ended, not yet reaped) or belongs to a process that
    started after ``since`` (the pid was reused).
    """
    if pid <= 0:  # 0 and negative pids address process groups, not a process
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        pass  # it exists, owned by another user
    except OSError:
        return False  # cannot tell; never call a run lost on a guess
    seen = _linux_process(pid)
    if seen is None:
        return False
    state, started = seen
    return state in ("Z", "X") or started > since + _PID_REUSE_SLACK


def lost(
    state: str, heartbeat: float | None, pid: int | None, run_host: str, created: float, *, host: str, now: float
) -> bool:
    """Whether a run stored with these values is lost, judged at ``now`` (epoch seconds) by a reader on ``host``."""
    if state not in UNFINISHED_RUN:
        return False
    if heartbeat is not None and now - heartbeat > LOST_AFTER:
        return True
    return pid is not None and bool(run_host) and run_host == host and process_gone(pid, since=created)


def is_lost(run: RunRecord, host: str, now: float) -> bool:
    """Whether ``run`` as stored is lost, judged at ``now`` (epoch seconds) by a reader on ``host``."""
    return lost(run.state, run.heartbeat, run.pid, run.host, run.created, host=host, now=now)
