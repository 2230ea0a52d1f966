"""Fault injection (500/429, dropped watches) and the per-endpoint request counters of the emulated API server."""

from __future__ import annotations

import json

import aiohttp
import pytest
from kubernetes.aio import client, config, watch
from kubernetes.aio.client.exceptions import ApiException
from test_k8s_emulator_support import ended, k8s, manifest, v1

from flytelike.testing import KubernetesEmulator
from flytelike.testing.kubernetes import Faults

__all__ = ["k8s", "v1"]


async def test_every_request_fails_with_500_at_rate_one(k8s: KubernetesEmulator, v1: client.CoreV1Api) -> None:
    k8s.faults.fail_codes = (500,)
    k8s.faults.fail_rate = 1.0
    with pytest.raises(ApiException) as error:
        await v1.list_namespaced_pod("default")
    assert error.value.status == 500
    assert json.loads(error.value.body)["reason"] == "InternalError"
    k8s.faults.fail_rate = 0.0
    assert (await v1.list_namespaced_pod("default")).items == []


async def test_429_carries_retry_after(k8s: KubernetesEmulator, v1: client.CoreV1Api) -> None:
    k8s.faults.fail_codes = (429,)
    k8s.faults.retry_after = 2
    k8s.faults.fail_rate = 1.0
    with pytest.raises(ApiException) as error:
        await v1.create_namespaced_pod("default", manifest("a"))
    assert error.value.status == 429
    assert error.value.headers["Retry-After"] == "2"
    assert json.loads(error.value.body)["details"] == {"retryAfterSeconds": 2}
    assert k8s.pods() == []  # a refused create creates nothing


async def test_a_partial_rate_fails_about_that_share_reproducibly() -> None:
    async def failures(seed: int) -> list[int]:
        async with KubernetesEmulator(fail_rate=0.3, seed=seed) as k8s, aiohttp.ClientSession() as session:
            codes = []
            for _ in range(100):
                async with session.get(k8s.url + "/api/v1/namespaces/default/pods") as response:
                    codes.append(response.status)
            return codes

    first = await failures(7)
    assert first == await failures(7)
    failed = sum(code != 200 for code in first)
    assert 15 <= failed <= 45
    assert {code for code in first if code != 200} == {500, 429}


def test_fault_settings_are_checked() -> None:
    with pytest.raises(ValueError, match="fail_rate must be between 0 and 1"):
        Faults(fail_rate=5)
    with pytest.raises(ValueError, match="fail_codes must be a non-empty choice of 500 and 429"):
        Faults(fail_codes=(503,))


async def test_counters_count_client_requests_per_endpoint(k8s: KubernetesEmulator, v1: client.CoreV1Api) -> None:
    await v1.create_namespaced_pod("default", manifest("a", ["echo", "hi"]))
    await k8s.wait_for_pod("a", ended)
    await v1.read_namespaced_pod_log("a", "default")
    await v1.delete_namespaced_pod("a", "default")
    assert dict(k8s.counters.clients) == {"create pods": 1, "get pods/log": 1, "delete pods": 1}
    assert k8s.counters.total == 3
    # The scheduler's and kubelet's own requests are counted apart.
    assert k8s.counters.components["create pods/binding"] == 1
    async with aiohttp.ClientSession() as session, session.get(k8s.url + "/emulator/counters") as response:
        counted = await response.json()
    assert counted["clients"] == {"create pods": 1, "get pods/log": 1, "delete pods": 1}


@pytest.mark.slow
async def test_ten_pods_cost_three_requests_each_plus_one_watch(k8s: KubernetesEmulator, v1: client.CoreV1Api) -> None:
    # The backend's budget, as a client meeting it spends it: create, logs, delete per pod; one shared watch.
    names = [f"p{i}" for i in range(10)]
    for name in names:
        await v1.create_namespaced_pod("default", manifest(name, ["echo", name], labels={"run": "r1"}))
    done: set[str] = set()
    async with watch.Watch() as w:
        async for event in w.stream(v1.list_namespaced_pod, "default", label_selector="run=r1", timeout_seconds=10):
            if event["object"].status.phase == "Succeeded":
                done.add(event["object"].metadata.name)
            if done == set(names):
                break
    for name in names:
        assert await v1.read_namespaced_pod_log(name, "default") == f"{name}\n"
        await v1.delete_namespaced_pod(name, "default")
    per_pod = k8s.counters["create pods"] + k8s.counters["get pods/log"] + k8s.counters["delete pods"]
    assert per_pod / len(names) == 3
    assert k8s.counters["watch pods"] == 1
    assert k8s.counters.total == 31


@pytest.mark.slow
async def test_a_dropped_watch_is_resumed_by_the_official_watch() -> None:
    async with KubernetesEmulator(drop_watch_every=1) as k8s:
        api = await config.new_client_from_config(str(k8s.kubeconfig_path))
        async with api:
            v1 = client.CoreV1Api(api)
            for name in ("a", "b", "c"):
                await v1.create_namespaced_pod("default", manifest(name, nodeName="nowhere"))
            seen = []
            async with watch.Watch() as w:
                # Without timeout_seconds the official Watch reconnects from its last resourceVersion.
                async for event in w.stream(v1.list_namespaced_pod, "default"):
                    seen.append(event["object"].metadata.name)
                    if len(seen) == 3:
                        break
            assert sorted(seen) == ["a", "b", "c"]
            assert k8s.counters["watch pods"] >= 3
