"""Batch beside Kubernetes in one run, and Batch under load: 200 jobs with 10% of calls throttled."""

from __future__ import annotations

import os
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from flytelike._config import load_settings
from flytelike._loader import load_file
from flytelike._runtime import Runtime
from flytelike.testing import BatchEmulator, KubernetesEmulator

ROOT = Path(__file__).resolve().parent.parent

TASKS = """
import asyncio
import os

import flytelike as fl

jobs = fl.TaskEnvironment(name="{name}-jobs", platform=fl.Batch())
pods = fl.TaskEnvironment(name="{name}-pods", platform=fl.Kubernetes())
here = fl.TaskEnvironment(name="{name}-here")


@jobs.task
async def on_batch(x: int) -> str:
    return f"batch {{x}} {{os.environ.get('AWS_BATCH_JOB_ID', '')[:4] != ''}}"


@pods.task
async def on_pod(x: int) -> str:
    return f"pod {{x}}"


@here.task
async def both(n: int) -> list[str]:
    batch = await asyncio.gather(*(on_batch(i) for i in range(n)))
    pod = await asyncio.gather(*(on_pod(i) for i in range(n)))
    return [*batch, *pod]
"""


def _job_environment(home: Path) -> dict[str, str]:
    return {
        "PATH": os.environ.get("PATH", os.defpath),
        "LANG": "C.UTF-8",
        "FLYTELIKE_HOME": str(home),
        # The jobs import flytelike from where this test does (a checkout, not only the installed one).
        "PYTHONPATH": os.pathsep.join(p for p in sys.path if p and Path(p).is_dir()),
    }


@pytest.fixture
def project(tmp_path: Path) -> Iterator[Any]:
    root = tmp_path / "project"
    root.mkdir()
    (root / "pyproject.toml").write_text("[project]\nname = 'mixed-clouds'\n")
    name = f"mixed_clouds_{os.getpid()}_{id(root):x}"
    (root / f"{name}.py").write_text(textwrap.dedent(TASKS.format(name=name.replace("_", "-"))))
    module = load_file(root / f"{name}.py")
    yield module
    sys.modules.pop(module.__name__, None)
    if str(root) in sys.path:
        sys.path.remove(str(root))


def _batch_settings(emulator: BatchEmulator, **more: Any) -> dict[str, Any]:
    return {
        "queue": emulator.queue,
        "endpoint_url": emulator.endpoint_url,
        "region": emulator.region,
        "entrypoint": [sys.executable, "-m", "flytelike.entry"],
        "poll_interval_min": 0.05,
        "poll_interval_max": 0.5,
        **more,
    }


@pytest.mark.slow
async def test_one_run_mixes_batch_jobs_pods_and_local_tasks(
    project: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    entry = [sys.executable, "-m", "flytelike.entry"]
    with BatchEmulator(job_environment=_job_environment(tmp_path / "jobs"), transition_delay=0.02) as aws:
        for key, value in aws.environment().items():
            if key.startswith("AWS_"):
                monkeypatch.setenv(key, value)
        async with KubernetesEmulator() as cluster:
            settings = load_settings(
                batch=_batch_settings(aws),
                kubernetes={"kubeconfig": str(cluster.kubeconfig_path), "entrypoint": entry},
            )
            async with Runtime(settings=settings) as runtime:
                handle = await runtime.start(project.both, 3)
                result = await handle.result()
            pods = cluster.counters["create pods"]
        jobs = aws.counters["SubmitJob"]
    assert result == [f"batch {i} True" for i in range(3)] + [f"pod {i}" for i in range(3)]
    assert (pods, jobs) == (3, 3)
    platforms = sorted(a.platform for a in handle.actions().values())
    assert platforms == ["batch"] * 3 + ["kubernetes"] * 3 + ["local"]


@pytest.mark.slow
async def test_200_jobs_under_10_percent_throttling_run_once_each(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    example = load_file(ROOT / "examples" / "fanout.py")
    with BatchEmulator(job_environment=_job_environment(tmp_path / "jobs"), transition_delay=0.02, seed=3) as aws:
        for key, value in aws.environment().items():
            if key.startswith("AWS_"):
                monkeypatch.setenv(key, value)
        aws.faults.throttle("*", rate=0.1)
        settings = load_settings(batch=_batch_settings(aws, calls_per_second=50))
        async with Runtime(settings=settings, platform="batch") as runtime:
            handle = await runtime.start(example.main, 200)
            result = await handle.result()
        submitted = aws.counters["SubmitJob"] - aws.counters.faults.get("SubmitJob", 0)
        throttled = sum(aws.counters.faults.values())
    assert result == sum(i * i for i in range(200))
    assert throttled > 0
    assert submitted == 201  # the root and its 200 children: one job each, none submitted twice
    assert sum(a.attempts for a in handle.actions().values()) == 201
