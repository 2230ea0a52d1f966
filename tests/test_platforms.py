"""Platforms: Kubernetes / Batch / Local validation, their resources, overlays, and the Metaflow seeds (000-003)."""

from __future__ import annotations

import pickle
from collections.abc import Callable
from typing import Any

import pytest

import flytelike as fl
from flytelike import SpecError


def spec_error(build: Callable[[], object]) -> SpecError:
    with pytest.raises(SpecError) as info:
        build()
    assert info.value.accepted, f"{info.value} names no accepted alternative"
    return info.value


# --- Metaflow equivalents (seeds 000-003) ---


@pytest.mark.parametrize(
    ("platform", "cpu", "memory", "gpu", "shm"),
    [
        (fl.Batch(cpu=4, memory=16384), "4", "16Gi", None, None),
        (fl.Batch(cpu=8, memory=32768, gpu=2), "8", "32Gi", 2, None),
        (fl.Batch(cpu=4, memory=16384, inferentia=1), "4", "16Gi", None, None),
        (fl.Batch(cpu=8, memory=32768, shared_memory=16384), "8", "32Gi", None, "16Gi"),
        (fl.Batch(image="my-registry.com/ml-image:latest", cpu=4, memory=16384), "4", "16Gi", None, None),
        (fl.Batch(cpu=4, memory=8192, tags={"Project": "DataPipeline", "Environment": "Production"}), "4", "8Gi",
         None, None),
        (fl.Batch(gpu=2, queue="gpu-queue"), None, None, 2, None),
        (fl.Batch(memory=16000, queue="cpu-queue"), None, "16000Mi", None, None),
        (fl.Batch(memory=60000, cpu=1), "1", "60000Mi", None, None),
        (fl.Kubernetes(memory=16000), None, "16000Mi", None, None),
        (fl.Kubernetes(cpu=4, memory=16000, disk=50000), "4", "16000Mi", None, None),
        (fl.Kubernetes(cpu=2, memory="8Gi", gpu=1, shared_memory="1Gi"), "2", "8Gi", 1, "1Gi"),
    ],
)  # fmt: skip
def test_metaflow_platform_examples(
    platform: fl.Platform, cpu: str | None, memory: str | None, gpu: int | None, shm: str | None
) -> None:
    r = platform.resources()
    assert (str(r.cpu.request) if r.cpu else None) == cpu
    assert (str(r.memory.request) if r.memory else None) == memory  # integer memory counts MiB
    assert r.gpu == gpu
    assert (str(r.shm.request) if isinstance(r.shm, fl.Amount) else r.shm) == shm


def test_metaflow_batch_details() -> None:
    b = fl.Batch(cpu=4, memory=16384, inferentia=1)
    assert b.neuron_devices == 1
    assert fl.Batch(trainium=2).neuron_devices == 2
    assert fl.Batch(cpu=4, memory=8192, tags={"Project": "DataPipeline"}).tags == {"Project": "DataPipeline"}
    k = fl.Kubernetes(memory=16000, disk=50000)
    assert k.resources().disk is not None
    assert str(k.resources().disk.request) == "50000Mi"  # Metaflow's pod spec: ephemeral-storage: "50000Mi"


def test_metaflow_resources_equivalents() -> None:
    # @resources(cpu=4, memory=16000, gpu=1) / disk=50000 / shared_memory=8192, spelled with units.
    r = fl.Resources(cpu=4, memory="16000Mi", gpu=1, disk="50000Mi", shm="8192Mi")
    assert repr(r) == "Resources(cpu='4', memory='16000Mi', gpu=1, disk='50000Mi', shm='8Gi')"


