"""The control plane's own records: runs, actions, events, aborts and logs, on SQLite or PostgreSQL."""

from __future__ import annotations

from flytelike._remote._state._database import ServerState
from flytelike._remote._state._rows import (
    TERMINAL_RUN_STATES,
    Abort,
    NewRun,
    RunFilter,
    database_url,
    safe_url,
)

__all__ = ["TERMINAL_RUN_STATES", "Abort", "NewRun", "RunFilter", "ServerState", "database_url", "safe_url"]
