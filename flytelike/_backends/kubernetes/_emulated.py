"""Where a running ``flytelike emulator kubernetes`` says it is, so ``--with kubernetes`` finds it with nothing set.

The emulator writes ``$FLYTELIKE_HOME/emulators/kubernetes.json`` while it runs (its kubeconfig, the command its
pods run the entrypoint with, and its process id) and removes it when it stops. The backend uses it only when no
cluster is configured at all, and only while that process is alive.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

__all__ = ["Emulator", "register", "registration_path", "running_emulator", "unregister"]


@dataclass(frozen=True, slots=True)
class Emulator:
    """A running emulator: its kubeconfig and the entrypoint command of its pods."""

    kubeconfig: str
    entrypoint: tuple[str, ...]
    pid: int


def registration_path(home: Path) -> Path:
    return home / "emulators" / "kubernetes.json"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def running_emulator(home: Path | None) -> Emulator | None:
    """The emulator registered under ``home``, if its process is alive and its kubeconfig exists."""
    if home is None:
        return None
    try:
        data = json.loads(registration_path(home).read_text())
        found = Emulator(str(data["kubeconfig"]), tuple(str(a) for a in data["entrypoint"]), int(data["pid"]))
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if not _alive(found.pid) or not Path(found.kubeconfig).is_file():
        return None
    return found


def register(home: Path, kubeconfig: Path, entrypoint: tuple[str, ...]) -> Path:
    """Say that an emulator runs in this process (see the module's docstring); remove the file when it stops."""
    path = registration_path(home)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}")
    tmp.write_text(json.dumps({"kubeconfig": str(kubeconfig), "entrypoint": list(entrypoint), "pid": os.getpid()}))
    os.replace(tmp, path)
    return path


def unregister(path: Path) -> None:
    """Remove the registration, if it is still this process's."""
    try:
        if json.loads(path.read_text()).get("pid") == os.getpid():
            path.unlink()
    except (OSError, ValueError, AttributeError):
        pass
