"""The wire format: generated code is current, and task templates decode with flyteidl.

The messages flytelike shares with flyteidl (TaskTemplate, Container, Resources, ExtendedResources,
GPUAccelerator, SharedMemory, and the identifier, metadata, interface and security fields they carry) keep
flyteidl's field numbers and types, so a flytelike template is a valid flyteidl.core.TaskTemplate. These tests
decode real templates with flyteidl and compare the descriptors of both IDLs field by field.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterable, Mapping, MutableMapping
from pathlib import Path
from typing import Any

import pytest
from flyteidl.core import tasks_pb2 as flyteidl_tasks
from google.protobuf import descriptor_pb2
from google.protobuf.descriptor import Descriptor, EnumDescriptor
from google.protobuf.duration_pb2 import Duration
from google.protobuf.unknown_fields import UnknownFieldSet

from flytelike._proto.core.v1 import (
    identifier_pb2,
    interface_pb2,
    literals_pb2,
    platforms_pb2,
    security_pb2,
    tasks_pb2,
    types_pb2,
)

REPO_ROOT = Path(__file__).resolve().parent.parent
GENERATOR = REPO_ROOT / "proto" / "generate.py"

# GPUAccelerator.device_class is field 4 in flyteidl's Flyte 2 IDL, numbered as below. flyteidl 1.x releases
# that predate it keep the field as an unknown varint, which the tests read directly.
FLYTEIDL_DEVICE_CLASS_FIELD = 4
FLYTEIDL_DEVICE_CLASSES = {"NVIDIA_GPU": 0, "GOOGLE_TPU": 1, "AMAZON_NEURON": 2, "AMD_GPU": 3, "HABANA_GAUDI": 4}
WIRETYPE_VARINT = 0

# Fields of ours that flyteidl 1.x lacks but that are not numbered from 100 up, because Flyte 2's IDL
# (flyteidl2) defines them with exactly this number, type and meaning.
FIELDS_FROM_FLYTEIDL2 = {
    "flytelike.core.v1.GPUAccelerator.device_class",
    "flytelike.core.v1.RetryPolicy.backoff",
    "flytelike.core.v1.TaskMetadata.cache_ttl",
    "flytelike.core.v1.TaskTemplate.reuse_policy",
}
FIRST_FLYTELIKE_ONLY_NUMBER = 100

# The messages whose shared fields must also keep flyteidl's names (so the JSON forms agree too).
SAME_NAMES = {
    "TaskTemplate",
    "Container",
    "Resources",
    "ResourceEntry",
    "ExtendedResources",
    "GPUAccelerator",
    "SharedMemory",
    "Identifier",
    "KeyValuePair",
}

R = tasks_pb2.Resources


def _fill(target: MutableMapping[str, str], items: Mapping[str, str], *, reverse: bool) -> None:
    """Insert items into a protobuf string map in forward or reverse order."""
    ordered: Iterable[tuple[str, str]] = reversed(list(items.items())) if reverse else items.items()
    for key, value in ordered:
        target[key] = value


def _simple(simple: types_pb2.LiteralType.SimpleType.ValueType, tag: str = "") -> types_pb2.LiteralType:
    literal_type = types_pb2.LiteralType(simple=simple)
    if tag:
        literal_type.structure.tag = tag
    return literal_type


def build_template(
    accelerator: tasks_pb2.GPUAccelerator,
    *,
    platform: platforms_pb2.Platform | None = None,
    reverse_maps: bool = False,
) -> tasks_pb2.TaskTemplate:
    """A fully populated template, as the SDK would write it for a GPU training task."""
    resources = R(
        requests=[
            R.ResourceEntry(name=R.CPU, value="2"),
            R.ResourceEntry(name=R.MEMORY, value="16Gi"),
            R.ResourceEntry(name=R.EPHEMERAL_STORAGE, value="10Gi"),
            R.ResourceEntry(name=R.GPU, value="1"),
        ],
        limits=[
            R.ResourceEntry(name=R.CPU, value="4"),
            R.ResourceEntry(name=R.MEMORY, value="16Gi"),
            R.ResourceEntry(name=R.GPU, value="1"),
        ],
    )
    optional_int = types_pb2.LiteralType(
        union_type=types_pb2.UnionType(
            variants=[
                _simple(types_pb2.LiteralType.INTEGER, tag="int"),
                _simple(types_pb2.LiteralType.NONE, tag="none"),
            ]
        )
    )
    shard_sizes = literals_pb2.Literal()  # a dict[str, int] default, filled in either key order
    for key in sorted("bac", reverse=reverse_maps):
        shard_sizes.dict_value.literals[key].int_value = ord(key)
    interface = interface_pb2.TypedInterface(
        inputs=interface_pb2.VariableMap(
            variables=[
                interface_pb2.VariableEntry(
                    name="shard", variable=interface_pb2.Variable(type=_simple(types_pb2.LiteralType.STRING))
                ),
                interface_pb2.VariableEntry(
                    name="lr",
                    variable=interface_pb2.Variable(
                        type=_simple(types_pb2.LiteralType.FLOAT),
                        default=literals_pb2.Literal(float_value=1e-3),
                    ),
                ),
                interface_pb2.VariableEntry(
                    name="epochs",
                    variable=interface_pb2.Variable(
                        type=optional_int,
                        default=literals_pb2.Literal(
                            union_value=literals_pb2.UnionValue(
                                tag="none", value=literals_pb2.Literal(none_value=literals_pb2.NoneValue())
                            )
                        ),
                    ),
                ),
                interface_pb2.VariableEntry(
                    name="sizes",
                    variable=interface_pb2.Variable(
                        type=types_pb2.LiteralType(map_value_type=_simple(types_pb2.LiteralType.INTEGER)),
                        default=shard_sizes,
                    ),
                ),
            ]
        ),
        outputs=interface_pb2.VariableMap(
            variables=[
                interface_pb2.VariableEntry(
                    name="o0", variable=interface_pb2.Variable(type=_simple(types_pb2.LiteralType.FLOAT))
                )
            ]
        ),
    )
    metadata = tasks_pb2.TaskMetadata(
        cache_enabled=True,
        runtime=tasks_pb2.RuntimeMetadata(version="0.1.0", flavor="flytelike"),
        timeout=Duration(seconds=7200),
        retries=tasks_pb2.RetryPolicy(
            retries=3,
            backoff=tasks_pb2.Backoff(
                initial_delay=Duration(seconds=1), multiplier=2.0, max_delay=Duration(seconds=60)
            ),
            oom_escalation=tasks_pb2.OomEscalation(memory_factor=1.5, memory_cap="64Gi"),
        ),
        cache_version="v1",
        cache_ignored_inputs=["lr"],
        cache_ttl=Duration(seconds=3600),
        environment="training",
        description="Train one shard.",
    )
    template = tasks_pb2.TaskTemplate(
        id=identifier_pb2.Identifier(
            resource_type=identifier_pb2.Identifier.TASK,
            project="acme",
            domain="development",
            name="examples.train.train",
            version="3f2a9c",
            org="acme-org",
        ),
        type="python-task",
        metadata=metadata,
        interface=interface,
        container=tasks_pb2.Container(
            image="ghcr.io/acme/train:1.4",
            command=["python", "-m", "flytelike._entrypoint"],
            args=["--task", "examples.train.train", "--inputs", "s3://bucket/run/inputs.pb"],
            resources=resources,
            env=[tasks_pb2.KeyValuePair(key="HF_HOME", value="/cache")],
        ),
        task_type_version=1,
        reuse_policy=tasks_pb2.ReusePolicy(
            min_replicas=2, max_replicas=2, concurrency=3, idle_ttl=Duration(seconds=300)
        ),
        security_context=security_pb2.SecurityContext(
            secrets=[
                security_pb2.Secret(
                    group="ml",
                    key="hf-token",
                    mount_requirement=security_pb2.Secret.ENV_VAR,
                    env_var="HF_TOKEN",
                )
            ]
        ),
        extended_resources=tasks_pb2.ExtendedResources(
            gpu_accelerator=accelerator,
            shared_memory=tasks_pb2.SharedMemory(mount_path="/dev/shm", mount_name="dshm", size_limit="2Gi"),
        ),
        platform=platform if platform is not None else kubernetes_platform(reverse_maps=reverse_maps),
    )
    _fill(template.config, {"zeta": "1", "alpha": "2", "mid": "3"}, reverse=reverse_maps)
    return template


def kubernetes_platform(*, reverse_maps: bool = False) -> platforms_pb2.Platform:
    kubernetes = platforms_pb2.KubernetesPlatform(
        namespace="ml",
        tolerations=[
            platforms_pb2.Toleration(
                key="nvidia.com/gpu",
                operator=platforms_pb2.Toleration.EXISTS,
                effect=platforms_pb2.Toleration.NO_SCHEDULE,
            ),
            platforms_pb2.Toleration(
                key="spot",
                operator=platforms_pb2.Toleration.EQUAL,
                value="true",
                effect=platforms_pb2.Toleration.NO_EXECUTE,
                toleration_seconds=0,
            ),
        ],
        service_account="trainer",
        image_pull_policy=platforms_pb2.KubernetesPlatform.IF_NOT_PRESENT,
        qos=platforms_pb2.KubernetesPlatform.GUARANTEED,
    )
    _fill(
        kubernetes.node_selector,
        {"nvidia.com/gpu.product": "NVIDIA-A100-SXM4-40GB", "pool": "gpu"},
        reverse=reverse_maps,
    )
    _fill(kubernetes.labels, {"team": "ml", "app": "train", "tier": "batch"}, reverse=reverse_maps)
    _fill(kubernetes.annotations, {"b.example/x": "1", "a.example/y": "2"}, reverse=reverse_maps)
    _fill(kubernetes.persistent_volume_claims, {"datasets": "/data", "ckpt": "/ckpt"}, reverse=reverse_maps)
    return platforms_pb2.Platform(kubernetes=kubernetes)


def batch_platform(*, reverse_maps: bool = False) -> platforms_pb2.Platform:
    batch = platforms_pb2.BatchPlatform(
        queue="gpu",
        iam_role="arn:aws:iam::123456789012:role/job",
        execution_role="arn:aws:iam::123456789012:role/exec",
        shared_memory_mib=2048,
        max_swap_mib=0,
        swappiness=60,
        inferentia=0,
        efa=1,
        use_tmpfs=True,
        tmpfs_size_mib=1024,
        tmpfs_path="/scratch",
        ephemeral_storage_gib=50,
        log_driver="awslogs",
        log_options=["awslogs-group:/flytelike", "awslogs-stream-prefix:train"],
        privileged=False,
        cpu="8",
        memory_mib=32768,
        gpu=1,
    )
    _fill(batch.tags, {"project": "acme", "cost-center": "ml", "env": "dev"}, reverse=reverse_maps)
    return platforms_pb2.Platform(batch=batch)


def flyteidl_device_class(accelerator: flyteidl_tasks.GPUAccelerator) -> int:
    """flyteidl's view of GPUAccelerator.device_class, whether or not this flyteidl release declares it."""
    if "device_class" in accelerator.DESCRIPTOR.fields_by_name:
        return int(accelerator.device_class)
    fields = UnknownFieldSet(accelerator)
    unknown = [fields[i] for i in range(len(fields)) if fields[i].field_number == FLYTEIDL_DEVICE_CLASS_FIELD]
    assert all(field.wire_type == WIRETYPE_VARINT for field in unknown)
    # Absent on the wire means the proto3 default, NVIDIA_GPU (0).
    return int(unknown[-1].data) if unknown else 0


