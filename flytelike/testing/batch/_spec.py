"""A submitted job's container as Batch resolves it: the job definition's command, environment and resources,
overridden by the submission's ``containerOverrides``, with ``Ref::`` parameters substituted in the command."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import Any

from flytelike.testing.batch._validation import Resources

__all__ = ["container_command", "container_environment", "substitute"]


def substitute(command: Sequence[str], parameters: Mapping[str, str]) -> tuple[str, ...]:
    """Replace each ``Ref::name`` in the command's arguments by the parameter's value; unknown ones stay as written.

    Example:
        >>> substitute(["echo", "Ref::who", "Ref::missing"], {"who": "world"})
        ('echo', 'world', 'Ref::missing')
    """
    # Longest names first, so that Ref::input_file is not taken for Ref::input followed by "_file".
    names = sorted(parameters, key=len, reverse=True)
    resolved = []
    for part in command:
        for name in names:
            part = part.replace(f"Ref::{name}", parameters[name])
        resolved.append(part)
    return tuple(resolved)


def container_command(
    container: Mapping[str, Any], overrides: Mapping[str, Any], parameters: Mapping[str, str]
) -> tuple[str, ...]:
    command = overrides.get("command")
    if command is None:
        command = container.get("command") or []
    return substitute([str(part) for part in command], parameters)


def container_environment(container: Mapping[str, Any], overrides: Mapping[str, Any]) -> dict[str, str]:
    """The job definition's variables, then the overrides' (which win)."""
    found: dict[str, str] = {}
    for source in (container.get("environment") or [], overrides.get("environment") or []):
        for item in source:
            found[str(item["name"])] = str(item.get("value", ""))
    return found


def resource_amounts(resources: Resources) -> tuple[float, int | None, int]:
    """vCPUs, MiB of memory (None when not given) and GPUs of resolved resourceRequirements."""
    vcpus = float(Decimal(resources["VCPU"])) if "VCPU" in resources else 1.0
    memory = int(resources["MEMORY"]) if "MEMORY" in resources else None
    gpus = int(resources["GPU"]) if "GPU" in resources else 0
    return vcpus, memory, gpus
