"""A Kubernetes emulator: an API server with real semantics for pods, secrets and events, a scheduler and a
kubelet that runs pods' commands as local processes. Importing this package imports aiohttp.

See ``docs/emulators.md``.
"""

from flytelike.testing.kubernetes._emulator import KubernetesEmulator
from flytelike.testing.kubernetes._faults import Counters, Faults
from flytelike.testing.kubernetes._nodes import DEFAULT_NODES, NodeSpec, load_nodes

__all__ = ["DEFAULT_NODES", "Counters", "Faults", "KubernetesEmulator", "NodeSpec", "load_nodes"]
