"""Process-isolated local tasks: cpu pinning for whole cores and GPU visibility through CUDA_VISIBLE_DEVICES."""

from __future__ import annotations

import os
import textwrap
from pathlib import Path
from typing import Any

import pytest

import flytelike as fl
from flytelike._backends.local import _backend
from flytelike._loader import find_task, load_file

TASKS = textwrap.dedent(
    """
    import os
    import flytelike as fl

    env = fl.TaskEnvironment(name="iso", platform=fl.Local(process=True))

    @env.task(resources=fl.Resources(cpu=1))
    def one_core() -> list[int]:
        return sorted(os.sched_getaffinity(0))

    @env.task(resources=fl.Resources(cpu="500m"))
    def half_core() -> list[int]:
        return sorted(os.sched_getaffinity(0))

    @env.task(resources=fl.Resources(gpu=1))
    def with_gpu() -> str:
        return os.environ.get("CUDA_VISIBLE_DEVICES", "<unset>")

    @env.task
    def without_gpu() -> str:
        return os.environ.get("CUDA_VISIBLE_DEVICES", "<unset>")
    """
)


@pytest.fixture
def tasks(tmp_path: Path) -> dict[str, fl.Task[..., Any]]:
    path = tmp_path / "iso_tasks.py"
    path.write_text(TASKS)
    module = load_file(path)
    return {name: find_task(module, name) for name in ("one_core", "half_core", "with_gpu", "without_gpu")}


@pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="pinning is only observable with 2 or more cpus")
def test_whole_cores_are_pinned_and_fractions_are_not(tasks: dict[str, fl.Task[..., Any]]) -> None:
    everything = sorted(os.sched_getaffinity(0))
    pinned = fl.run(tasks["one_core"]).outputs
    assert len(pinned) == 1
    assert pinned[0] in everything
    assert fl.run(tasks["half_core"]).outputs == everything


def test_gpus_are_shown_only_to_tasks_that_asked(
    tasks: dict[str, fl.Task[..., Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    def two_gpus(home: object = None) -> tuple[str, ...]:
        return ("NVIDIA A100-SXM4-40GB", "NVIDIA A100-SXM4-40GB")

    monkeypatch.setattr(_backend, "probe_gpus", two_gpus)
    assert fl.run(tasks["with_gpu"]).outputs in ("0", "1")
    assert fl.run(tasks["without_gpu"]).outputs == ""


def test_without_gpus_on_the_machine_visibility_is_left_alone(tasks: dict[str, fl.Task[..., Any]]) -> None:
    before = os.environ.get("CUDA_VISIBLE_DEVICES", "<unset>")
    assert fl.run(tasks["without_gpu"]).outputs == before