def test_every_design_parameter_is_accepted() -> None:
    k = fl.Kubernetes(
        namespace="ml",
        node_selector={"pool": "gpu"},
        tolerations=[fl.Toleration(key="nvidia.com/gpu", operator="Exists", effect="NoSchedule")],
        service_account="trainer",
        labels={"team": "ml"},
        annotations={"example.com/owner": "Ada Lovelace <ada@example.com>"},
        image_pull_policy="IfNotPresent",
        persistent_volume_claims={"datasets": "/data"},
        qos="Guaranteed",
    )
    assert k.namespace == "ml"
    b = fl.Batch(
        queue="q",
        iam_role="arn:aws:iam::123456789012:role/batch",
        execution_role="arn:aws:iam::123456789012:role/exec",
        shared_memory=1024,
        max_swap=2048,
        swappiness=60,
        inferentia=0,
        trainium=None,
        efa=1,
        use_tmpfs=True,
        tmpfs_size=512,
        tmpfs_path="/flytelike_tmp",
        ephemeral_storage=50,
        tags={"team": "ml"},
        log_driver="awslogs",
        log_options=["awslogs-group:aws/batch/job"],
        privileged=False,
        cpu=4,
        memory=16384,
        gpu=1,
    )
    assert b.log_options == ("awslogs-group:aws/batch/job",)
    assert fl.Local(process=True).process is True


# --- Batch rules ---


@pytest.mark.parametrize("value", [0, 60, 100])
def test_swappiness_range_accepted(value: int) -> None:
    assert fl.Batch(swappiness=value).swappiness == value


@pytest.mark.parametrize("value", [-1, 101, 50.0, True, "60"])
def test_swappiness_range_rejected(value: object) -> None:
    e = spec_error(lambda: fl.Batch(swappiness=value))  # type: ignore[arg-type]
    assert (e.field, e.value) == ("Batch.swappiness", value)


@pytest.mark.parametrize("value", [21, 100, 200])
def test_ephemeral_storage_range_accepted(value: int) -> None:
    assert fl.Batch(ephemeral_storage=value).ephemeral_storage == value


@pytest.mark.parametrize("value", [20, 201, 500, 0, 50.0, True])
def test_ephemeral_storage_range_rejected(value: object) -> None:
    e = spec_error(lambda: fl.Batch(ephemeral_storage=value))  # type: ignore[arg-type]
    assert (e.field, e.value) == ("Batch.ephemeral_storage", value)
    assert "21" in str(e)


def test_tmpfs_rules() -> None:
    assert fl.Batch(use_tmpfs=True, tmpfs_path="/scratch", tmpfs_size=100).tmpfs_path == "/scratch"
    assert fl.Batch(tmpfs_size=100).tmpfs_size == 100
    e = spec_error(lambda: fl.Batch(tmpfs_path="scratch"))
    assert (e.field, e.value) == ("Batch.tmpfs_path", "scratch")
    for kwargs in ({"tmpfs_size": 100}, {"tmpfs_path": "/x"}):
        e = spec_error(lambda kwargs=kwargs: fl.Batch(use_tmpfs=False, **kwargs))  # type: ignore[misc]
        assert e.field == "Batch.use_tmpfs"
    assert fl.Batch(use_tmpfs=False).use_tmpfs is False


def test_inferentia_and_trainium_are_exclusive() -> None:
    e = spec_error(lambda: fl.Batch(inferentia=1, trainium=1))
    assert e.field == "Batch.trainium"
    assert "inferentia" in str(e)
    assert fl.Batch(inferentia=1, trainium=0).neuron_devices == 1


def test_log_options_need_a_driver_and_name_value_form() -> None:
    e = spec_error(lambda: fl.Batch(log_options=["awslogs-group:x"]))
    assert e.field == "Batch.log_options"
    assert "log_driver" in str(e)
    e = spec_error(lambda: fl.Batch(log_driver="awslogs", log_options=["awslogs-group"]))
    assert (e.field, e.value) == ("Batch.log_options", "awslogs-group")
    e = spec_error(lambda: fl.Batch(log_driver="stdout"))
    assert "awslogs" in str(e.accepted)
    assert fl.Batch(log_driver="awslogs", log_options="a:b").log_options == ("a:b",)


@pytest.mark.parametrize(
    ("tags", "field"),
    [
        ({"aws:team": "x"}, "Batch.tags key"),
        ({"AWS:team": "x"}, "Batch.tags key"),
        ({"k" * 129: "v"}, "Batch.tags key"),
        ({"": "v"}, "Batch.tags key"),
        ({"k": "v" * 257}, "Batch.tags['k']"),
        ({"k": "v#"}, "Batch.tags['k']"),
        ({"k": 1}, "Batch.tags['k']"),
        ({f"k{i}": "v" for i in range(51)}, "Batch.tags"),
        ([("a", "b")], "Batch.tags"),
    ],
)
def test_aws_tag_rules(tags: object, field: str) -> None:
    e = spec_error(lambda: fl.Batch(tags=tags))  # type: ignore[arg-type]
    assert e.field == field


