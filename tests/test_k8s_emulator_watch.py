"""Watches of the emulated API server: resume from a resourceVersion, bookmarks, selectors, 410 Gone and relist."""

from __future__ import annotations

import json
from typing import Any

import pytest
from kubernetes.aio import client, config, watch
from kubernetes.aio.client.exceptions import ApiException
from test_k8s_emulator_support import k8s, manifest, v1

from flytelike.testing import KubernetesEmulator

__all__ = ["k8s", "v1"]


async def events(v1: client.CoreV1Api, **kwargs: Any) -> list[tuple[str, str]]:
    """(type, name or resourceVersion for bookmarks) of a watch that ends after ``timeout_seconds``."""
    seen = []
    async with watch.Watch() as w:
        async for event in w.stream(v1.list_namespaced_pod, "default", **kwargs):
            raw = event["raw_object"]
            seen.append((event["type"], raw["metadata"].get("name") or raw["metadata"]["resourceVersion"]))
    return seen


async def test_watch_from_nothing_lists_then_follows(v1: client.CoreV1Api) -> None:
    await v1.create_namespaced_pod("default", manifest("a", command=["sleep", "30"], nodeName="nowhere"))
    seen = await events(v1, timeout_seconds=1)
    assert seen == [("ADDED", "a")]


async def test_resume_from_a_resource_version_replays_only_later_changes(v1: client.CoreV1Api) -> None:
    first = await v1.create_namespaced_pod("default", manifest("a", nodeName="nowhere"))
    await v1.create_namespaced_pod("default", manifest("b", nodeName="nowhere"))
    await v1.delete_namespaced_pod("a", "default", grace_period_seconds=0)
    seen = await events(v1, resource_version=first.metadata.resource_version, timeout_seconds=1)
    assert seen == [("ADDED", "b"), ("DELETED", "a")]


async def test_bookmarks_carry_the_latest_resource_version(k8s: KubernetesEmulator, v1: client.CoreV1Api) -> None:
    created = await v1.create_namespaced_pod("default", manifest("a", nodeName="nowhere"))
    w = watch.Watch()
    kinds = []
    async with w:
        async for event in w.stream(
            v1.list_namespaced_pod,
            "default",
            resource_version=created.metadata.resource_version,
            allow_watch_bookmarks=True,
            timeout_seconds=1,
        ):
            kinds.append(event["type"])
    assert kinds
    assert set(kinds) == {"BOOKMARK"}
    assert w.resource_version == str(k8s.resource_version)


async def test_a_selector_sees_objects_enter_and_leave(k8s: KubernetesEmulator, v1: client.CoreV1Api) -> None:
    start = (await v1.list_namespaced_pod("default")).metadata.resource_version
    await v1.create_namespaced_pod("default", manifest("a", labels={"app": "x"}, nodeName="nowhere"))
    await v1.create_namespaced_pod("default", manifest("b", labels={"app": "y"}, nodeName="nowhere"))
    seen = await events(v1, resource_version=start, label_selector="app in (x)", timeout_seconds=1)
    assert seen == [("ADDED", "a")]
    # A pod that stops matching leaves the selection with DELETED, as the real watch cache reports it.
    await v1.delete_namespaced_pod("a", "default", grace_period_seconds=0)
    listed = await v1.list_namespaced_pod("default", field_selector="metadata.name!=a")
    assert [p.metadata.name for p in listed.items] == ["b"]


async def test_unknown_field_selectors_are_400(v1: client.CoreV1Api) -> None:
    with pytest.raises(ApiException) as error:
        await v1.list_namespaced_pod("default", field_selector="spec.image=x")
    assert error.value.status == 400
    assert json.loads(error.value.body)["message"].startswith(
        '"spec.image" is not a known field selector: only "metadata.name"'
    )


async def test_a_too_old_resource_version_is_410_then_a_relist_resumes() -> None:
    async with KubernetesEmulator(history=3) as small:
        api = await config.new_client_from_config(str(small.kubeconfig_path))
        async with api:
            core = client.CoreV1Api(api)
            first = await core.create_namespaced_pod("default", manifest("p0", nodeName="nowhere"))
            for i in range(1, 5):
                await core.create_namespaced_pod("default", manifest(f"p{i}", nodeName="nowhere"))
            with pytest.raises(ApiException) as gone:
                await events(core, resource_version=first.metadata.resource_version, timeout_seconds=1)
            assert gone.value.status == 410
            assert gone.value.reason.startswith(
                f"Expired: too old resource version: {first.metadata.resource_version} ("
            )
            relisted = await core.list_namespaced_pod("default")
            assert len(relisted.items) == 5
            await core.delete_namespaced_pod("p0", "default", grace_period_seconds=0)
            seen = await events(core, resource_version=relisted.metadata.resource_version, timeout_seconds=1)
            assert seen == [("DELETED", "p0")]


async def test_force_410_answers_the_next_watch_with_gone(k8s: KubernetesEmulator, v1: client.CoreV1Api) -> None:
    rv = (await v1.list_namespaced_pod("default")).metadata.resource_version
    k8s.force_410()
    with pytest.raises(ApiException) as gone:
        await events(v1, resource_version=rv, timeout_seconds=1)
    assert gone.value.status == 410
    assert await events(v1, resource_version=rv, timeout_seconds=1) == []  # only the next one


async def test_compaction_expires_older_resource_versions(k8s: KubernetesEmulator, v1: client.CoreV1Api) -> None:
    old = await v1.create_namespaced_pod("default", manifest("a", nodeName="nowhere"))
    await v1.create_namespaced_pod("default", manifest("b", nodeName="nowhere"))
    k8s.compact()
    with pytest.raises(ApiException) as gone:
        await events(v1, resource_version=old.metadata.resource_version, timeout_seconds=1)
    assert gone.value.status == 410


async def test_dropped_watches_end_after_n_events(k8s: KubernetesEmulator, v1: client.CoreV1Api) -> None:
    for name in ("a", "b", "c"):
        await v1.create_namespaced_pod("default", manifest(name, nodeName="nowhere"))
    k8s.faults.drop_watch_every = 2
    seen = await events(v1, timeout_seconds=5)
    assert seen == [("ADDED", "a"), ("ADDED", "b")]
