"""The emulator's scheduler: fit by requests, node selectors, taints; Unschedulable in the real scheduler's words."""

from __future__ import annotations

import pytest
from kubernetes.aio import client, config
from test_k8s_emulator_support import ended, k8s, manifest, python, v1

from flytelike.testing import KubernetesEmulator
from flytelike.testing.kubernetes import NodeSpec

__all__ = ["k8s", "v1"]


def bound(pod: dict[str, object] | None) -> bool:
    return bool(pod and pod["spec"].get("nodeName"))  # type: ignore[attr-defined]


def unschedulable(pod: dict[str, object] | None) -> str:
    for condition in (pod or {}).get("status", {}).get("conditions") or []:  # type: ignore[attr-defined]
        if condition.get("type") == "PodScheduled" and condition.get("reason") == "Unschedulable":
            return str(condition["message"])
    return ""


async def test_a_gpu_pod_goes_to_the_gpu_node(k8s: KubernetesEmulator, v1: client.CoreV1Api) -> None:
    await v1.create_namespaced_pod("default", manifest("gpu", limits={"nvidia.com/gpu": "1"}))
    pod = await k8s.wait_for_pod("gpu", bound)
    assert pod["spec"]["nodeName"] == "gpu-1"
    scheduled = await k8s.wait_until(lambda: [e for e in k8s.events() if e["reason"] == "Scheduled"])
    assert scheduled[0]["message"] == "Successfully assigned default/gpu to gpu-1"


async def test_node_selector_is_honoured(k8s: KubernetesEmulator, v1: client.CoreV1Api) -> None:
    pod = manifest("sel", nodeSelector={"nvidia.com/gpu.product": "NVIDIA-A10G"})
    await v1.create_namespaced_pod("default", pod)
    assert (await k8s.wait_for_pod("sel", bound))["spec"]["nodeName"] == "gpu-1"


async def test_unschedulable_message_and_event_are_the_real_schedulers() -> None:
    nodes = [
        NodeSpec("a", {"cpu": "8", "memory": "32Gi", "nvidia.com/gpu": "1"}),
        NodeSpec("b", {"cpu": "8", "memory": "32Gi"}, labels={"pool": "cpu"}),
        NodeSpec("c", {"cpu": "8", "memory": "32Gi"}, labels={"pool": "cpu"}),
    ]
    async with KubernetesEmulator(nodes=nodes) as k8s:
        api = await config.new_client_from_config(str(k8s.kubeconfig_path))
        async with api:
            v1 = client.CoreV1Api(api)
            # Two GPUs: node a has one; b and c have none and the selector (pool: gpu) rules them out first.
            pod = manifest("big", limits={"nvidia.com/gpu": "2"})
            pod["spec"]["affinity"] = {
                "nodeAffinity": {
                    "requiredDuringSchedulingIgnoredDuringExecution": {
                        "nodeSelectorTerms": [
                            {"matchExpressions": [{"key": "pool", "operator": "NotIn", "values": ["cpu"]}]}
                        ]
                    }
                }
            }
            await v1.create_namespaced_pod("default", pod)
            stored = await k8s.wait_for_pod("big", unschedulable)
        expected = (
            "0/3 nodes are available: 1 Insufficient nvidia.com/gpu, 2 node(s) didn't match Pod's node "
            "affinity/selector. preemption: 0/3 nodes are available: 1 No preemption victims found for incoming "
            "pod, 2 Preemption is not helpful for scheduling."
        )
        assert unschedulable(stored) == expected
        failed = await k8s.wait_until(lambda: [e for e in k8s.events() if e["reason"] == "FailedScheduling"])
        assert [(e["type"], e["message"], e["involvedObject"]["name"]) for e in failed] == [
            ("Warning", expected, "big")
        ]
        assert failed[0]["source"] == {"component": "default-scheduler"}


async def test_taints_need_tolerations() -> None:
    nodes = [
        NodeSpec(
            "tainted", {"cpu": "4", "memory": "8Gi"}, taints=[{"key": "gpu", "value": "yes", "effect": "NoSchedule"}]
        )
    ]
    async with KubernetesEmulator(nodes=nodes) as k8s:
        api = await config.new_client_from_config(str(k8s.kubeconfig_path))
        async with api:
            v1 = client.CoreV1Api(api)
            await v1.create_namespaced_pod("default", manifest("plain"))
            await v1.create_namespaced_pod(
                "default",
                manifest(
                    "tolerant",
                    tolerations=[{"key": "gpu", "operator": "Equal", "value": "yes", "effect": "NoSchedule"}],
                ),
            )
            assert (await k8s.wait_for_pod("tolerant", bound))["spec"]["nodeName"] == "tainted"
            plain = await k8s.wait_for_pod("plain", unschedulable)
    assert unschedulable(plain).startswith("0/1 nodes are available: 1 node(s) had untolerated taint {gpu: yes}.")
    assert not bound(plain)


@pytest.mark.parametrize("resource", ["cpu", "memory"])
async def test_a_pod_waits_for_capacity_then_binds_when_it_frees(resource: str) -> None:
    nodes = [NodeSpec("only", {"cpu": "2", "memory": "2Gi"})]
    amount = {"cpu": "2", "memory": "2Gi"}[resource]
    async with KubernetesEmulator(nodes=nodes) as k8s:
        api = await config.new_client_from_config(str(k8s.kubeconfig_path))
        async with api:
            v1 = client.CoreV1Api(api)
            await v1.create_namespaced_pod(
                "default", manifest("first", python("import time; time.sleep(0.8)"), requests={resource: amount})
            )
            await k8s.wait_for_pod("first", bound)
            await v1.create_namespaced_pod("default", manifest("second", requests={resource: amount}))
            waiting = await k8s.wait_for_pod("second", unschedulable)
            assert f"1 Insufficient {resource}" in unschedulable(waiting)
            await k8s.wait_for_pod("first", ended)
            second = await k8s.wait_for_pod("second", bound)
    assert second["spec"]["nodeName"] == "only"