def test_aws_tag_limits_accepted() -> None:
    assert len(fl.Batch(tags={f"k{i}": "v" for i in range(50)}).tags or {}) == 50
    assert fl.Batch(tags={"k" * 128: "v" * 256}).tags == {"k" * 128: "v" * 256}
    assert fl.Batch(tags={"Cost Center": "a.b:c/d=e+f-g@h_i", "empty": ""}).tags is not None
    assert fl.Batch(tags="a=b,c=d").tags == {"a": "b", "c": "d"}


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"queue": ""}, "Batch.queue"),
        ({"iam_role": 5}, "Batch.iam_role"),
        ({"shared_memory": "1Gi"}, "Batch.shared_memory"),
        ({"max_swap": -1}, "Batch.max_swap"),
        ({"efa": True}, "Batch.efa"),
        ({"gpu": -1}, "Batch.gpu"),
        ({"gpu": 1.5}, "Batch.gpu"),
        ({"privileged": "yes"}, "Batch.privileged"),
        ({"use_tmpfs": 1}, "Batch.use_tmpfs"),
        ({"memory": -1}, "Batch.memory"),
        ({"memory": "16GB"}, "Batch.memory"),
        ({"cpu": -1}, "Batch.cpu"),
        ({"cpu": "0.0001"}, "Batch.cpu"),
    ],
)
def test_batch_field_types(kwargs: dict[str, Any], field: str) -> None:
    assert spec_error(lambda: fl.Batch(**kwargs)).field == field


# --- Kubernetes rules ---


@pytest.mark.parametrize("namespace", ["ml", "ml-team", "a" * 63, "a1"])
def test_namespace_accepted(namespace: str) -> None:
    assert fl.Kubernetes(namespace=namespace).namespace == namespace


@pytest.mark.parametrize("namespace", ["Bad_NS", "a" * 64, "-a", "a-", "ml.team", "", "ML"])
def test_namespace_dns_1123_label(namespace: str) -> None:
    e = spec_error(lambda: fl.Kubernetes(namespace=namespace))
    assert (e.field, e.value) == ("Kubernetes.namespace", namespace)


@pytest.mark.parametrize("value", ["x" * 63, "", "a.b_c-d", "A1", "v1.2"])
def test_label_values_accepted(value: str) -> None:
    assert fl.Kubernetes(labels={"app": value}).labels == {"app": value}


@pytest.mark.parametrize("value", ["x" * 64, "bad value", "-x", "x-", "_x", "a/b", 1, None])
def test_label_values_rejected(value: object) -> None:
    e = spec_error(lambda: fl.Kubernetes(labels={"app": value}))  # type: ignore[dict-item]
    assert (e.field, e.value) == ("Kubernetes.labels['app']", value)
    assert "63" in str(e.accepted)


@pytest.mark.parametrize("key", ["app", "example.com/team", "a.b-c_d", "x" * 63, "sub.example.com/" + "k" * 63])
def test_label_keys_accepted(key: str) -> None:
    assert fl.Kubernetes(labels={key: "v"}).labels == {key: "v"}


@pytest.mark.parametrize(
    "key", ["Example.com/team", "/team", "a/b/c", "x" * 64, "bad key", "example.com/", "-a", "a" * 254 + "/k"]
)
def test_label_keys_rejected(key: str) -> None:
    e = spec_error(lambda: fl.Kubernetes(labels={key: "v"}))
    assert (e.field, e.value) == ("Kubernetes.labels key", key)


def test_annotations() -> None:
    k = fl.Kubernetes(annotations={"example.com/note": "any text, even spaces and ünïcode!"})
    assert k.annotations == {"example.com/note": "any text, even spaces and ünïcode!"}
    assert spec_error(lambda: fl.Kubernetes(annotations={"bad key!": "x"})).field == "Kubernetes.annotations key"
    assert spec_error(lambda: fl.Kubernetes(annotations={"k": 1})).field == "Kubernetes.annotations['k']"  # type: ignore[dict-item]
    huge = {f"k{i}": "x" * 1024 for i in range(300)}
    assert spec_error(lambda: fl.Kubernetes(annotations=huge)).field == "Kubernetes.annotations"


