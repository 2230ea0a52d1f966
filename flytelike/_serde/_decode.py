"""A TaskTemplate as a plain, readable description in the SDK's terms (what ``flytelike show -o yaml`` prints).

The description is a dict of JSON types only (str, int, float, bool, None, list, dict), with a fixed set of
top-level keys in a fixed order, so it reads the same every time: resources as the canonical Kubernetes strings
on the wire, durations in seconds, Kubernetes enum values in Kubernetes' own spelling (``IfNotPresent``), input
types as Python annotations (``list[int] | None``) and their defaults as plain values.

Example:
    >>> from flytelike._proto.core.v1 import identifier_pb2, tasks_pb2
    >>> t = tasks_pb2.TaskTemplate(id=identifier_pb2.Identifier(name="training.train", version="abc"))
    >>> describe_template(t)["name"]
    'training.train'
"""

from __future__ import annotations

import base64
import datetime as dt
import math
from collections.abc import Iterable
from typing import Any

from google.protobuf import duration_pb2
from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import Message

from flytelike._accelerators import DeviceClass, catalog
from flytelike._proto.core.v1 import interface_pb2, literals_pb2, tasks_pb2, types_pb2

__all__ = ["describe_template", "type_string", "value_of"]

_EPOCH = dt.datetime(1970, 1, 1)
_RESOURCE_NAMES = {
    tasks_pb2.Resources.CPU: "cpu",
    tasks_pb2.Resources.MEMORY: "memory",
    tasks_pb2.Resources.GPU: "gpu",
    tasks_pb2.Resources.EPHEMERAL_STORAGE: "disk",
    tasks_pb2.Resources.STORAGE: "storage",
}
_SIMPLE_NAMES = {
    types_pb2.LiteralType.NONE: "None",
    types_pb2.LiteralType.INTEGER: "int",
    types_pb2.LiteralType.FLOAT: "float",
    types_pb2.LiteralType.STRING: "str",
    types_pb2.LiteralType.BOOLEAN: "bool",
    types_pb2.LiteralType.DATETIME: "datetime",
    types_pb2.LiteralType.DURATION: "timedelta",
    types_pb2.LiteralType.BINARY: "bytes",
    types_pb2.LiteralType.STRUCT: "dict",
}


def describe_template(t: tasks_pb2.TaskTemplate) -> dict[str, Any]:
    """The template in user terms, as a dict of JSON types.

    Args:
        t: a task template, as :func:`flytelike._serde.task_template` builds it or as decoded from bytes.

    Returns:
        A dict with the keys ``name``, ``version``, ``project``, ``domain``, ``environment``, ``description``,
        ``image``, ``resources``, ``accelerator``, ``shm``, ``retries``, ``timeout_seconds``, ``max_queued_seconds``,
        ``deadline_seconds``, ``cache``, ``reuse``,
        ``platform``, ``env_vars``, ``secrets``, ``inputs`` and ``outputs``, in that order; settings a template does
        not have are ``None``.
    """
    md = t.metadata
    container = t.container
    return {
        "name": t.id.name,
        "version": t.id.version,
        "project": t.id.project,
        "domain": t.id.domain,
        "environment": md.environment or None,
        "description": md.description or None,
        "image": container.image,
        "resources": {
            "requests": _resource_entries(container.resources.requests),
            "limits": _resource_entries(container.resources.limits),
        },
        "accelerator": _accelerator(t),
        "shm": _shm(t),
        "retries": _retries(md.retries),
        "timeout_seconds": _seconds(md.timeout) if md.HasField("timeout") else None,
        "max_queued_seconds": _seconds(md.max_queued_time) if md.HasField("max_queued_time") else None,
        "deadline_seconds": _seconds(md.deadline) if md.HasField("deadline") else None,
        "cache": _cache(md),
        "reuse": _reuse(t),
        "platform": _platform(t),
        "env_vars": {kv.key: kv.value for kv in container.env},
        "secrets": [f"{s.group}/{s.key}" if s.group else s.key for s in t.security_context.secrets],
        "inputs": {entry.name: _input(entry.variable) for entry in t.interface.inputs.variables},
        "outputs": {entry.name: type_string(entry.variable.type) for entry in t.interface.outputs.variables},
    }


def _resource_entries(entries: Iterable[tasks_pb2.Resources.ResourceEntry]) -> dict[str, str]:
    return {
        _RESOURCE_NAMES.get(e.name, tasks_pb2.Resources.ResourceName.Name(e.name).lower()): e.value for e in entries
    }


