"""The Kubernetes backend on a real cluster: runs only when asked for, and is skipped with the reason otherwise.

    FLYTELIKE_REAL_K8S=1 KUBECONFIG=~/.kube/config FLYTELIKE_STORE__URL=s3://bucket/prefix \\
        pytest tests/test_k8s_real_cluster.py

The cluster's pods must reach the store and this machine's controller (``[controller] bind`` / ``address``), and
``[kubernetes] image`` must have flytelike installed (see docs/kubernetes.md).
"""

from __future__ import annotations

import os
import sys
import textwrap
from pathlib import Path

import pytest

from flytelike._config import load_settings
from flytelike._loader import load_file
from flytelike._runtime import Runtime

# Read at import, before the autouse fixtures isolate the environment.
REAL = os.environ.get("FLYTELIKE_REAL_K8S") == "1" and bool(os.environ.get("KUBECONFIG"))
STORE = os.environ.get("FLYTELIKE_STORE__URL", "")
KUBECONFIG = os.environ.get("KUBECONFIG", "")

pytestmark = pytest.mark.skipif(
    not REAL or not STORE.startswith("s3://"),
    reason="needs a real cluster: set FLYTELIKE_REAL_K8S=1, KUBECONFIG, and FLYTELIKE_STORE__URL=s3://... that its "
    "pods can reach",
)


async def test_a_task_runs_as_a_pod_on_a_real_cluster(tmp_path: Path) -> None:
    root = tmp_path / "project"
    root.mkdir()
    (root / "pyproject.toml").write_text("[project]\nname = 'real-k8s'\n")
    path = root / "real_k8s_tasks.py"
    path.write_text(
        textwrap.dedent(
            """
            import flytelike as fl

            env = fl.TaskEnvironment(name="real-k8s")


            @env.task
            async def hello(name: str) -> str:
                return f"hello {name}"
            """
        )
    )
    module = load_file(path)
    try:
        settings = load_settings(store={"url": STORE}, kubernetes={"kubeconfig": KUBECONFIG})
        async with Runtime(settings=settings, platform="kubernetes") as runtime:
            handle = await runtime.start(module.hello, "cluster")
            assert await handle.result() == "hello cluster"
    finally:
        sys.modules.pop(module.__name__, None)
