"""A pod as the API server admits it: decoded strictly, defaulted, then validated like ``ValidatePodCreate``."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any, Final

from flytelike._quantity import Quantity
from flytelike.errors import SpecError
from flytelike.testing.kubernetes import _names
from flytelike.testing.kubernetes._schema import check
from flytelike.testing.kubernetes._status import (
    Cause,
    bad_request,
    duplicate,
    invalid,
    not_supported,
    required,
    unprocessable,
)

__all__ = ["QUANTITY_PATTERN", "decode", "default_pod", "parse_quantity", "qos_class", "requests_of", "validate_pod"]

JSON = dict[str, Any]

QUANTITY_PATTERN: Final = "^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$"
_STANDARD: Final = frozenset(("cpu", "memory", "ephemeral-storage"))
_RESTART_POLICIES: Final = ["Always", "OnFailure", "Never"]
_PULL_POLICIES: Final = ["Always", "IfNotPresent", "Never"]
_OPERATORS: Final = ["Equal", "Exists"]
_EFFECTS: Final = ["NoExecute", "NoSchedule", "PreferNoSchedule"]


def decode(body: object, kind: str, definition: str, *, strict: bool) -> tuple[JSON, list[str]]:
    """Decode a request body as the API server's JSON decoder does.

    Args:
        body: the parsed JSON of the request.
        kind: ``Pod``, ``Secret``...
        definition: its OpenAPI definition name.
        strict: unknown fields are an error (``fieldValidation=Strict``) rather than dropped with a warning.

    Returns:
        The object without unknown fields, and the warnings to send (``unknown field "spec.foo"``).

    Raises:
        ApiError: 400 BadRequest for a body that is not an object, a mistyped field or, strictly, unknown fields.
    """
    prefix = f'{kind} in version "v1" cannot be handled as a {kind}: '
    if not isinstance(body, dict):
        raise bad_request(prefix + f"json: cannot unmarshal {type(body).__name__} into Go value of type {kind}")
    problems = check(body, definition)
    if problems.wrong_type:
        path, expected, actual = problems.wrong_type[0]
        raise bad_request(
            prefix + f"json: cannot unmarshal {actual} into Go struct field {kind}.{path} of type {expected}"
        )
    warnings = [f'unknown field "{path}"' for path in problems.unknown]
    if strict and warnings:
        raise bad_request(prefix + "strict decoding error: " + ", ".join(warnings))
    for path in problems.unknown:
        _drop(body, path)
    return body, warnings


def _drop(obj: JSON, path: str) -> None:
    parts = path.replace("[", ".[").split(".")
    target: Any = obj
    for part in parts[:-1]:
        target = target[int(part[1:-1])] if part.startswith("[") else target[part]
    target.pop(parts[-1], None)


def parse_quantity(value: object, field: str) -> Quantity:
    """Parse a resource amount as the API server's decoder does (a JSON string or number).

    Raises:
        ApiError: 400 BadRequest, with the message the real decoder gives (and the field and value appended).
    """
    text = value if isinstance(value, str) else json.dumps(value)
    try:
        return Quantity.parse(text, field=field)
    except SpecError:
        raise bad_request(
            f'Pod in version "v1" cannot be handled as a Pod: quantities must match the regular expression '
            f"'{QUANTITY_PATTERN}' ({field}: {json.dumps(value)})"
        ) from None


def default_pod(pod: JSON, namespace: str) -> None:
    """Fill in what the API server defaults on create (``SetDefaults_Pod`` and friends)."""
    meta = pod.setdefault("metadata", {})
    meta["namespace"] = namespace
    pod["apiVersion"], pod["kind"] = "v1", "Pod"
    spec = pod.setdefault("spec", {})
    spec.setdefault("restartPolicy", "Always")
    spec.setdefault("terminationGracePeriodSeconds", 30)
    spec.setdefault("dnsPolicy", "ClusterFirst")
    spec.setdefault("schedulerName", "default-scheduler")
    spec.setdefault("serviceAccountName", spec.get("serviceAccount") or "default")
    spec.setdefault("securityContext", {})
    spec.setdefault("enableServiceLinks", True)
    spec.setdefault("priority", 0)
    spec.setdefault(
        "tolerations",
        [
            {"key": key, "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300}
            for key in ("node.kubernetes.io/not-ready", "node.kubernetes.io/unreachable")
        ],
    )
    for container in spec.get("containers") or []:
        image = container.get("image") or ""
        tagged = ":" in image.rsplit("/", 1)[-1] or "@" in image
        latest = image.endswith(":latest") or not tagged
        container.setdefault("imagePullPolicy", "Always" if latest else "IfNotPresent")
        container.setdefault("terminationMessagePath", "/dev/termination-log")
        container.setdefault("terminationMessagePolicy", "File")
        resources = container.setdefault("resources", {})
        limits = resources.get("limits") or {}
        requests = resources.get("requests")
        # A limit without a request sets the request (SetDefaults_Pod); canonical spelling as the server stores it.
        for name, value in limits.items():
            if requests is None:
                requests = resources["requests"] = {}
            requests.setdefault(name, value)
        for key in ("limits", "requests"):
            if resources.get(key):
                resources[key] = {n: _canonical(v) for n, v in resources[key].items()}


def _canonical(value: object) -> object:
    text = value if isinstance(value, str) else json.dumps(value)
    try:
        return str(Quantity.parse(text))
    except SpecError:
        return value  # left for validation to report


def validate_pod(pod: JSON, *, strict_names: bool) -> None:
    """Raise 422 Invalid with every problem found, or 400 for an amount that is not a quantity.

    Args:
        pod: the defaulted pod.
        strict_names: pod names must also be DNS labels (<= 63 characters), as their hostnames are.
    """
    meta = pod["metadata"]
    name = meta.get("name", "")
    causes: list[Cause] = []
    if not name:
        causes.append(required("metadata.name", "name or generateName is required"))
    else:
        problems = _names.dns_label(name) if strict_names else _names.dns_subdomain(name)
        causes.extend(invalid("metadata.name", name, p) for p in problems)
    causes.extend(_names.labels(meta.get("labels") or {}, "metadata.labels"))
    for key in meta.get("annotations") or {}:
        causes.extend(invalid("metadata.annotations", key, p) for p in _names.label_key(key))
    spec = pod["spec"]
    containers = spec.get("containers") or []
    if not containers:
        causes.append(required("spec.containers"))
    seen: set[str] = set()
    for i, container in enumerate([*containers]):
        causes.extend(_container(container, f"spec.containers[{i}]", seen))
    for i, container in enumerate(spec.get("initContainers") or []):
        causes.extend(_container(container, f"spec.initContainers[{i}]", seen))
    policy = spec.get("restartPolicy")
    if policy not in _RESTART_POLICIES:
        causes.append(not_supported("spec.restartPolicy", policy, _RESTART_POLICIES))
    deadline = spec.get("activeDeadlineSeconds")
    if deadline is not None and not 1 <= deadline <= 2**31 - 1:
        causes.append(invalid("spec.activeDeadlineSeconds", deadline, "must be between 1 and 2147483647, inclusive"))
    grace = spec.get("terminationGracePeriodSeconds")
    if grace is not None and grace < 0:
        causes.append(invalid("spec.terminationGracePeriodSeconds", grace, "must be greater than or equal to 0"))
    causes.extend(_names.labels(spec.get("nodeSelector") or {}, "spec.nodeSelector"))
    for i, toleration in enumerate(spec.get("tolerations") or []):
        causes.extend(_toleration(toleration, f"spec.tolerations[{i}]"))
    if causes:
        raise unprocessable("Pod", name, causes)


def _container(container: JSON, path: str, seen: set[str]) -> list[Cause]:
    causes = []
    name = container.get("name") or ""
    if not name:
        causes.append(required(f"{path}.name"))
    else:
        causes.extend(invalid(f"{path}.name", name, p) for p in _names.dns_label(name))
        if name in seen:
            causes.append(duplicate(f"{path}.name", name))
        seen.add(name)
    if not (container.get("image") or "").strip():
        causes.append(required(f"{path}.image"))
    pull = container.get("imagePullPolicy")
    if pull is not None and pull not in _PULL_POLICIES:
        causes.append(not_supported(f"{path}.imagePullPolicy", pull, _PULL_POLICIES))
    for j, env in enumerate(container.get("env") or []):
        env_name = env.get("name") or ""
        if not env_name:
            causes.append(required(f"{path}.env[{j}].name"))
        elif "=" in env_name:
            causes.append(invalid(f"{path}.env[{j}].name", env_name, "must not contain '='"))
        ref = (env.get("valueFrom") or {}).get("secretKeyRef")
        if ref is not None:
            for key in ("name", "key"):
                if not ref.get(key):
                    causes.append(required(f"{path}.env[{j}].valueFrom.secretKeyRef.{key}"))
    causes.extend(_resources(container.get("resources") or {}, f"{path}.resources"))
    return causes


def _resource_name(name: str) -> bool:
    if name in _STANDARD or name.startswith("hugepages-"):
        return True
    # Extended resources: a qualified name with a domain outside kubernetes.io.
    return "/" in name and not _names.label_key(name) and not name.split("/")[0].endswith("kubernetes.io")


def _overcommittable(name: str) -> bool:
    return name in _STANDARD


def _resources(resources: JSON, path: str) -> list[Cause]:
    causes: list[Cause] = []
    parsed: dict[str, dict[str, Quantity]] = {"limits": {}, "requests": {}}
    for kind in ("limits", "requests"):
        for name, value in (resources.get(kind) or {}).items():
            field = f"{path}.{kind}[{name}]"
            if not _resource_name(name):
                causes.append(invalid(field, name, "must be a standard resource for containers"))
                continue
            quantity = parse_quantity(value, field)
            parsed[kind][name] = quantity
            if quantity.value < 0:
                causes.append(invalid(field, str(quantity), "must be greater than or equal to 0"))
            elif not _overcommittable(name) and not quantity.is_integer:
                causes.append(invalid(field, str(quantity), "must be an integer"))
    limits, requests = parsed["limits"], parsed["requests"]
    for name, request in requests.items():
        limit = limits.get(name)
        if not _overcommittable(name):
            if limit is None:
                causes.append(required(f"{path}.limits", "Limit must be set for non overcommitable resources"))
            elif limit != request:
                causes.append(
                    invalid(f"{path}.requests[{name}]", str(request), f"must be equal to {name} limit of {limit}")
                )
        elif limit is not None and request > limit:
            causes.append(
                invalid(f"{path}.requests", str(request), f"must be less than or equal to {name} limit of {limit}")
            )
    return causes


def _toleration(toleration: JSON, path: str) -> list[Cause]:
    causes = []
    operator = toleration.get("operator", "Equal")
    if operator not in _OPERATORS:
        causes.append(not_supported(f"{path}.operator", operator, _OPERATORS))
    if operator == "Exists" and toleration.get("value"):
        causes.append(
            invalid(f"{path}.operator", toleration["value"], "value must be empty when `operator` is 'Exists'")
        )
    if not toleration.get("key") and operator != "Exists":
        causes.append(
            invalid(
                f"{path}.operator",
                operator,
                'operator must be Exists when `key` is empty, which means "match all values and all keys"',
            )
        )
    effect = toleration.get("effect")
    if effect and effect not in _EFFECTS:
        causes.append(not_supported(f"{path}.effect", effect, _EFFECTS))
    if toleration.get("key"):
        causes.extend(invalid(f"{path}.key", toleration["key"], p) for p in _names.label_key(toleration["key"]))
    return causes


def requests_of(pod: JSON) -> dict[str, Decimal]:
    """The pod's effective requests: the sum over its containers, the larger of that and any init container."""
    total: dict[str, Decimal] = {}
    for container in pod["spec"].get("containers") or []:
        for name, value in ((container.get("resources") or {}).get("requests") or {}).items():
            total[name] = total.get(name, Decimal(0)) + Quantity.parse(str(value)).value
    for container in pod["spec"].get("initContainers") or []:
        for name, value in ((container.get("resources") or {}).get("requests") or {}).items():
            total[name] = max(total.get(name, Decimal(0)), Quantity.parse(str(value)).value)
    return total


def qos_class(pod: JSON) -> str:
    """``Guaranteed``, ``Burstable`` or ``BestEffort``, as the API server computes ``status.qosClass``."""
    containers = [*(pod["spec"].get("containers") or []), *(pod["spec"].get("initContainers") or [])]
    any_set = False
    guaranteed = True
    for container in containers:
        resources = container.get("resources") or {}
        limits, requests = resources.get("limits") or {}, resources.get("requests") or {}
        any_set = any_set or bool(limits) or bool(requests)
        for name in ("cpu", "memory"):
            if name not in limits or requests.get(name, limits[name]) != limits[name]:
                guaranteed = False
    if not any_set:
        return "BestEffort"
    return "Guaranteed" if guaranteed else "Burstable"
