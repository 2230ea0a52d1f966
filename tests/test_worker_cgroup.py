"""Memory limits through cgroup v2: finding this process's cgroup, the conditions under which the pool uses one, and
what it writes; and, where this machine delegates the memory controller, an out-of-memory kill by the kernel."""

from __future__ import annotations

import os
import sys
import textwrap
from pathlib import Path

import pytest

from flytelike._backends.local._cgroup import CgroupMemory
from flytelike._backends.local._process_pool import ProcessJob, ProcessPool
from flytelike._loader import find_task, load_file
from flytelike._serde import encode_values, task_template
from flytelike.errors import OutOfMemoryError


def fake_hierarchy(tmp_path: Path, controllers: str) -> tuple[str, str]:
    mount = tmp_path / "cgroup"
    (mount / "app").mkdir(parents=True)
    (mount / "app" / "cgroup.subtree_control").write_text(controllers)
    mountinfo = tmp_path / "mountinfo"
    mountinfo.write_text(
        f"24 30 0:22 / /proc rw,nosuid - proc proc rw\n36 25 0:31 / {mount} rw,nosuid,nodev - cgroup2 cgroup2 rw\n"
    )
    own = tmp_path / "own"
    own.write_text("0::/app\n")
    return str(mountinfo), str(own)


def test_without_the_memory_controller_for_children_no_cgroup_is_used(tmp_path: Path) -> None:
    mounts, own = fake_hierarchy(tmp_path, "cpu pids")
    assert CgroupMemory.detect(mounts=mounts, own=own) is None
    assert not list((tmp_path / "cgroup" / "app").glob("flytelike-*"))


def test_with_a_cgroup_v1_only_machine_no_cgroup_is_used(tmp_path: Path) -> None:
    mounts, own = fake_hierarchy(tmp_path, "memory")
    Path(own).write_text("4:memory:/app\n")
    assert CgroupMemory.detect(mounts=mounts, own=own) is None


def test_each_worker_gets_a_group_whose_limit_and_oom_kills_are_read_and_written(tmp_path: Path) -> None:
    mounts, own = fake_hierarchy(tmp_path, "cpu memory")
    root = tmp_path / "cgroup" / "app" / "flytelike-test"
    root.mkdir()
    (root / "memory.max").write_text("max")  # the kernel makes this file when the controller is on
    found = CgroupMemory.detect(mounts=mounts, own=own, name="flytelike-test")
    assert found is not None
    assert found.root == root
    assert (root / "cgroup.subtree_control").read_text() == "+memory"
    group = found.adopt(4242, "worker-1")
    assert group is not None
    assert ((group / "cgroup.procs").read_text(), (group / "memory.oom.group").read_text()) == ("4242", "1")
    CgroupMemory.limit(group, 256 * 2**20)
    assert (group / "memory.max").read_text() == str(256 * 2**20)
    assert (group / "memory.swap.max").read_text() == "0"
    CgroupMemory.limit(group, 0)
    assert (group / "memory.max").read_text() == "max"
    assert CgroupMemory.oom_kills(group) == 0
    (group / "memory.events").write_text("low 0\nhigh 0\nmax 3\noom 1\noom_kill 1\noom_group_kill 1\n")
    assert CgroupMemory.oom_kills(group) == 1


def _delegated() -> bool:
    if not sys.platform.startswith("linux"):
        return False
    found = CgroupMemory.detect(name=f"flytelike-probe-{os.getpid()}")
    if found is not None:
        found.close()
    return found is not None


@pytest.mark.skipif(
    not _delegated(),
    reason="this machine does not delegate the cgroup v2 memory controller to this process (the watcher is used)",
)
async def test_the_kernel_kills_a_job_past_its_limit(tmp_path: Path) -> None:
    path = tmp_path / "cg_tasks.py"
    path.write_text(
        textwrap.dedent(
            """
            import flytelike as fl
            env = fl.TaskEnvironment(name="cg")

            @env.task
            def hog() -> int:
                return len(b"x" * (400 * 2**20))
            """
        )
    )
    task = find_task(load_file(path), "hog")
    template = task_template(task).SerializeToString(deterministic=True)
    job = ProcessJob("r", "0", 1, template, encode_values({}, (), where="hog"), str(path), memory_limit=128 * 2**20)
    async with ProcessPool(1) as pool:
        with pytest.raises(OutOfMemoryError):
            await pool.run(job)
