"""Named points where a controller can be made to die at once, for tests of what a restart recovers.

``FLYTELIKE_CRASH_AT=POINT:KEY`` (read once, at import) makes the process kill itself with SIGKILL the first time
it reaches ``crash_point(POINT, KEY)``: no cleanup runs, as when the machine or the OOM killer ends a server. The
points are the moments of an attempt's life a restart must get right: ``intent`` (recorded, nothing started),
``created`` (the pod or job exists), ``recorded`` (an event committed, with ``ACTION/STATE`` as its key). Without
the variable, a crash point is one comparison.
"""

from __future__ import annotations

import os
import signal

__all__ = ["crash_point"]

_AT = os.environ.get("FLYTELIKE_CRASH_AT", "")


def crash_point(point: str, key: str) -> None:
    """Die here (SIGKILL) if ``FLYTELIKE_CRASH_AT`` names ``point:key``."""
    if _AT and f"{point}:{key}" == _AT:
        os.kill(os.getpid(), signal.SIGKILL)
