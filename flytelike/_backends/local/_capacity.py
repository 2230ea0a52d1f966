"""This machine's capacity: cores, memory and GPUs, probed without starting a process where possible.

GPUs are read from ``/proc/driver/nvidia/gpus`` (one folder per device, present wherever the NVIDIA driver is
loaded, containers included). Only when that is missing but ``nvidia-smi`` exists is it run, and its answer is kept
under the flytelike home for the rest of the boot, so a run never pays for a subprocess it already paid for.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from flytelike._backends.local._admission import Request

__all__ = ["Capacity", "probe_gpus"]

_NVIDIA_PROC = Path("/proc/driver/nvidia/gpus")
_BOOT_ID = Path("/proc/sys/kernel/random/boot_id")
_MODEL = re.compile(r"^Model:\s*(.+?)\s*$", re.MULTILINE)


@dataclass(frozen=True, slots=True)
class Capacity:
    """What this machine offers: cores (as millicores), memory in bytes and GPUs."""

    cpu_millis: int
    memory: int
    gpus: int
    gpu_names: tuple[str, ...] = ()

    @classmethod
    def of_this_machine(cls, gpu_names: tuple[str, ...] = ()) -> Capacity:
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
        memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
        return cls(cores * 1000, memory, len(gpu_names), gpu_names)

    def clamp(self, request: Request) -> Request:
        """The part of a request this machine can hold: cpu beyond the cores and absent GPUs run anyway
        (slower, or without GPUs), so they are admitted as the whole machine rather than blocking forever."""
        return Request(
            min(request.cpu_millis, self.cpu_millis), min(request.memory, self.memory), min(request.gpus, self.gpus)
        )


def probe_gpus(cache_dir: Path | None = None) -> tuple[str, ...]:
    """The names of this machine's NVIDIA GPUs (empty without any); blocking, so call it from a worker thread."""
    try:
        folders = sorted(p for p in _NVIDIA_PROC.iterdir() if p.is_dir())
    except OSError:
        folders = []
    if folders:
        names = []
        for folder in folders:
            try:
                match = _MODEL.search((folder / "information").read_text())
            except OSError:
                match = None
            names.append(match.group(1) if match else "NVIDIA GPU")
        return tuple(names)
    if shutil.which("nvidia-smi") is None:
        return ()
    return _nvidia_smi_once_per_boot(cache_dir)


def _nvidia_smi_once_per_boot(cache_dir: Path | None) -> tuple[str, ...]:
    cached: Path | None = None
    if cache_dir is not None:
        try:
            boot = _BOOT_ID.read_text().strip()
        except OSError:
            boot = ""
        if boot:
            cached = cache_dir / f"gpus-{boot}.txt"
            try:
                return tuple(line for line in cached.read_text().splitlines() if line)
            except OSError:
                pass
    try:
        result = subprocess.run(
            ["nvidia-smi", "--query-gpu=name", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return ()
    if result.returncode != 0:
        return ()
    names = tuple(line.strip() for line in result.stdout.splitlines() if line.strip())
    if cached is not None:
        try:
            cached.parent.mkdir(parents=True, exist_ok=True)
            tmp = cached.with_suffix(f".{os.getpid()}.tmp")
            tmp.write_text("".join(f"{n}\n" for n in names))
            tmp.replace(cached)
        except OSError:
            pass
    return names
