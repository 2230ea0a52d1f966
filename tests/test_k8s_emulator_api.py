"""The emulated API server through the official client: CRUD, Status errors and strict validation."""

from __future__ import annotations

import base64
import json

import aiohttp
import kubernetes_validate
import pytest
from kubernetes.aio import client, config
from kubernetes.aio.client.exceptions import ApiException
from test_k8s_emulator_support import k8s, manifest, raw, v1, validate

from flytelike.testing import KubernetesEmulator

__all__ = ["k8s", "v1"]


def status_of(error: ApiException) -> dict[str, object]:
    body: dict[str, object] = json.loads(error.body)
    return body


async def test_create_get_list_delete(k8s: KubernetesEmulator, v1: client.CoreV1Api) -> None:
    created = await v1.create_namespaced_pod("default", manifest("a", limits={"cpu": "1", "memory": "1Gi"}))
    assert created.metadata.uid
    assert created.metadata.resource_version
    assert created.spec.containers[0].resources.requests == {"cpu": "1", "memory": "1Gi"}  # defaulted from limits
    assert created.status.phase == "Pending"
    assert created.status.qos_class == "Guaranteed"
    got = await v1.read_namespaced_pod("a", "default")
    assert got.metadata.uid == created.metadata.uid
    await v1.create_namespaced_pod("default", manifest("b", labels={"app": "other"}))
    listed = await v1.list_namespaced_pod("default", label_selector="app=test")
    assert [p.metadata.name for p in listed.items] == ["a"]
    assert int(listed.metadata.resource_version) >= int(created.metadata.resource_version)
    await v1.delete_namespaced_pod("a", "default", grace_period_seconds=0)
    with pytest.raises(ApiException) as missing:
        await v1.read_namespaced_pod("a", "default")
    assert missing.value.status == 404
    assert status_of(missing.value)["reason"] == "NotFound"
    assert status_of(missing.value)["message"] == 'pods "a" not found'
    await v1.delete_collection_namespaced_pod("default", label_selector="app=other")
    assert k8s.pods() == []


async def test_lists_are_paginated_by_limit_and_continue(v1: client.CoreV1Api) -> None:
    for name in ("a", "b", "c"):
        await v1.create_namespaced_pod("default", manifest(name, nodeName="nowhere"))
    first = await v1.list_namespaced_pod("default", limit=2)
    assert [p.metadata.name for p in first.items] == ["a", "b"]
    assert first.metadata.remaining_item_count == 1
    rest = await v1.list_namespaced_pod("default", limit=2, _continue=first.metadata._continue)
    assert [p.metadata.name for p in rest.items] == ["c"]
    assert rest.metadata._continue is None
    assert rest.metadata.resource_version == first.metadata.resource_version


async def test_second_create_is_409_already_exists(v1: client.CoreV1Api) -> None:
    await v1.create_namespaced_pod("default", manifest("twice"))
    with pytest.raises(ApiException) as error:
        await v1.create_namespaced_pod("default", manifest("twice"))
    assert error.value.status == 409
    status = status_of(error.value)
    assert status["reason"] == "AlreadyExists"
    assert status["details"] == {"name": "twice", "kind": "pods"}


async def test_unknown_namespace_is_404(v1: client.CoreV1Api) -> None:
    with pytest.raises(ApiException) as error:
        await v1.create_namespaced_pod("nowhere", manifest("a"))
    assert error.value.status == 404
    assert status_of(error.value)["message"] == 'namespaces "nowhere" not found'


async def invalid_causes(v1: client.CoreV1Api, pod: dict[str, object]) -> list[dict[str, str]]:
    with pytest.raises(ApiException) as error:
        await v1.create_namespaced_pod("default", pod)
    assert error.value.status == 422
    status = status_of(error.value)
    assert status["reason"] == "Invalid"
    details = status["details"]
    assert isinstance(details, dict)
    causes: list[dict[str, str]] = details["causes"]
    return causes


async def test_bad_name_is_422_naming_the_field(v1: client.CoreV1Api) -> None:
    causes = await invalid_causes(v1, manifest("Bad_Name"))
    assert causes[0]["field"] == "metadata.name"
    assert causes[0]["reason"] == "FieldValueInvalid"
    assert causes[0]["message"].startswith('Invalid value: "Bad_Name": a lowercase RFC 1123 label')
    long = "a" * 64
    causes = await invalid_causes(v1, manifest(long))
    assert causes[0]["message"] == f'Invalid value: "{long}": must be no more than 63 characters'


async def test_label_syntax_is_checked(v1: client.CoreV1Api) -> None:
    causes = await invalid_causes(v1, manifest("a", labels={"app": "not valid!"}))
    assert causes == [
        {
            "reason": "FieldValueInvalid",
            "field": "metadata.labels",
            "message": 'Invalid value: "not valid!": a valid label must be an empty string or consist of alphanumeric '
            "characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or "
            "'my_value',  or '12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')",
        }
    ]