def resource_entries(entries: Iterable[Any], enum: Any) -> list[tuple[str, int, str]]:
    """(name, number, value) of each ResourceEntry, the name as the given IDL's ResourceName enum spells it."""
    return [(enum.Name(entry.name), int(entry.name), entry.value) for entry in entries]


def sorted_variables(variables: interface_pb2.VariableMap) -> list[tuple[str, bytes]]:
    return sorted((entry.name, entry.variable.SerializeToString(deterministic=True)) for entry in variables.variables)


def test_generated_code_is_up_to_date() -> None:
    result = subprocess.run(
        [sys.executable, str(GENERATOR), "--check"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, f"proto/generate.py --check failed:\n{result.stdout}{result.stderr}"


def test_generated_modules_live_under_flytelike_proto() -> None:
    assert tasks_pb2.TaskTemplate.__module__ == "flytelike._proto.core.v1.tasks_pb2"
    assert tasks_pb2.DESCRIPTOR.package == "flytelike.core.v1"
    assert tasks_pb2.TaskTemplate.DESCRIPTOR.fields_by_name["interface"].message_type is (
        interface_pb2.TypedInterface.DESCRIPTOR
    )


def test_flyteidl_decodes_a_partitioned_gpu_template() -> None:
    accelerator = tasks_pb2.GPUAccelerator(
        device="nvidia-tesla-a100", partition_size="1g.5gb", device_class=tasks_pb2.GPUAccelerator.NVIDIA_GPU
    )
    template = build_template(accelerator)
    data = template.SerializeToString(deterministic=True)

    decoded = flyteidl_tasks.TaskTemplate.FromString(data)

    # Identifier.
    assert decoded.id.resource_type == 1  # flyteidl.core.ResourceType.TASK
    assert (decoded.id.project, decoded.id.domain, decoded.id.name, decoded.id.version, decoded.id.org) == (
        "acme",
        "development",
        "examples.train.train",
        "3f2a9c",
        "acme-org",
    )
    assert decoded.type == "python-task"
    assert decoded.task_type_version == 1
    assert dict(decoded.config) == {"zeta": "1", "alpha": "2", "mid": "3"}

    # Container and resources.
    assert decoded.WhichOneof("target") == "container"
    container = decoded.container
    assert container.image == "ghcr.io/acme/train:1.4"
    assert list(container.command) == ["python", "-m", "flytelike._entrypoint"]
    assert list(container.args) == ["--task", "examples.train.train", "--inputs", "s3://bucket/run/inputs.pb"]
    assert [(kv.key, kv.value) for kv in container.env] == [("HF_HOME", "/cache")]
    ours = template.container.resources
    theirs = container.resources
    assert resource_entries(theirs.requests, flyteidl_tasks.Resources.ResourceName) == resource_entries(
        ours.requests, R.ResourceName
    )
    assert resource_entries(theirs.limits, flyteidl_tasks.Resources.ResourceName) == resource_entries(
        ours.limits, R.ResourceName
    )
    assert resource_entries(theirs.requests, flyteidl_tasks.Resources.ResourceName) == [
        ("CPU", 1, "2"),
        ("MEMORY", 3, "16Gi"),
        ("EPHEMERAL_STORAGE", 5, "10Gi"),
        ("GPU", 2, "1"),
    ]
    assert resource_entries(theirs.limits, flyteidl_tasks.Resources.ResourceName) == [
        ("CPU", 1, "4"),
        ("MEMORY", 3, "16Gi"),
        ("GPU", 2, "1"),
    ]

    # Accelerator and shared memory.
    gpu = decoded.extended_resources.gpu_accelerator
    assert gpu.device == "nvidia-tesla-a100"
    assert gpu.WhichOneof("partition_size_value") == "partition_size"
    assert gpu.partition_size == "1g.5gb"
    assert flyteidl_device_class(gpu) == FLYTEIDL_DEVICE_CLASSES["NVIDIA_GPU"]
    shm = decoded.extended_resources.shared_memory
    assert (shm.mount_path, shm.mount_name, shm.size_limit) == ("/dev/shm", "dshm", "2Gi")

    # Metadata fields that share flyteidl's numbers.
    metadata = decoded.metadata
    assert metadata.discoverable is True
    assert metadata.discovery_version == "v1"
    assert list(metadata.cache_ignore_input_vars) == ["lr"]
    assert metadata.timeout == Duration(seconds=7200)
    assert metadata.retries.retries == 3
    assert (metadata.runtime.type, metadata.runtime.version, metadata.runtime.flavor) == (0, "0.1.0", "flytelike")

    # Interface: names, scalar types and union variant tags.
    inputs = decoded.interface.inputs.variables
    assert set(inputs) == {"shard", "lr", "epochs", "sizes"}
    assert inputs["shard"].type.simple == 3  # flyteidl.core.SimpleType.STRING
    assert inputs["lr"].type.simple == 2  # FLOAT
    assert [(v.simple, v.structure.tag) for v in inputs["epochs"].type.union_type.variants] == [
        (1, "int"),
        (0, "none"),
    ]
    assert inputs["sizes"].type.map_value_type.simple == 1  # INTEGER
    assert decoded.interface.outputs.variables["o0"].type.simple == 2

    # Secrets.
    [secret] = decoded.security_context.secrets
    assert (secret.group, secret.key, secret.mount_requirement, secret.env_var) == ("ml", "hf-token", 1, "HF_TOKEN")


@pytest.mark.parametrize("platform", [kubernetes_platform(), batch_platform()], ids=["kubernetes", "batch"])
def test_flyteidl_keeps_flytelike_only_fields(platform: platforms_pb2.Platform) -> None:
    """A flyteidl reader keeps our extra fields as unknown fields and writes them back unchanged."""
    accelerator = tasks_pb2.GPUAccelerator(
        device="tpu-v5-lite-podslice", partition_size="2x4", device_class=tasks_pb2.GPUAccelerator.GOOGLE_TPU
    )
    template = build_template(accelerator, platform=platform)

    through_flyteidl = flyteidl_tasks.TaskTemplate.FromString(template.SerializeToString(deterministic=True))
    back = tasks_pb2.TaskTemplate.FromString(through_flyteidl.SerializeToString())

    # flyteidl holds the interface's variables in a map, so re-encoding may reorder them; all else is unchanged.
    for direction in ("inputs", "outputs"):
        assert sorted_variables(getattr(back.interface, direction)) == sorted_variables(
            getattr(template.interface, direction)
        )
    back.ClearField("interface")
    template.ClearField("interface")
    assert back == template


def test_flyteidl_decodes_an_unpartitioned_tpu() -> None:
    accelerator = tasks_pb2.GPUAccelerator(
        device="tpu-v5-lite-podslice", unpartitioned=True, device_class=tasks_pb2.GPUAccelerator.GOOGLE_TPU
    )
    template = build_template(accelerator)

    decoded = flyteidl_tasks.TaskTemplate.FromString(template.SerializeToString(deterministic=True))

    gpu = decoded.extended_resources.gpu_accelerator
    assert gpu.device == "tpu-v5-lite-podslice"
    assert gpu.WhichOneof("partition_size_value") == "unpartitioned"
    assert gpu.unpartitioned is True
    assert flyteidl_device_class(gpu) == FLYTEIDL_DEVICE_CLASSES["GOOGLE_TPU"]
    shm = decoded.extended_resources.shared_memory
    assert (shm.mount_path, shm.mount_name, shm.size_limit) == ("/dev/shm", "dshm", "2Gi")
    assert decoded.container.resources == flyteidl_tasks.Resources.FromString(
        template.container.resources.SerializeToString(deterministic=True)
    )


@pytest.mark.parametrize("name", sorted(FLYTEIDL_DEVICE_CLASSES))
def test_device_class_numbering_matches_flyteidl(name: str) -> None:
    assert tasks_pb2.GPUAccelerator.DeviceClass.Value(name) == FLYTEIDL_DEVICE_CLASSES[name]
    accelerator = tasks_pb2.GPUAccelerator(
        device="some-device", device_class=tasks_pb2.GPUAccelerator.DeviceClass.Value(name)
    )

    decoded = flyteidl_tasks.GPUAccelerator.FromString(accelerator.SerializeToString(deterministic=True))

    assert decoded.device == "some-device"
    assert decoded.WhichOneof("partition_size_value") is None
    assert flyteidl_device_class(decoded) == FLYTEIDL_DEVICE_CLASSES[name]


def test_device_class_names_are_complete() -> None:
    assert {v.name: v.number for v in tasks_pb2.GPUAccelerator.DeviceClass.DESCRIPTOR.values} == (
        FLYTEIDL_DEVICE_CLASSES
    )


@pytest.mark.parametrize("platform_kind", ["kubernetes", "batch"])
def test_serialization_is_deterministic(platform_kind: str) -> None:
    make_platform = kubernetes_platform if platform_kind == "kubernetes" else batch_platform
    accelerator = tasks_pb2.GPUAccelerator(device="nvidia-tesla-a100", partition_size="1g.5gb")
    forward = build_template(accelerator, platform=make_platform(reverse_maps=False), reverse_maps=False)
    backward = build_template(accelerator, platform=make_platform(reverse_maps=True), reverse_maps=True)

    assert forward == backward
    assert forward.SerializeToString(deterministic=True) == backward.SerializeToString(deterministic=True)
    # The same message serializes to the same bytes every time.
    assert forward.SerializeToString(deterministic=True) == forward.SerializeToString(deterministic=True)


def _reserved_numbers(descriptor: Descriptor) -> set[int]:
    proto = descriptor_pb2.DescriptorProto()
    descriptor.CopyToProto(proto)
    return {number for r in proto.reserved_range for number in range(r.start, r.end)}


def _compare_enums(ours: EnumDescriptor, theirs: EnumDescriptor, problems: list[str]) -> None:
    their_names = {value.number: value.name for value in theirs.values}
    for value in ours.values:
        if value.number in their_names and their_names[value.number] != value.name:
            problems.append(
                f"{ours.full_name}: {value.number} is {value.name}, flyteidl's is {their_names[value.number]}"
            )


def _compare_messages(
    ours: Descriptor, theirs: Descriptor, seen: set[str], problems: list[str], *, flyteidl2: bool = False
) -> None:
    """Compare the fields of two messages sharing a number, recursively; append every mismatch to problems.

    Against flyteidl 1.x, every field of ours it lacks must be numbered from 100 up (or be a flyteidl2 field),
    and every field of its that we lack must be reserved. flyteidl2 keeps adding fields, so against it only the
    shared fields are compared.
    """
    if ours.full_name in seen:
        return
    seen.add(ours.full_name)
    their_fields = {field.number: field for field in theirs.fields}
    for field in ours.fields:
        their = their_fields.get(field.number)
        if their is None:
            allowed = field.full_name in FIELDS_FROM_FLYTEIDL2 or field.number >= FIRST_FLYTELIKE_ONLY_NUMBER
            if not (allowed or flyteidl2):
                problems.append(f"{field.full_name} ({field.number}) is not in flyteidl but numbered below 100")
            continue
        if field.type != their.type or field.is_repeated != their.is_repeated:
            problems.append(f"{field.full_name} ({field.number}) differs in type from flyteidl's {their.full_name}")
            continue
        if ours.name in SAME_NAMES and field.name != their.name:
            problems.append(f"{field.full_name} ({field.number}) should be named {their.name} as in flyteidl")
        if field.message_type is not None and their.message_type is not None:
            _compare_messages(field.message_type, their.message_type, seen, problems, flyteidl2=flyteidl2)
        elif field.enum_type is not None and their.enum_type is not None:
            _compare_enums(field.enum_type, their.enum_type, problems)
    if flyteidl2:
        return
    ours_numbers = {field.number for field in ours.fields} | _reserved_numbers(ours)
    for number, their in sorted(their_fields.items()):
        if number not in ours_numbers:
            problems.append(f"{ours.full_name}: flyteidl's {their.name} ({number}) is neither used nor reserved")


COVERED_MESSAGES = {
    "flytelike.core.v1.TaskTemplate",
    "flytelike.core.v1.Container",
    "flytelike.core.v1.Resources",
    "flytelike.core.v1.Resources.ResourceEntry",
    "flytelike.core.v1.ExtendedResources",
    "flytelike.core.v1.GPUAccelerator",
    "flytelike.core.v1.SharedMemory",
    "flytelike.core.v1.Identifier",
    "flytelike.core.v1.TaskMetadata",
    "flytelike.core.v1.TypedInterface",
    "flytelike.core.v1.LiteralType",
    "flytelike.core.v1.SecurityContext",
}


def test_shared_messages_match_flyteidl_descriptors() -> None:
    """Every field reachable from TaskTemplate that shares a number with flyteidl has flyteidl's type."""
    problems: list[str] = []
    seen: set[str] = set()

    _compare_messages(tasks_pb2.TaskTemplate.DESCRIPTOR, flyteidl_tasks.TaskTemplate.DESCRIPTOR, seen, problems)

    assert problems == []
    assert seen >= COVERED_MESSAGES


def test_flyteidl2_decodes_template_including_flyte2_fields() -> None:
    """Flyte 2's IDL, when installed, reads the shared fields and the ones numbered after it."""
    flyteidl2_tasks = pytest.importorskip(
        "flyteidl2.core.tasks_pb2", reason="flyteidl2 (Flyte 2's IDL) is not installed; it is optional"
    )
    problems: list[str] = []
    seen: set[str] = set()
    _compare_messages(
        tasks_pb2.TaskTemplate.DESCRIPTOR, flyteidl2_tasks.TaskTemplate.DESCRIPTOR, seen, problems, flyteidl2=True
    )
    assert problems == []
    assert seen >= COVERED_MESSAGES | {"flytelike.core.v1.RetryPolicy", "flytelike.core.v1.ReusePolicy"}

    accelerator = tasks_pb2.GPUAccelerator(
        device="tpu-v5-lite-podslice", partition_size="2x4", device_class=tasks_pb2.GPUAccelerator.GOOGLE_TPU
    )
    template = build_template(accelerator)
    decoded = flyteidl2_tasks.TaskTemplate.FromString(template.SerializeToString(deterministic=True))

    gpu = decoded.extended_resources.gpu_accelerator
    assert (gpu.device, gpu.partition_size) == ("tpu-v5-lite-podslice", "2x4")
    assert flyteidl2_tasks.GPUAccelerator.DeviceClass.Name(gpu.device_class) == "GOOGLE_TPU"
    backoff = decoded.metadata.retries.backoff
    assert (backoff.base, backoff.factor, backoff.cap) == (Duration(seconds=1), 2.0, Duration(seconds=60))
    assert decoded.metadata.cache_max_age == Duration(seconds=3600)
    reuse = decoded.reuse_policy
    assert (reuse.min_replicas, reuse.max_replicas, reuse.concurrency, reuse.idle_ttl) == (
        2,
        2,
        3,
        Duration(seconds=300),
    )
