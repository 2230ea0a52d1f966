"""The API server's errors as ``Status`` bodies, with the codes, reasons and causes the real server uses."""

from __future__ import annotations

import datetime
import json
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "ApiError",
    "Cause",
    "already_exists",
    "bad_request",
    "conflict",
    "duplicate",
    "expired",
    "forbidden",
    "invalid",
    "not_found",
    "not_supported",
    "now",
    "required",
    "resource_of",
    "unprocessable",
]

JSON = dict[str, Any]


def now() -> str:
    """The current time as the API server writes timestamps (RFC 3339, whole seconds, UTC)."""
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True, slots=True)
class Cause:
    """One field's problem in a 422 ``Invalid`` status.

    Attributes:
        reason: ``FieldValueInvalid``, ``FieldValueRequired``, ``FieldValueNotSupported``, ``FieldValueDuplicate``
            or ``FieldValueForbidden``.
        message: what is wrong, as the real server phrases it (``Invalid value: "x": ...``).
        field: the path of the field, such as ``spec.containers[0].name``.
    """

    reason: str
    message: str
    field: str

    def text(self) -> str:
        return f"{self.field}: {self.message}"


def invalid(field: str, value: object, detail: str) -> Cause:
    return Cause("FieldValueInvalid", f"Invalid value: {_go_quote(value)}: {detail}", field)


def required(field: str, detail: str = "") -> Cause:
    return Cause("FieldValueRequired", "Required value" + (f": {detail}" if detail else ""), field)


def not_supported(field: str, value: object, supported: list[str]) -> Cause:
    values = ", ".join(json.dumps(s) for s in supported)
    return Cause("FieldValueNotSupported", f"Unsupported value: {_go_quote(value)}: supported values: {values}", field)


def duplicate(field: str, value: object) -> Cause:
    return Cause("FieldValueDuplicate", f"Duplicate value: {_go_quote(value)}", field)


def forbidden(field: str, detail: str) -> Cause:
    return Cause("FieldValueForbidden", f"Forbidden: {detail}", field)


def _go_quote(value: object) -> str:
    # Go's field errors print strings quoted and numbers bare.
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    return json.dumps(value, sort_keys=True, default=str)


@dataclass(slots=True)
class ApiError(Exception):
    """A request the API server refuses; the handler turns it into a ``Status`` body.

    Attributes:
        code: the HTTP status.
        reason: the Status reason (``NotFound``, ``AlreadyExists``, ``Invalid``, ``Expired``...).
        message: the human-readable message.
        kind: the kind of the object concerned (details.kind).
        name: its name (details.name).
        causes: the per-field problems of an ``Invalid`` status.
        headers: extra response headers (``Retry-After``).
    """

    code: int
    reason: str
    message: str
    kind: str = ""
    name: str = ""
    group: str = ""
    causes: list[Cause] = field(default_factory=list)
    headers: dict[str, str] = field(default_factory=dict)

    def __str__(self) -> str:
        return f"{self.code} {self.reason}: {self.message}"

    def body(self) -> JSON:
        """The ``Status`` object the real API server answers with."""
        status: JSON = {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        }
        details: JSON = {}
        if self.name:
            details["name"] = self.name
        if self.group:
            details["group"] = self.group
        if self.kind:
            details["kind"] = self.kind
        if self.causes:
            details["causes"] = [{"reason": c.reason, "message": c.message, "field": c.field} for c in self.causes]
        if self.headers.get("Retry-After"):
            details["retryAfterSeconds"] = int(self.headers["Retry-After"])
        if details:
            status["details"] = details
        return status


def resource_of(kind: str) -> str:
    """The plural resource name of a kind, as messages spell it (``pods``, ``secrets``)."""
    return kind.lower() + "s"


def not_found(kind: str, name: str) -> ApiError:
    return ApiError(404, "NotFound", f'{resource_of(kind)} "{name}" not found', kind=resource_of(kind), name=name)


def already_exists(kind: str, name: str) -> ApiError:
    return ApiError(
        409, "AlreadyExists", f'{resource_of(kind)} "{name}" already exists', kind=resource_of(kind), name=name
    )


def conflict(kind: str, name: str, detail: str) -> ApiError:
    return ApiError(
        409,
        "Conflict",
        f'Operation cannot be fulfilled on {resource_of(kind)} "{name}": {detail}',
        kind=resource_of(kind),
        name=name,
    )


def unprocessable(kind: str, name: str, causes: list[Cause]) -> ApiError:
    listed = ", ".join(c.text() for c in causes)
    message = f'{kind} "{name}" is invalid: {listed if len(causes) == 1 else "[" + listed + "]"}'
    return ApiError(422, "Invalid", message, kind=kind, name=name, causes=causes)


def bad_request(message: str) -> ApiError:
    return ApiError(400, "BadRequest", message)


def expired(requested: int, oldest: int) -> ApiError:
    return ApiError(410, "Expired", f"too old resource version: {requested} ({oldest})")
