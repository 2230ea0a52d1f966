"""Whether a pod fits a node, the default scheduler's filter plugins in their order (TaintToleration,
NodeAffinity, NodeResourcesFit), and the FailedScheduling message in the real scheduler's words."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from decimal import Decimal
from typing import Any, Final

from flytelike._quantity import Quantity
from flytelike.testing.kubernetes._pods import requests_of

__all__ = ["NodeFit", "unschedulable_message"]

JSON = dict[str, Any]
_NOT_HELPFUL: Final = "Preemption is not helpful for scheduling"
_NO_VICTIMS: Final = "No preemption victims found for incoming pod"


class NodeFit:
    """Free capacity of one node and the filters a pod goes through.

    Args:
        node: the Node object.
        pods: the pods bound to it that still hold resources (not Succeeded or Failed).
    """

    def __init__(self, node: JSON, pods: Iterable[JSON]) -> None:
        self.node = node
        self.name: str = node["metadata"]["name"]
        allocatable = node["status"].get("allocatable") or {}
        self.free: dict[str, Decimal] = {k: Quantity.parse(str(v)).value for k, v in allocatable.items()}
        self.free.setdefault("pods", Decimal(110))
        for pod in pods:
            self.reserve(pod)

    def reserve(self, pod: JSON) -> None:
        """Count ``pod``'s requests (and one pod slot) as used."""
        for name, amount in requests_of(pod).items():
            self.free[name] = self.free.get(name, Decimal(0)) - amount
        self.free["pods"] -= 1

    def reasons(self, pod: JSON) -> tuple[list[str], bool]:
        """Why ``pod`` does not fit (empty: it fits), and whether preempting other pods could help."""
        taint = _untolerated(self.node.get("spec", {}).get("taints") or [], pod["spec"].get("tolerations") or [])
        if taint is not None:
            return [f"node(s) had untolerated taint {{{taint.get('key')}: {taint.get('value', '')}}}"], False
        if not _affinity_matches(self.node["metadata"].get("labels") or {}, pod["spec"]):
            return ["node(s) didn't match Pod's node affinity/selector"], False
        missing = []
        if self.free["pods"] < 1:
            missing.append("Too many pods")
        for name, amount in sorted(requests_of(pod).items()):
            if amount > 0 and amount > self.free.get(name, Decimal(0)):
                missing.append(f"Insufficient {name}")
        return missing, True


def _tolerates(toleration: JSON, taint: JSON) -> bool:
    if toleration.get("effect") and toleration["effect"] != taint.get("effect"):
        return False
    key = toleration.get("key", "")
    if key and key != taint.get("key"):
        return False
    if toleration.get("operator", "Equal") == "Exists":
        return True
    return bool(toleration.get("value", "") == taint.get("value", ""))


def _untolerated(taints: list[JSON], tolerations: list[JSON]) -> JSON | None:
    for taint in taints:
        if taint.get("effect") not in ("NoSchedule", "NoExecute"):
            continue
        if not any(_tolerates(t, taint) for t in tolerations):
            return taint
    return None


def _expression_matches(labels: Mapping[str, str], expression: JSON) -> bool:
    key, operator, values = expression.get("key"), expression.get("operator"), expression.get("values") or []
    present = key in labels
    value = labels.get(str(key), "")
    if operator == "In":
        return present and value in values
    if operator == "NotIn":
        return not present or value not in values
    if operator == "Exists":
        return present
    if operator == "DoesNotExist":
        return not present
    if operator in ("Gt", "Lt") and present and value.lstrip("-").isdigit() and values:
        return int(value) > int(values[0]) if operator == "Gt" else int(value) < int(values[0])
    return False


def _affinity_matches(labels: Mapping[str, str], spec: JSON) -> bool:
    for key, value in (spec.get("nodeSelector") or {}).items():
        if labels.get(key) != value:
            return False
    affinity = ((spec.get("affinity") or {}).get("nodeAffinity") or {}).get(
        "requiredDuringSchedulingIgnoredDuringExecution"
    )
    if not affinity:
        return True
    terms = affinity.get("nodeSelectorTerms") or []
    return any(all(_expression_matches(labels, e) for e in term.get("matchExpressions") or []) for term in terms)


def unschedulable_message(nodes: int, failures: Mapping[str, tuple[list[str], bool]]) -> str:
    """The scheduler's message for a pod no node fits.

    Args:
        nodes: how many nodes there are.
        failures: node name -> (reasons, whether preemption could help), from :meth:`NodeFit.reasons`.

    Returns:
        ``0/3 nodes are available: 1 Insufficient nvidia.com/gpu, 2 node(s) didn't match Pod's node
        affinity/selector. preemption: 0/3 nodes are available: 1 No preemption victims found for incoming pod,
        2 Preemption is not helpful for scheduling.``
    """
    if nodes == 0:
        return "no nodes available to schedule pods"
    reasons: Counter[str] = Counter()
    preemption: Counter[str] = Counter()
    for found, helpful in failures.values():
        reasons.update(found)
        preemption[_NO_VICTIMS if helpful else _NOT_HELPFUL] += 1
    first = ", ".join(sorted(f"{n} {r}" for r, n in reasons.items()))
    second = ", ".join(sorted(f"{n} {r}" for r, n in preemption.items()))
    return f"0/{nodes} nodes are available: {first}. preemption: 0/{nodes} nodes are available: {second}."
