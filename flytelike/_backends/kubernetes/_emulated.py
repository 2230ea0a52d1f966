"""A running ``flytelike emulator kubernetes``, as the backend finds it (see :mod:`flytelike._backends._emulators`)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from flytelike._backends import _emulators

__all__ = ["Emulator", "register", "registration_path", "running_emulator", "unregister"]

KIND = "kubernetes"
unregister = _emulators.unregister


@dataclass(frozen=True, slots=True)
class Emulator:
    """A running emulator: its kubeconfig and the entrypoint command of its pods."""

    kubeconfig: str
    entrypoint: tuple[str, ...]
    pid: int


def registration_path(home: Path) -> Path:
    return _emulators.registration_path(home, KIND)


def register(home: Path, kubeconfig: Path, entrypoint: tuple[str, ...]) -> Path:
    """Say that an emulator runs in this process; :func:`unregister` the returned path when it stops."""
    return _emulators.register(home, KIND, {"kubeconfig": str(kubeconfig), "entrypoint": list(entrypoint)})


def running_emulator(home: Path | None) -> Emulator | None:
    """The emulator registered under ``home``, if its process is alive and its kubeconfig exists."""
    details = _emulators.running(home, KIND)
    if details is None:
        return None
    try:
        found = Emulator(str(details["kubeconfig"]), tuple(str(a) for a in details["entrypoint"]), int(details["pid"]))
    except (KeyError, TypeError, ValueError):
        return None
    return found if Path(found.kubeconfig).is_file() else None
