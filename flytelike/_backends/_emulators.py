"""Where a running emulator (``flytelike emulator kubernetes|batch``) says it is, so that ``--with kubernetes`` or
``--with batch`` finds it when nothing else is configured.

An emulator writes ``$FLYTELIKE_HOME/emulators/<kind>.json`` while it runs (how to reach it, and the command its
pods or jobs run the entrypoint with: its own interpreter, since they are processes of this machine) and removes
it when it stops. A backend uses it only when no cluster or endpoint is configured at all, and only while that
process is alive.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

__all__ = ["register", "registration_path", "running", "unregister"]


def registration_path(home: Path, kind: str) -> Path:
    return home / "emulators" / f"{kind}.json"


def register(home: Path, kind: str, details: Mapping[str, Any]) -> Path:
    """Say that an emulator of ``kind`` runs in this process; :func:`unregister` the path when it stops."""
    path = registration_path(home, kind)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}")
    tmp.write_text(json.dumps({**details, "pid": os.getpid()}))
    os.replace(tmp, path)
    return path


def unregister(path: Path) -> None:
    """Remove the registration, if it is still this process's."""
    try:
        if json.loads(path.read_text()).get("pid") == os.getpid():
            path.unlink()
    except (OSError, ValueError, AttributeError):
        pass


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def running(home: Path | None, kind: str) -> dict[str, Any] | None:
    """The details of the emulator of ``kind`` registered under ``home``, if its process is alive."""
    if home is None:
        return None
    try:
        details = json.loads(registration_path(home, kind).read_text())
        pid = int(details["pid"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    found: dict[str, Any] | None = details if isinstance(details, dict) and _alive(pid) else None
    return found
