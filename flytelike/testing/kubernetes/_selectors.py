"""Label and field selectors of list and watch requests, parsed as ``labels.Parse`` and ``fields.ParseSelector`` do."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final

from flytelike.testing.kubernetes._status import bad_request

__all__ = ["FIELDS", "FieldSelector", "LabelSelector", "selects"]

JSON = dict[str, Any]

# The fields each resource can be selected on (the registries' field label conversion functions).
FIELDS: Final[dict[str, tuple[str, ...]]] = {
    "Pod": (
        "metadata.name",
        "metadata.namespace",
        "spec.nodeName",
        "spec.restartPolicy",
        "spec.schedulerName",
        "spec.serviceAccountName",
        "spec.hostNetwork",
        "status.phase",
        "status.podIP",
        "status.nominatedNodeName",
    ),
    "Secret": ("metadata.name", "metadata.namespace", "type"),
    "Event": (
        "metadata.name",
        "metadata.namespace",
        "involvedObject.kind",
        "involvedObject.namespace",
        "involvedObject.name",
        "involvedObject.uid",
        "involvedObject.apiVersion",
        "involvedObject.resourceVersion",
        "involvedObject.fieldPath",
        "reason",
        "reportingComponent",
        "source",
        "type",
    ),
    "Node": ("metadata.name", "spec.unschedulable"),
}

_REQUIREMENT: Final = re.compile(
    r"\s*(?P<neg>!)?\s*(?P<key>[^\s!=<>(),]+)\s*"
    r"(?:(?P<op>==|=|!=|>|<|\s+in\s+|\s+notin\s+)\s*(?P<value>\([^)]*\)|[^\s,()]*))?\s*"
)


@dataclass(frozen=True, slots=True)
class _Requirement:
    key: str
    op: str
    values: tuple[str, ...]

    def matches(self, labels: Mapping[str, str]) -> bool:
        present = self.key in labels
        value = labels.get(self.key)
        if self.op == "exists":
            return present
        if self.op == "!exists":
            return not present
        if self.op in ("=", "==", "in"):
            return present and value in self.values
        if self.op in ("!=", "notin"):
            return not present or value not in self.values
        if not present or value is None or not value.lstrip("-").isdigit():
            return False
        return int(value) > int(self.values[0]) if self.op == ">" else int(value) < int(self.values[0])


@dataclass(frozen=True, slots=True)
class LabelSelector:
    """A ``labelSelector`` (``app=x,tier in (a,b),!legacy``); the empty selector matches everything."""

    requirements: tuple[_Requirement, ...] = ()

    @classmethod
    def parse(cls, text: str | None) -> LabelSelector:
        """Parse a label selector.

        Raises:
            ApiError: 400 naming the part that does not parse.
        """
        if not text:
            return cls()
        requirements = []
        for part in _split(text):
            m = _REQUIREMENT.fullmatch(part)
            if m is None:
                raise bad_request(f"unable to parse requirement: found '{part}', expected: identifier")
            key, op, raw = m["key"], (m["op"] or "").strip(), m["value"]
            if m["neg"]:
                if op:
                    raise bad_request(f"unable to parse requirement: '!' before {key!r} takes no operator")
                requirements.append(_Requirement(key, "!exists", ()))
            elif not op:
                requirements.append(_Requirement(key, "exists", ()))
            elif op in ("in", "notin"):
                if not (raw.startswith("(") and raw.endswith(")")):
                    raise bad_request(f"unable to parse requirement: found '{raw}', expected: '('")
                values = tuple(v.strip() for v in raw[1:-1].split(",") if v.strip())
                requirements.append(_Requirement(key, op, values))
            else:
                if op in (">", "<") and not raw.lstrip("-").isdigit():
                    raise bad_request(
                        f"unable to parse requirement: for 'Gt', 'Lt' operators, the value must be an integer: {raw!r}"
                    )
                requirements.append(_Requirement(key, op, (raw,)))
        return cls(tuple(requirements))

    def matches(self, labels: Mapping[str, str] | None) -> bool:
        labels = labels or {}
        return all(r.matches(labels) for r in self.requirements)


def _split(text: str) -> list[str]:
    # Commas separate requirements except inside the parentheses of a set.
    parts, depth, start = [], 0, 0
    for i, char in enumerate(text):
        depth += char == "("
        depth -= char == ")"
        if char == "," and depth == 0:
            parts.append(text[start:i])
            start = i + 1
    parts.append(text[start:])
    return parts


@dataclass(frozen=True, slots=True)
class FieldSelector:
    """A ``fieldSelector`` (``spec.nodeName=n1,status.phase!=Failed``) over the fields a resource supports."""

    terms: tuple[tuple[str, bool, str], ...] = ()

    @classmethod
    def parse(cls, text: str | None, kind: str) -> FieldSelector:
        """Parse a field selector for ``kind``.

        Raises:
            ApiError: 400 for a field ``kind`` cannot be selected on (naming those it can) or a bad term.
        """
        if not text:
            return cls()
        terms = []
        for part in _split(text):
            op = next((o for o in ("!=", "==", "=") if o in part), None)
            if op is None:
                raise bad_request(f"invalid selector: '{text}'; can't understand '{part}'")
            field, value = part.split(op, 1)
            equal = op != "!="
            field = field.strip()
            if field not in FIELDS[kind]:
                known = ", ".join(f'"{f}"' for f in FIELDS[kind])
                raise bad_request(f'"{field}" is not a known field selector: only {known}')
            terms.append((field, equal, value.strip()))
        return cls(tuple(terms))

    def matches(self, obj: JSON) -> bool:
        return all((_field(obj, f) == value) == equal for f, equal, value in self.terms)


def _field(obj: JSON, path: str) -> str:
    if path == "source":
        return str((obj.get("source") or {}).get("component", ""))
    value: Any = obj
    for part in path.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    if isinstance(value, bool):
        return "true" if value else "false"
    return "" if value is None else str(value)


def selects(labels: LabelSelector, fields: FieldSelector) -> Callable[[JSON | None], bool]:
    """One predicate for both selectors; None (no object) never matches."""

    def predicate(obj: JSON | None) -> bool:
        return obj is not None and labels.matches(obj["metadata"].get("labels")) and fields.matches(obj)

    return predicate
