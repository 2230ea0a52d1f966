"""The Kubernetes backend end to end against the Kubernetes emulator (an API server, scheduler and kubelet that
run each pod's command as a local process): tasks as pods, mixed with local tasks, with their code, data and
calls moving through the store and the controller exactly as they would on a cluster."""

from __future__ import annotations

import json
import os
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest
from kubernetes.aio import client as k8s_client
from kubernetes.aio import config as k8s_config

import flytelike as fl
from flytelike._config import Settings, load_settings
from flytelike._executor import ActionState
from flytelike._loader import load_file
from flytelike._runtime import Runtime
from flytelike.errors import CancelledError
from flytelike.testing.kubernetes import KubernetesEmulator

TASKS = """
import asyncio

import flytelike as fl

env = fl.TaskEnvironment(name="{name}")
local = fl.TaskEnvironment(name="{name}-local", platform=fl.Local())
pods = fl.TaskEnvironment(name="{name}-pods", platform=fl.Kubernetes())


@env.task
async def leaf(x: int) -> int:
    print("leaf", x)
    return x + 1


@env.task
async def middle(x: int) -> int:
    return 10 * await leaf(x)


@env.task
async def nested(n: int) -> int:
    return sum(await asyncio.gather(*(middle(i) for i in range(n))))


@local.task
async def here(x: int) -> int:
    return x * 2


@pods.task
async def there(x: int) -> int:
    return x * 3


@local.task
async def mixed(x: int) -> int:
    return await here(x) + await there(x)


@env.task(retries=fl.RetryPolicy(1, oom_memory_multiplier=4), resources=fl.Resources(memory="80Mi"))
async def hungry(mib: int) -> int:
    block = bytearray(mib * 1024 * 1024)
    for i in range(0, len(block), 4096):
        block[i] = 1
    return len(block) // (1024 * 1024)


@env.task(resources=fl.Resources(gpu=fl.GPU("H100", 8)))
async def greedy() -> int:
    return 1


@env.task
async def sleepy(seconds: float) -> float:
    await asyncio.sleep(seconds)
    return seconds
"""


@pytest.fixture
def project(tmp_path: Path) -> Iterator[Any]:
    root = tmp_path / "project"
    root.mkdir()
    (root / "pyproject.toml").write_text("[project]\nname = 'k8s-demo'\n")
    name = f"k8s_tasks_{id(root):x}"
    path = root / f"{name}.py"
    path.write_text(textwrap.dedent(TASKS.format(name=name.replace("_", "-"))))
    module = load_file(path)
    yield module
    sys.modules.pop(module.__name__, None)
    if str(root) in sys.path:
        sys.path.remove(str(root))


def _settings(k8s: KubernetesEmulator, **kubernetes: Any) -> Settings:
    values = {"kubeconfig": str(k8s.kubeconfig_path), "entrypoint": [sys.executable, "-m", "flytelike.entry"]}
    return load_settings(kubernetes={**values, **kubernetes})


async def _run(task: Any, *args: Any, settings: Settings, platform: str | None = "kubernetes") -> tuple[Any, Any]:
    async with Runtime(settings=settings, platform=platform) as rt:
        handle = await rt.start(task, *args)
        try:
            result = await handle.result()
        except Exception as e:
            result = e
        return result, handle


async def test_nested_calls_run_as_pods(project: Any) -> None:
    async with KubernetesEmulator() as cluster:
        await _test_nested_calls_run_as_pods(project, cluster)


async def _test_nested_calls_run_as_pods(project: Any, cluster: KubernetesEmulator) -> None:
    expected = (await fl.run_async(project.nested, 3)).outputs
    result, handle = await _run(project.nested, 3, settings=_settings(cluster))
    assert result == expected, [(a.id, a.error) for a in handle.actions().values()]
    actions = handle.actions()
    assert len(actions) == 7
    for action in actions.values():
        assert action.state is ActionState.SUCCEEDED
        assert action.platform == "kubernetes" or action.platform
    assert "leaf 2" in "".join(actions["0.2.0"].logs or ())
    assert cluster.pods() == []  # every pod deleted once its attempt ended
    creates = cluster.counters["create pods"]
    assert creates == 7
    per_attempt = sum(
        n for endpoint, n in cluster.counters.clients.items() if "watch" not in endpoint and "list" not in endpoint
    )
    assert per_attempt <= 3 * 7