def _seconds(d: duration_pb2.Duration) -> int | float:
    # Whole seconds print as ints ("7200", not "7200.0"); fractions keep their nanoseconds.
    return d.seconds if not d.nanos else d.seconds + d.nanos / 1e9


def _accelerator(t: tasks_pb2.TaskTemplate) -> dict[str, Any] | None:
    if not t.extended_resources.HasField("gpu_accelerator"):
        return None
    accel = t.extended_resources.gpu_accelerator
    count = next((e.value for e in t.container.resources.requests if e.name == tasks_pb2.Resources.GPU), None)
    partition = accel.partition_size if accel.WhichOneof("partition_size_value") == "partition_size" else None
    # The template names the device as node labels do (nvidia-tesla-a100); described in SDK terms, it is the
    # catalog's name again when the catalog knows the label.
    spec = catalog().by_label(accel.device)
    return {
        "device": spec.name if spec is not None else accel.device,
        "class": DeviceClass[tasks_pb2.GPUAccelerator.DeviceClass.Name(accel.device_class)].value,
        "partition": partition,
        "count": int(count) if count is not None else None,
    }


def _shm(t: tasks_pb2.TaskTemplate) -> dict[str, Any] | None:
    if not t.extended_resources.HasField("shared_memory"):
        return None
    shm = t.extended_resources.shared_memory
    # An empty size limit is the SDK's shm="auto": as large as the container's memory allows.
    return {"size": shm.size_limit or "auto", "mount_path": shm.mount_path}


def _retries(policy: tasks_pb2.RetryPolicy) -> dict[str, Any]:
    out: dict[str, Any] = {"count": policy.retries, "backoff": None, "oom_escalation": None}
    if policy.HasField("backoff"):
        b = policy.backoff
        out["backoff"] = {
            "initial_seconds": _seconds(b.initial_delay),
            "multiplier": b.multiplier,
            "max_seconds": _seconds(b.max_delay) if b.HasField("max_delay") else None,
        }
    if policy.HasField("oom_escalation"):
        oom = policy.oom_escalation
        out["oom_escalation"] = {"memory_factor": oom.memory_factor, "memory_cap": oom.memory_cap or None}
    return out


def _cache(md: tasks_pb2.TaskMetadata) -> dict[str, Any] | None:
    if not md.cache_enabled:
        return None
    return {
        "version": md.cache_version or None,
        "ignored_inputs": list(md.cache_ignored_inputs),
        "ttl_seconds": _seconds(md.cache_ttl) if md.HasField("cache_ttl") else None,
        "behavior": "override" if md.cache_overwrite else "auto",
        "serialize": md.cache_serializable,
        "salt": md.cache_salt or None,
    }


def _reuse(t: tasks_pb2.TaskTemplate) -> dict[str, Any] | None:
    if not t.HasField("reuse_policy"):
        return None
    r = t.reuse_policy
    return {
        "min_replicas": r.min_replicas,
        "max_replicas": r.max_replicas,
        "concurrency": r.concurrency,
        "idle_ttl_seconds": _seconds(r.idle_ttl) if r.HasField("idle_ttl") else None,
        "scaledown_ttl_seconds": _seconds(r.scaledown_ttl) if r.HasField("scaledown_ttl") else None,
    }


def _platform(t: tasks_pb2.TaskTemplate) -> dict[str, Any] | None:
    kind = t.platform.WhichOneof("kind")
    if kind is None:
        return None
    settings = getattr(t.platform, kind)
    return {"kind": kind, **_fields(settings)}


def _fields(msg: Message) -> dict[str, Any]:
    # Only the fields a template sets (non-default, or present for `optional` ones), in field-number order.
    return {field.name: _field_value(field, value) for field, value in msg.ListFields()}


def _field_value(field: FieldDescriptor, value: Any) -> Any:
    if field.message_type is not None and field.message_type.GetOptions().map_entry:
        return dict(sorted(value.items()))
    if field.is_repeated:
        return [_scalar(field, v) for v in value]
    return _scalar(field, value)


def _scalar(field: FieldDescriptor, value: Any) -> Any:
    if field.type == FieldDescriptor.TYPE_MESSAGE:
        return _fields(value)
    if field.enum_type is not None:
        # Kubernetes spells these values in CamelCase (IF_NOT_PRESENT is "IfNotPresent", NO_SCHEDULE "NoSchedule").
        name = field.enum_type.values_by_number[value].name
        return "".join(part.capitalize() for part in name.split("_"))
    return value


