"""Memory limits through cgroup v2, where this process may make child cgroups that have the memory controller.

Each worker gets a cgroup of its own under ``<this process's cgroup>/flytelike-<pid>/``; the processes a task starts
are born in it. A job's limit is the cgroup's ``memory.max`` (with ``memory.oom.group`` set, so the kernel kills the
whole tree, as the watcher would), and a rise of ``oom_kill`` in ``memory.events`` during the job is an
out-of-memory failure. The kernel then enforces the limit exactly, with no polling interval to slip through.

The memory controller must already be enabled for the children of this process's cgroup (``memory`` listed in its
``cgroup.subtree_control``): a cgroup that holds processes cannot enable it for its children itself. Where that is
not so (cgroup v1 machines, containers without delegation), :meth:`CgroupMemory.detect` returns None and the pool
falls back to the resident-memory watcher of :mod:`flytelike._backends.local._memory`.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

__all__ = ["CgroupMemory"]

_MOUNTS = "/proc/self/mountinfo"
_OWN = "/proc/self/cgroup"


class CgroupMemory:
    """The cgroup that holds the pool's workers: ``base`` is this process's own cgroup."""

    def __init__(self, base: Path, *, name: str | None = None) -> None:
        self.base = base
        self.root = base / (name or f"flytelike-{os.getpid()}")

    @classmethod
    def detect(cls, *, mounts: str = _MOUNTS, own: str = _OWN, name: str | None = None) -> CgroupMemory | None:
        """The pool's cgroup, made now, if this machine lets this process limit its children's memory."""
        base = _own_cgroup(mounts, own)
        if base is None:
            return None
        try:
            if "memory" not in (base / "cgroup.subtree_control").read_text().split():
                return None
            found = cls(base, name=name)
            found.root.mkdir(exist_ok=True)
            (found.root / "cgroup.subtree_control").write_text("+memory")
            if not (found.root / "memory.max").exists():
                found.close()
                return None
        except OSError:
            return None
        return found

    def adopt(self, pid: int, name: str) -> Path | None:
        """Move process ``pid`` (a worker) into a cgroup of its own; None if that fails."""
        group = self.root / name
        try:
            group.mkdir(exist_ok=True)
            (group / "memory.oom.group").write_text("1")
            (group / "cgroup.procs").write_text(str(pid))
        except OSError:
            with contextlib.suppress(OSError):
                group.rmdir()
            return None
        return group

    @staticmethod
    def limit(group: Path, limit: int) -> None:
        """Hold the group to ``limit`` bytes; 0 lifts the limit."""
        (group / "memory.max").write_text(str(limit) if limit > 0 else "max")
        with contextlib.suppress(OSError):
            (group / "memory.swap.max").write_text("0" if limit > 0 else "max")

    @staticmethod
    def oom_kills(group: Path) -> int:
        try:
            for line in (group / "memory.events").read_text().splitlines():
                key, _, value = line.partition(" ")
                if key == "oom_kill":
                    return int(value)
        except (OSError, ValueError):
            pass
        return 0

    @staticmethod
    def usage(group: Path) -> int:
        """Bytes the group uses now (``memory.current``)."""
        try:
            return int((group / "memory.current").read_text())
        except (OSError, ValueError):
            return 0

    @staticmethod
    def release(group: Path) -> None:
        """Remove a worker's group once its processes are gone."""
        with contextlib.suppress(OSError):
            group.rmdir()

    def close(self) -> None:
        for group in self.root.glob("*/"):
            self.release(group)
        with contextlib.suppress(OSError):
            self.root.rmdir()


def _own_cgroup(mounts: str, own: str) -> Path | None:
    """This process's cgroup v2 directory, from the unified hierarchy's mount point and ``0::<path>``."""
    try:
        relative = next(
            (line[3:].strip() for line in Path(own).read_text().splitlines() if line.startswith("0::")), None
        )
        if relative is None:
            return None
        for line in Path(mounts).read_text().splitlines():
            left, _, right = line.partition(" - ")
            fields = left.split()
            if right.split()[:1] == ["cgroup2"] and len(fields) > 4:
                # mountinfo field 4 is the mount's root inside the hierarchy, field 5 where it is mounted.
                mount_root, mount_point = fields[3], fields[4]
                inner = os.path.relpath(relative, mount_root) if relative.startswith(mount_root) else None
                if inner is None or inner.startswith(".."):
                    continue
                path = Path(mount_point) / inner
                return path if path.is_dir() else None
    except (OSError, IndexError):
        return None
    return None