async def test_local_and_kubernetes_tasks_mix_in_one_run(project: Any) -> None:
    async with KubernetesEmulator() as cluster:
        await _test_local_and_kubernetes_tasks_mix_in_one_run(project, cluster)


async def _test_local_and_kubernetes_tasks_mix_in_one_run(project: Any, cluster: KubernetesEmulator) -> None:
    result, _ = await _run(project.mixed, 5, settings=_settings(cluster), platform=None)
    assert result == 5 * 2 + 5 * 3
    assert cluster.counters["create pods"] == 1  # only `there` ran as a pod


async def test_out_of_memory_escalates_and_succeeds(project: Any) -> None:
    async with KubernetesEmulator() as cluster:
        await _test_out_of_memory_escalates_and_succeeds(project, cluster)


async def _test_out_of_memory_escalates_and_succeeds(project: Any, cluster: KubernetesEmulator) -> None:
    result, handle = await _run(project.hungry, 150, settings=_settings(cluster))
    assert result == 150
    action = handle.actions()["0"]
    assert action.attempts == 2
    assert cluster.counters["create pods"] == 2  # a new pod for the retry, with more memory


async def test_an_unschedulable_request_waits_with_the_scheduler_s_message_then_fails(project: Any) -> None:
    async with KubernetesEmulator() as cluster:
        await _test_an_unschedulable_request_waits_with_the_scheduler_s_message_then_fails(project, cluster)


async def _test_an_unschedulable_request_waits_with_the_scheduler_s_message_then_fails(
    project: Any, cluster: KubernetesEmulator
) -> None:
    async with Runtime(settings=_settings(cluster, pending_timeout=1.5), platform="kubernetes") as rt:
        handle = await rt.start(project.greedy)
        events = handle.events()
        reasons: list[str] = []

        async def watch() -> None:
            async for event in events:
                if event.state is ActionState.WAITING:
                    reasons.append(event.reason)

        async with anyio.create_task_group() as tg:
            tg.start_soon(watch)
            with pytest.raises(Exception, match="could not be scheduled"):
                await handle.result()
            tg.cancel_scope.cancel()
    assert any("0/2 nodes are available" in r for r in reasons), reasons
    action = handle.actions()["0"]
    assert action.failure_kind == "infra"
    assert cluster.pods() == []


async def test_cancelling_a_run_leaves_no_pod(project: Any) -> None:
    async with KubernetesEmulator() as cluster:
        await _test_cancelling_a_run_leaves_no_pod(project, cluster)


async def _test_cancelling_a_run_leaves_no_pod(project: Any, cluster: KubernetesEmulator) -> None:
    async with Runtime(settings=_settings(cluster), platform="kubernetes") as rt:
        handle = await rt.start(project.sleepy, 60)
        with anyio.fail_after(30):
            while not cluster.pods() or cluster.pods()[0].get("status", {}).get("phase") != "Running":
                await anyio.sleep(0.05)
        handle.cancel()
        with pytest.raises(CancelledError):
            await handle.result()
    assert cluster.pods() == []


FANOUT = """
import asyncio

import flytelike as fl

env = fl.TaskEnvironment(name="{name}")


@env.task
async def one(i: int) -> int:
    return i * i


@env.task
async def many(n: int) -> int:
    return sum(await asyncio.gather(*(one(i) for i in range(n))))
"""


@pytest.mark.slow
async def test_200_pods_with_failing_api_calls_and_dropped_watches(tmp_path: Path) -> None:
    """10% of API calls answered 500/429 and the watch dropped every 50 events: every task runs exactly once."""
    root = tmp_path / "fanout-project"
    root.mkdir()
    (root / "pyproject.toml").write_text("[project]\nname = 'k8s-fanout'\n")
    path = root / "k8s_fanout_tasks.py"
    path.write_text(textwrap.dedent(FANOUT.format(name="k8s-fanout")))
    module = load_file(path)
    try:
        async with KubernetesEmulator(fail_rate=0.1, drop_watch_every=50, seed=7) as cluster:
            result, handle = await _run(module.many, 200, settings=_settings(cluster))
            assert result == sum(i * i for i in range(200)), [a.error for a in handle.actions().values() if a.error]
            creates = cluster.counters["create pods"]
            assert cluster.pods() == []
    finally:
        sys.modules.pop(module.__name__, None)
    attempts = sum(a.attempts for a in handle.actions().values())
    assert attempts == 201  # no attempt was repeated: retried requests adopted what they had created
    assert creates >= 201  # some creates were answered 500/429 and sent again, and found their pod (409)


