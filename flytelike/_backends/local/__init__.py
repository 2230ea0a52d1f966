"""The local backend: this machine's capacity and admission, in-process and warm-worker execution."""

from flytelike._backends.local._backend import LocalBackend, LocalInput, from_input
from flytelike._backends.local._capacity import Capacity, probe_gpus
from flytelike._backends.local._policy import ResourcePolicy

__all__ = ["Capacity", "LocalBackend", "LocalInput", "ResourcePolicy", "from_input", "probe_gpus"]