async def test_requests_above_limits_are_422(v1: client.CoreV1Api) -> None:
    causes = await invalid_causes(v1, manifest("a", requests={"cpu": "2"}, limits={"cpu": "1"}))
    assert causes == [
        {
            "reason": "FieldValueInvalid",
            "field": "spec.containers[0].resources.requests",
            "message": 'Invalid value: "2": must be less than or equal to cpu limit of 1',
        }
    ]


async def test_extended_resources_are_whole_and_requests_equal_limits(v1: client.CoreV1Api) -> None:
    causes = await invalid_causes(v1, manifest("a", limits={"nvidia.com/gpu": "500m"}))
    assert {c["message"] for c in causes} == {'Invalid value: "500m": must be an integer'}
    causes = await invalid_causes(v1, manifest("b", requests={"nvidia.com/gpu": "1"}, limits={"nvidia.com/gpu": "2"}))
    assert causes[0]["field"] == "spec.containers[0].resources.requests[nvidia.com/gpu]"
    assert causes[0]["message"] == 'Invalid value: "1": must be equal to nvidia.com/gpu limit of 2'
    causes = await invalid_causes(v1, manifest("c", requests={"nvidia.com/gpu": "1"}))
    assert causes[0] == {
        "reason": "FieldValueRequired",
        "field": "spec.containers[0].resources.limits",
        "message": "Required value: Limit must be set for non overcommitable resources",
    }
    causes = await invalid_causes(v1, manifest("d", limits={"gpu": "1"}))
    assert causes[0]["message"] == 'Invalid value: "gpu": must be a standard resource for containers'


async def test_restart_policy_container_name_and_image_are_checked(v1: client.CoreV1Api) -> None:
    pod = manifest("a", restartPolicy="Sometimes")
    causes = await invalid_causes(v1, pod)
    assert causes[0] == {
        "reason": "FieldValueNotSupported",
        "field": "spec.restartPolicy",
        "message": 'Unsupported value: "Sometimes": supported values: "Always", "OnFailure", "Never"',
    }
    pod = manifest("b")
    pod["spec"]["containers"][0].update(name="", image="")
    causes = await invalid_causes(v1, pod)
    assert [(c["field"], c["reason"]) for c in causes] == [
        ("spec.containers[0].name", "FieldValueRequired"),
        ("spec.containers[0].image", "FieldValueRequired"),
    ]


async def test_bad_quantity_is_rejected_by_the_decoder(v1: client.CoreV1Api) -> None:
    # As the real server: an amount that is not a quantity fails decoding (400), before validation.
    with pytest.raises(ApiException) as error:
        await v1.create_namespaced_pod("default", manifest("a", limits={"memory": "4GiB"}))
    assert error.value.status == 400
    message = status_of(error.value)["message"]
    assert isinstance(message, str)
    assert message.startswith('Pod in version "v1" cannot be handled as a Pod: quantities must match the regular')
    assert 'spec.containers[0].resources.limits[memory]: "4GiB"' in message


async def test_unknown_fields_are_rejected_unless_the_request_asks_to_drop_them(k8s: KubernetesEmulator) -> None:
    pod = manifest("a")
    pod["spec"]["containers"][0]["cpus"] = 2
    pod["spec"]["nodeSelectr"] = {"a": "b"}
    path = "/api/v1/namespaces/default/pods"
    status, body, _ = await raw(k8s, "POST", path, pod)
    assert status == 400
    assert body["reason"] == "BadRequest"
    assert body["message"] == (
        'Pod in version "v1" cannot be handled as a Pod: strict decoding error: '
        'unknown field "spec.containers[0].cpus", unknown field "spec.nodeSelectr"'
    )
    status, body, headers = await raw(k8s, "POST", path, pod, {"fieldValidation": "Warn"})
    assert status == 201
    assert "nodeSelectr" not in body["spec"]
    assert (
        headers["Warning"]
        == '299 - "unknown field "spec.containers[0].cpus"", 299 - "unknown field "spec.nodeSelectr""'
    )


async def test_mistyped_field_is_400(k8s: KubernetesEmulator) -> None:
    pod = manifest("a")
    pod["spec"]["activeDeadlineSeconds"] = "soon"
    status, body, _ = await raw(k8s, "POST", "/api/v1/namespaces/default/pods", pod)
    assert status == 400
    assert body["message"] == (
        'Pod in version "v1" cannot be handled as a Pod: '
        "json: cannot unmarshal string into Go struct field Pod.spec.activeDeadlineSeconds of type int64"
    )


