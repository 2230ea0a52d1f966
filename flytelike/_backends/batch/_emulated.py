"""A running ``flytelike emulator batch``, as the backend finds it (see :mod:`flytelike._backends._emulators`)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from flytelike._backends import _emulators

__all__ = ["BatchEmulatorInfo", "register", "running_emulator", "unregister"]

KIND = "batch"
unregister = _emulators.unregister


@dataclass(frozen=True, slots=True)
class BatchEmulatorInfo:
    """How to reach a running Batch emulator, and the entrypoint command of its jobs."""

    endpoint_url: str
    region: str
    queue: str
    access_key_id: str
    secret_access_key: str
    entrypoint: tuple[str, ...]


def register(home: Path, info: BatchEmulatorInfo) -> Path:
    """Say that an emulator runs in this process; :func:`unregister` the returned path when it stops."""
    details = {
        "endpoint_url": info.endpoint_url,
        "region": info.region,
        "queue": info.queue,
        "access_key_id": info.access_key_id,
        "secret_access_key": info.secret_access_key,
        "entrypoint": list(info.entrypoint),
    }
    return _emulators.register(home, KIND, details)


def running_emulator(home: Path | None) -> BatchEmulatorInfo | None:
    details = _emulators.running(home, KIND)
    if details is None:
        return None
    try:
        return BatchEmulatorInfo(
            str(details["endpoint_url"]),
            str(details["region"]),
            str(details["queue"]),
            str(details["access_key_id"]),
            str(details["secret_access_key"]),
            tuple(str(a) for a in details["entrypoint"]),
        )
    except (KeyError, TypeError):
        return None