@pytest.mark.parametrize(
    ("selector", "expected"),
    [
        ({"pool": "gpu"}, {"pool": "gpu"}),
        ("pool=gpu,zone=a", {"pool": "gpu", "zone": "a"}),
        (" pool = gpu , zone=a", {"pool": "gpu", "zone": "a"}),
        ("kubernetes.io/arch=amd64", {"kubernetes.io/arch": "amd64"}),
    ],
)
def test_node_selector_as_dict_or_string(selector: object, expected: dict[str, str]) -> None:
    assert fl.Kubernetes(node_selector=selector).node_selector == expected  # type: ignore[arg-type]


@pytest.mark.parametrize("selector", ["pool", "=gpu", "pool=bad value", "a=b=c", 5, {"pool": "-x"}])
def test_node_selector_rejected(selector: object) -> None:
    e = spec_error(lambda: fl.Kubernetes(node_selector=selector))  # type: ignore[arg-type]
    assert e.field.startswith("Kubernetes.node_selector")


def test_tolerations() -> None:
    k = fl.Kubernetes(
        tolerations=[
            fl.Toleration(key="nvidia.com/gpu", operator="Exists", effect="NoSchedule"),
            {"key": "spot", "operator": "Equal", "value": "true", "effect": "NoExecute", "tolerationSeconds": 30},
            {"key": "dedicated", "value": "ml", "toleration_seconds": 5, "effect": "NoExecute"},
            {"operator": "Exists"},
        ]
    )
    assert k.tolerations is not None
    tolerations = list(k.tolerations)
    assert tolerations[1] == fl.Toleration("spot", "Equal", "true", "NoExecute", 30)  # camelCase mapped
    assert tolerations[2].toleration_seconds == 5
    assert tolerations[3] == fl.Toleration(operator="Exists")


@pytest.mark.parametrize(
    ("toleration", "field"),
    [
        ({"key": "k", "operator": "Exists", "value": "v"}, "Toleration.value"),
        ({"operator": "Equal"}, "Toleration.operator"),
        ({"key": "k", "value": "v", "effect": "NoSchedule", "tolerationSeconds": 5}, "Toleration.toleration_seconds"),
        ({"key": "k", "effect": "NoExecute", "tolerationSeconds": -5}, "Toleration.toleration_seconds"),
        ({"key": "k", "operator": "In"}, "Toleration.operator"),
        ({"key": "k", "effect": "Evict"}, "Toleration.effect"),
        ({"key": "bad key"}, "Toleration.key"),
        ({"key": "k", "value": "bad value"}, "Toleration.value"),
        ({"key": "k", "bogus": 1}, "Kubernetes.tolerations"),
        ("k", "Kubernetes.tolerations"),
    ],
)
def test_toleration_rules(toleration: object, field: str) -> None:
    e = spec_error(lambda: fl.Kubernetes(tolerations=[toleration]))  # type: ignore[list-item]
    assert e.field == field


def test_tolerations_must_be_a_list() -> None:
    assert spec_error(lambda: fl.Kubernetes(tolerations={"key": "k"})).field == "Kubernetes.tolerations"  # type: ignore[arg-type]


def test_persistent_volume_claims() -> None:
    assert fl.Kubernetes(persistent_volume_claims={"data": "/data"}).persistent_volume_claims == {"data": "/data"}
    e = spec_error(lambda: fl.Kubernetes(persistent_volume_claims={"data": "data"}))
    assert (e.field, e.value) == ("Kubernetes.persistent_volume_claims['data']", "data")
    e = spec_error(lambda: fl.Kubernetes(persistent_volume_claims={"Data": "/data"}))
    assert e.field == "Kubernetes.persistent_volume_claims key"


@pytest.mark.parametrize("policy", ["Always", "IfNotPresent", "Never"])
def test_image_pull_policy_accepted(policy: str) -> None:
    assert fl.Kubernetes(image_pull_policy=policy).image_pull_policy == policy  # type: ignore[arg-type]