def _input(variable: interface_pb2.Variable) -> dict[str, Any]:
    out: dict[str, Any] = {"type": type_string(variable.type)}
    if variable.HasField("default"):
        out["default"] = value_of(variable.default, variable.type)
    if variable.description:
        out["description"] = variable.description
    return out


def _short(name: str) -> str:
    return name.rpartition(".")[2]


def type_string(lt: types_pb2.LiteralType) -> str:
    """The Python annotation a LiteralType stands for: ``int``, ``list[str]``, ``Point | None``, ``File``.

    Classes (enums, dataclasses, models) are shown by their class name without the module.
    """
    match lt.WhichOneof("type"):
        case "collection_type":
            return f"list[{type_string(lt.collection_type)}]"
        case "map_value_type":
            return f"dict[str, {type_string(lt.map_value_type)}]"
        case "union_type":
            return " | ".join(type_string(v) for v in lt.union_type.variants)
        case "enum_type":
            return _short(lt.enum_type.name) or "Enum"
        case "blob":
            name = "Dir" if lt.blob.dimensionality == types_pb2.BlobType.MULTIPART else "File"
            return f"{name}[{lt.blob.format}]" if lt.blob.format else name
    if lt.HasField("record"):
        return _short(lt.record.name)
    return _SIMPLE_NAMES.get(lt.simple, "unknown")


def value_of(lit: literals_pb2.Literal, lt: types_pb2.LiteralType | None = None) -> Any:
    """A literal as a plain JSON value, for display: the type (when given) orders record fields.

    Floats that JSON cannot hold become ``"nan"``, ``"inf"`` and ``"-inf"``; bytes become base64 text; datetimes
    ISO 8601 text (``Z`` or the offset for aware ones, none for naive ones); timedeltas seconds; enum members their
    name; files and directories their URI; records and dicts dicts.
    """
    which = lit.WhichOneof("value")
    match which:
        case "int_value" | "str_value" | "bool_value" | "enum_value":
            return getattr(lit, which)
        case "float_value":
            f = lit.float_value
            return f if math.isfinite(f) else str(f)
        case "bytes_value":
            return base64.b64encode(lit.bytes_value).decode("ascii")
        case "datetime_value":
            return _datetime_text(lit.datetime_value)
        case "timedelta_value":
            return _seconds(lit.timedelta_value)
        case "list_value":
            item = lt.collection_type if lt is not None and lt.HasField("collection_type") else None
            return [value_of(v, item) for v in lit.list_value.literals]
        case "dict_value":
            item = lt.map_value_type if lt is not None and lt.HasField("map_value_type") else None
            entries = lit.dict_value.literals
            return {k: value_of(entries[k], item) for k in sorted(entries)}
        case "blob_value":
            return lit.blob_value.uri
        case "record_value":
            return _record(lit.record_value, lt)
        case "union_value":
            variants = lt.union_type.variants if lt is not None else ()
            variant = next((v for v in variants if v.structure.tag == lit.union_value.tag), None)
            return value_of(lit.union_value.value, variant)
    return None


def _record(record: literals_pb2.Record, lt: types_pb2.LiteralType | None) -> dict[str, Any]:
    declared = {f.name: f.type for f in lt.record.fields} if lt is not None else {}
    stored = record.fields
    # Declared fields first, in declaration order; anything else after, sorted.
    names = [n for n in declared if n in stored] + sorted(n for n in stored if n not in declared)
    return {n: value_of(stored[n], declared.get(n)) for n in names}


def _datetime_text(value: literals_pb2.DateTime) -> str:
    offset = value.utc_offset_seconds if value.HasField("utc_offset_seconds") else None
    micros = value.instant.nanos // 1000
    try:
        wall = _EPOCH + dt.timedelta(seconds=value.instant.seconds + (offset or 0), microseconds=micros)
    except OverflowError:  # only a foreign writer can store an instant outside datetime's years 1-9999
        return f"{value.instant.seconds}s after 1970-01-01T00:00:00Z"
    if offset is None:
        return wall.isoformat()
    if offset == 0:
        return wall.isoformat() + "Z"
    return wall.replace(tzinfo=dt.timezone(dt.timedelta(seconds=offset))).isoformat()
