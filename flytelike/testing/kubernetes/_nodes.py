"""The emulated cluster's nodes: from a YAML or JSON file, or a default of two nodes, one with a GPU.

A nodes file is a list (or ``{"nodes": [...]}``) of entries such as::

    - name: gpu-1
      capacity: {cpu: "8", memory: 32Gi, nvidia.com/gpu: "1"}
      allocatable: {cpu: 7500m}          # optional; defaults to the capacity
      labels: {nvidia.com/gpu.product: NVIDIA-A10G}
      taints: [{key: nvidia.com/gpu, value: present, effect: NoSchedule}]
"""

from __future__ import annotations

import json
import platform
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import yaml

from flytelike._quantity import Quantity
from flytelike.errors import SpecError
from flytelike.testing.kubernetes import _names

__all__ = ["DEFAULT_NODES", "NodeSpec", "load_nodes"]

JSON = dict[str, Any]
_EFFECTS: Final = ("NoSchedule", "PreferNoSchedule", "NoExecute")
_DEFAULT_CAPACITY: Final = {"ephemeral-storage": "100Gi", "pods": "110"}


@dataclass(frozen=True, slots=True)
class NodeSpec:
    """One node of the emulated cluster.

    Attributes:
        name: the node's name (a DNS subdomain).
        capacity: resource name -> quantity (``cpu``, ``memory``, ``ephemeral-storage``, ``pods``, extended
            resources such as ``nvidia.com/gpu``); ``ephemeral-storage`` and ``pods`` default to 100Gi and 110.
        allocatable: what pods may use; defaults to the capacity (entries given override it).
        labels: the node's labels (``kubernetes.io/hostname`` and ``kubernetes.io/os`` are added).
        taints: ``{"key", "value", "effect"}`` mappings.
    """

    name: str
    capacity: Mapping[str, str]
    allocatable: Mapping[str, str] = field(default_factory=dict)
    labels: Mapping[str, str] = field(default_factory=dict)
    taints: Sequence[Mapping[str, str]] = ()

    def __post_init__(self) -> None:
        where = f"node {self.name!r}"
        if not isinstance(self.name, str) or _names.dns_subdomain(self.name):
            raise ValueError(f"{where}: name must be a DNS subdomain such as 'node-1', not {self.name!r}")
        for kind in ("capacity", "allocatable"):
            for resource, amount in getattr(self, kind).items():
                try:
                    Quantity.parse(str(amount), field=f"{where} {kind}.{resource}")
                except SpecError as error:
                    raise ValueError(str(error)) from None
        for key, value in self.labels.items():
            problems = _names.label_key(key) + _names.label_value(str(value))
            if problems:
                raise ValueError(f"{where}: label {key}={value!r}: {problems[0]}")
        for taint in self.taints:
            if not taint.get("key") or taint.get("effect") not in _EFFECTS:
                raise ValueError(
                    f"{where}: taint {dict(taint)!r} needs a key and an effect, one of {', '.join(_EFFECTS)}"
                )

    def node_object(self, *, kubelet_port: int, address: str = "127.0.0.1") -> JSON:
        """The Node object its kubelet registers."""
        capacity = {**_DEFAULT_CAPACITY, **{k: str(v) for k, v in self.capacity.items()}}
        allocatable = {**capacity, **{k: str(v) for k, v in self.allocatable.items()}}
        labels = {
            "kubernetes.io/hostname": self.name,
            "kubernetes.io/os": "linux",
            "kubernetes.io/arch": "amd64",
            **{k: str(v) for k, v in self.labels.items()},
        }
        spec: JSON = {}
        if self.taints:
            spec["taints"] = [dict(t) for t in self.taints]
        ready = {
            "type": "Ready",
            "status": "True",
            "reason": "KubeletReady",
            "message": "kubelet is posting ready status",
        }
        return {
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {"name": self.name, "labels": labels},
            "spec": spec,
            "status": {
                "capacity": capacity,
                "allocatable": allocatable,
                "conditions": [ready],
                "addresses": [{"type": "InternalIP", "address": address}, {"type": "Hostname", "address": self.name}],
                "daemonEndpoints": {"kubeletEndpoint": {"Port": kubelet_port}},
                "nodeInfo": {
                    "architecture": "amd64",
                    "bootID": "",
                    "containerRuntimeVersion": "flytelike-emulator://local-processes",
                    "kernelVersion": platform.release(),
                    "kubeProxyVersion": "",
                    "kubeletVersion": "v1.37.0-flytelike-emulator",
                    "machineID": "",
                    "operatingSystem": "linux",
                    "osImage": "the machine running the emulator",
                    "systemUUID": "",
                },
            },
        }


DEFAULT_NODES: Final = (
    NodeSpec("node-1", {"cpu": "8", "memory": "32Gi"}),
    NodeSpec(
        "gpu-1",
        {"cpu": "8", "memory": "32Gi", "nvidia.com/gpu": "1"},
        labels={"nvidia.com/gpu.product": "NVIDIA-A10G", "nvidia.com/gpu.count": "1"},
    ),
)
"""Two nodes of 8 cpu and 32Gi, the second with one NVIDIA A10G GPU."""


def load_nodes(path: Path) -> tuple[NodeSpec, ...]:
    """Read nodes from a YAML or JSON file (see the module's docstring).

    Raises:
        ValueError: the file does not hold a list of nodes, naming the entry and field that are wrong.
    """
    text = path.read_text(encoding="utf-8")
    data: Any = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    if isinstance(data, dict) and "nodes" in data:
        data = data["nodes"]
    if not isinstance(data, list) or not data:
        raise ValueError(f"{path}: expected a non-empty list of nodes (name, capacity, labels, taints)")
    nodes = []
    for i, entry in enumerate(data):
        if not isinstance(entry, dict) or "name" not in entry or "capacity" not in entry:
            raise ValueError(f"{path}: node {i} needs at least 'name' and 'capacity', got {entry!r}")
        unknown = set(entry) - {"name", "capacity", "allocatable", "labels", "taints"}
        if unknown:
            raise ValueError(
                f"{path}: node {entry['name']!r} has unknown keys {sorted(unknown)}; "
                "accepted: name, capacity, allocatable, labels, taints"
            )
        nodes.append(
            NodeSpec(
                entry["name"],
                {k: str(v) for k, v in entry["capacity"].items()},
                {k: str(v) for k, v in (entry.get("allocatable") or {}).items()},
                {k: str(v) for k, v in (entry.get("labels") or {}).items()},
                tuple(entry.get("taints") or ()),
            )
        )
    return tuple(nodes)