@pytest.mark.parametrize("policy", ["always", "Sometimes", ""])
def test_image_pull_policy_rejected(policy: str) -> None:
    e = spec_error(lambda: fl.Kubernetes(image_pull_policy=policy))  # type: ignore[arg-type]
    assert (e.field, e.value) == ("Kubernetes.image_pull_policy", policy)
    assert "IfNotPresent" in str(e.accepted)


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"qos": "BestEffort"}, "Kubernetes.qos"),
        ({"service_account": "My SA"}, "Kubernetes.service_account"),
        ({"image": ""}, "Kubernetes.image"),
        ({"gpu": 1.5}, "Kubernetes.gpu"),
        ({"disk": 1.5}, "Kubernetes.disk"),
        ({"memory": "1gb"}, "Kubernetes.memory"),
        ({"shared_memory": "auto!"}, "Kubernetes.shared_memory"),
    ],
)
def test_kubernetes_field_types(kwargs: dict[str, Any], field: str) -> None:
    assert spec_error(lambda: fl.Kubernetes(**kwargs)).field == field


def test_local_process_is_a_bool() -> None:
    assert fl.Local().process is None
    assert spec_error(lambda: fl.Local(process=1)).field == "Local.process"  # type: ignore[arg-type]


# --- overlay and value semantics ---


def test_overlay_set_fields_win_the_rest_comes_from_base() -> None:
    top = fl.Batch(queue="a", cpu=2)
    base = fl.Batch(queue="b", memory=100, swappiness=5)
    merged = top.overlay(base)
    assert merged == fl.Batch(queue="a", cpu=2, memory=100, swappiness=5)
    assert base.overlay(top) == fl.Batch(queue="b", cpu=2, memory=100, swappiness=5)


def test_overlay_keeps_explicit_falsy_values() -> None:
    merged = fl.Batch(swappiness=0, privileged=False).overlay(fl.Batch(swappiness=60, privileged=True))
    assert (merged.swappiness, merged.privileged) == (0, False)  # type: ignore[attr-defined]


def test_overlay_of_different_platforms_is_an_error() -> None:
    e = spec_error(lambda: fl.Batch(queue="a").overlay(fl.Kubernetes()))
    assert e.field == "platform"


def test_platform_repr_shows_only_given_fields() -> None:
    assert repr(fl.Batch(cpu=4, memory=16384)) == "Batch(cpu=4, memory=16384)"
    assert repr(fl.Kubernetes()) == "Kubernetes()"


def test_platforms_pickle() -> None:
    for p in (
        fl.Kubernetes(node_selector="a=b", tolerations=[{"operator": "Exists"}], labels={"x": "y"}),
        fl.Batch(queue="q", tags={"a": "b"}, log_driver="awslogs", log_options=["a:b"]),
        fl.Local(process=True),
    ):
        assert pickle.loads(pickle.dumps(p)) == p


def test_platform_names() -> None:
    assert (fl.Kubernetes.name, fl.Batch.name, fl.Local.name) == ("kubernetes", "batch", "local")
    assert fl.Local().resources().is_empty()


def test_platform_mappings_are_immutable_and_platforms_hashable() -> None:
    import pickle

    k = fl.Kubernetes(labels={"team": "ml"}, node_selector="pool=gpu", annotations={"a": "b"})
    b = fl.Batch(tags={"Project": "x"})
    for mapping in (k.labels, k.node_selector, k.annotations, b.tags):
        with pytest.raises(TypeError, match="immutable"):
            mapping["new"] = "value"  # type: ignore[index]
    assert hash(k) == hash(fl.Kubernetes(labels={"team": "ml"}, node_selector={"pool": "gpu"}, annotations={"a": "b"}))
    assert len({b, fl.Batch(tags={"Project": "x"})}) == 1
    assert pickle.loads(pickle.dumps(k)) == k
    env = fl.TaskEnvironment(name="frozen", env_vars={"A": "1"})
    with pytest.raises(TypeError, match="immutable"):
        env.options.env_vars["B"] = "2"  # type: ignore[index]