async def test_one_attempt_costs_create_log_and_delete_beside_the_shared_watch(project: Any) -> None:
    async with KubernetesEmulator() as cluster:
        result, handle = await _run(project.leaf, 1, settings=_settings(cluster))
        assert result == 2
        counts = dict(cluster.counters.clients)
        pod = handle.actions()["0"]
    assert pod.attempts == 1
    per_attempt = {k: v for k, v in counts.items() if not k.startswith(("list", "watch"))}
    assert per_attempt == {"create pods": 1, "get pods/log": 1, "delete pods": 1}
    assert counts.get("list pods") == 1  # the watch's first list; after it, only the watch itself
    assert counts.get("watch pods", 0) >= 1


async def test_run_with_kubernetes_from_the_command_line(project: Any, tmp_path: Path) -> None:
    """`flytelike run --with kubernetes FILE TASK` in its own process, against the emulator of this one."""
    async with KubernetesEmulator() as cluster:
        env = {
            **os.environ,
            "KUBECONFIG": str(cluster.kubeconfig_path),
            "FLYTELIKE_KUBERNETES__ENTRYPOINT": json.dumps([sys.executable, "-m", "flytelike.entry"]),
        }
        done = await anyio.run_process(
            [
                sys.executable,
                "-m",
                "flytelike",
                "run",
                "--no-progress",
                "--with",
                "kubernetes",
                project.__file__,
                "nested",
                "--n",
                "2",
            ],
            env=env,
            check=False,
        )
        creates = cluster.counters["create pods"]
    assert done.returncode == 0, done.stderr.decode()
    assert done.stdout.decode().strip().splitlines()[-1] == str(10 * 1 + 10 * 2)
    assert creates == 5
    # What the pods printed is in `flytelike logs`, as for a local run.
    listed = await anyio.run_process([sys.executable, "-m", "flytelike", "runs", "-o", "json"], env=env)
    run_id = json.loads(listed.stdout)[0]["id"]
    logs = await anyio.run_process([sys.executable, "-m", "flytelike", "logs", run_id], env=env)
    assert "leaf 0" in logs.stdout.decode()
    assert "leaf 1" in logs.stdout.decode()


async def test_a_pod_deleted_by_someone_else_is_a_system_failure_and_a_new_pod(project: Any) -> None:
    async with KubernetesEmulator() as cluster, Runtime(settings=_settings(cluster), platform="kubernetes") as rt:
        handle = await rt.start(project.sleepy, 60)
        events = handle.events()
        retried: list[tuple[str, str]] = []

        async def follow() -> None:
            async for event in events:
                if event.state is ActionState.RETRYING:
                    retried.append((event.kind, event.reason))

        async with anyio.create_task_group() as tg:
            tg.start_soon(follow)
            with anyio.fail_after(30):
                while not cluster.pods() or cluster.pods()[0].get("status", {}).get("phase") != "Running":
                    await anyio.sleep(0.05)
            first = cluster.pods()[0]["metadata"]["name"]
            configuration = k8s_client.Configuration()
            await k8s_config.load_kube_config(
                config_file=str(cluster.kubeconfig_path), client_configuration=configuration
            )
            async with k8s_client.ApiClient(configuration) as api:
                await k8s_client.CoreV1Api(api).delete_namespaced_pod(first, "default", grace_period_seconds=0)
            with anyio.fail_after(30):
                while not retried:
                    await anyio.sleep(0.05)
            with anyio.fail_after(30):
                while not any(p["metadata"]["name"] != first for p in cluster.pods()):
                    await anyio.sleep(0.05)
            handle.cancel()
            tg.cancel_scope.cancel()
    assert retried[0][0] == "system"
    assert "deleted by someone else" in retried[0][1]
    assert cluster.pods() == []
