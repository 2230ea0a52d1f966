"""Tasks as Kubernetes pods, through the official client's asyncio API (``kubernetes.aio``).

The backend itself (the client, aiohttp) is imported when a run first uses it; what ``flytelike show --as
kubernetes`` needs (the manifest) is not.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from flytelike._backends._input import BackendInput
from flytelike._backends.kubernetes._manifest import PodInput, pod_manifest
from flytelike._backends.kubernetes._names import pod_name

if TYPE_CHECKING:
    from flytelike._backends.kubernetes._backend import KubernetesBackend

__all__ = ["PodInput", "from_input", "pod_manifest", "pod_name"]


def from_input(spec: BackendInput) -> KubernetesBackend:
    """The backend for a runtime (``load_backend("kubernetes")``)."""
    # Imported here, as the backend loader imports backends: the Kubernetes client and aiohttp load only for runs
    # that use them.
    from flytelike._backends.kubernetes._backend import from_input as make

    return make(spec)