async def test_secrets_crud(v1: client.CoreV1Api) -> None:
    body = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "hf-token"}, "stringData": {"token": "s3cr3t"}}
    created = await v1.create_namespaced_secret("default", body)
    assert created.data == {"token": base64.b64encode(b"s3cr3t").decode()}
    assert created.type == "Opaque"
    created.data = {"token": base64.b64encode(b"new").decode()}
    replaced = await v1.replace_namespaced_secret("hf-token", "default", created)
    assert int(replaced.metadata.resource_version) > int(created.metadata.resource_version)
    assert [s.metadata.name for s in (await v1.list_namespaced_secret("default")).items] == ["hf-token"]
    await v1.delete_namespaced_secret("hf-token", "default")
    with pytest.raises(ApiException) as error:
        await v1.read_namespaced_secret("hf-token", "default")
    assert error.value.status == 404
    bad = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "x"}, "data": {"bad key": "YQ=="}}
    with pytest.raises(ApiException) as invalid:
        await v1.create_namespaced_secret("default", bad)
    assert invalid.value.status == 422


async def test_events_create_and_list(v1: client.CoreV1Api) -> None:
    event = {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"name": "e1"},
        "involvedObject": {"kind": "Pod", "name": "a", "namespace": "default"},
        "reason": "Testing",
        "message": "hello",
        "type": "Normal",
    }
    await v1.create_namespaced_event("default", event)
    listed = await v1.list_namespaced_event("default", field_selector="reason=Testing")
    assert [e.message for e in listed.items] == ["hello"]
    assert (await v1.list_namespaced_event("default", field_selector="reason=Other")).items == []


async def test_nodes_and_discovery(k8s: KubernetesEmulator, v1: client.CoreV1Api) -> None:
    nodes = await v1.list_node()
    gpu = next(n for n in nodes.items if n.metadata.name == "gpu-1")
    assert gpu.status.allocatable["nvidia.com/gpu"] == "1"
    assert gpu.metadata.labels["nvidia.com/gpu.product"] == "NVIDIA-A10G"
    api = await config.new_client_from_config(str(k8s.kubeconfig_path))
    async with api:
        version = await client.VersionApi(api).get_code()
        versions = await client.CoreApi(api).get_api_versions()
    assert version.major == "1"
    assert versions.versions == ["v1"]


async def test_a_token_is_required_when_configured() -> None:
    async with KubernetesEmulator(token="let-me-in") as k8s:
        async with (
            aiohttp.ClientSession() as session,
            session.get(k8s.url + "/api/v1/namespaces/default/pods") as response,
        ):
            assert response.status == 401
            assert (await response.json())["reason"] == "Unauthorized"
        api = await config.new_client_from_config(str(k8s.kubeconfig_path))
        async with api:
            listed = await client.CoreV1Api(api).list_namespaced_pod("default")
        assert listed.items == []


def test_the_manifests_used_here_pass_the_strict_schema() -> None:
    validate(manifest("a", limits={"cpu": "1", "nvidia.com/gpu": "1"}, requests={"cpu": "500m"}))
    bad = manifest("a")
    bad["spec"]["containers"][0]["cpus"] = 2
    with pytest.raises(kubernetes_validate.ValidationError, match="cpus"):
        validate(bad)


async def test_the_stricter_checks_can_be_relaxed_to_the_real_servers() -> None:
    async with KubernetesEmulator(strict_names=False, strict_fields=False) as k8s:
        long = "a" * 100  # a DNS subdomain of up to 253 characters is a valid pod name
        status, body, _ = await raw(k8s, "POST", "/api/v1/namespaces/default/pods", manifest(long, nodeName="n"))
        assert (status, body["metadata"]["name"]) == (201, long)
        pod = manifest("b", nodeName="n")
        pod["spec"]["unknownField"] = 1
        status, body, headers = await raw(k8s, "POST", "/api/v1/namespaces/default/pods", pod)
        assert status == 201
        assert "unknownField" not in body["spec"]
        assert headers["Warning"] == '299 - "unknown field "spec.unknownField""'


async def test_logs_of_a_pod_with_two_containers_need_a_container_name(v1: client.CoreV1Api) -> None:
    pod = manifest("two", nodeName="nowhere")
    pod["spec"]["containers"].append({"name": "side", "image": "busybox:1", "command": ["true"]})
    await v1.create_namespaced_pod("default", pod)
    with pytest.raises(ApiException) as error:
        await v1.read_namespaced_pod_log("two", "default")
    assert (
        status_of(error.value)["message"]
        == "a container name must be specified for pod two, choose one of: [main side]"
    )
    with pytest.raises(ApiException) as error:
        await v1.read_namespaced_pod_log("two", "default", container="main")
    assert status_of(error.value)["message"] == 'container "main" in pod "two" is waiting to start: ContainerCreating'
    with pytest.raises(ApiException) as error:
        await v1.read_namespaced_pod_log("two", "default", container="nope")
    assert status_of(error.value)["message"] == "container nope is not valid for pod two"
