"""Completion of run ids (``flytelike runs show <TAB>``, ``logs``, ``rerun``) from the run records.

Its own module: the commands that read the records load it, and neither the SDK nor a task file.
"""

from __future__ import annotations

import click
from click.shell_completion import CompletionItem

from flytelike._config import load_settings
from flytelike._storage import RecordStore

__all__ = ["complete_run_ids"]

_RUN_IDS = 50  # the most recent runs offered


def complete_run_ids(ctx: click.Context, param: click.Parameter, incomplete: str) -> list[CompletionItem]:
    """Ids of recent runs from the records, newest first, with their task and state."""
    try:
        path = load_settings().db_path
        if not path.exists():  # completing never creates an empty records file
            return []
        with RecordStore(path) as store:
            runs = store.runs(limit=_RUN_IDS)
    except Exception:
        return []
    return [CompletionItem(r.id, help=f"{r.task} {r.state.value}") for r in runs if r.id.startswith(incomplete)]
