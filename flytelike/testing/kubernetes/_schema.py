"""What a strict decoder knows of an object: its fields and their JSON types, from the OpenAPI schema.

The schema is the one ``kubernetes-validate`` ships (strict variant: no additional properties), so the emulator
knows exactly the fields of the Kubernetes version the official client is generated from.
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import kubernetes_validate  # type: ignore[import-untyped]

__all__ = ["SchemaProblems", "check", "preload_schema"]

_SCHEMA_DIR: Final = Path(kubernetes_validate.__file__).parent / "kubernetes-json-schema"
_REF_PREFIX: Final = "#/$defs/"
_GO_TYPES: Final = {
    "string": "string",
    "integer": "int64",
    "number": "float64",
    "boolean": "bool",
    "object": "object",
    "array": "array",
}


@dataclass(slots=True)
class SchemaProblems:
    """What a strict decoder would report.

    Attributes:
        unknown: paths of fields the schema does not know (``spec.containers[0].foo``).
        wrong_type: ``(path, expected JSON type, the value's JSON type)`` for values of the wrong type.
    """

    unknown: list[str]
    wrong_type: list[tuple[str, str, str]]


@functools.cache
def _definitions() -> dict[str, Any]:
    versions = sorted(p for p in _SCHEMA_DIR.iterdir() if p.name.endswith("-local-strict"))
    with open(versions[-1] / "_definitions.json", encoding="utf-8") as f:
        defs: dict[str, Any] = json.load(f)["$defs"]
    return defs


def preload_schema() -> None:
    """Read the schema now (it is read on first use otherwise)."""
    _definitions()


def check(obj: object, definition: str) -> SchemaProblems:
    """Walk ``obj`` against the schema definition ``definition`` (``io.k8s.api.core.v1.Pod``).

    Args:
        obj: the decoded JSON object.
        definition: the name of its schema definition.

    Returns:
        The unknown fields and mistyped values found, in document order.
    """
    problems = SchemaProblems([], [])
    _walk(obj, {"$ref": _REF_PREFIX + definition}, "", problems)
    return problems


def _json_type(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


def _resolve(schema: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        schema = _definitions()[schema["$ref"].removeprefix(_REF_PREFIX)]
    return schema


def _walk(value: object, schema: dict[str, Any], path: str, problems: SchemaProblems) -> None:
    schema = _resolve(schema)
    # Only quantities and int-or-strings use oneOf in the core API, and they hold scalars.
    options = schema.get("oneOf", [schema])
    types = {t for option in options for t in _types(option)}
    actual = _json_type(value)
    if types and actual not in types and not (actual == "integer" and "number" in types):
        if actual != "null":
            expected = sorted(types - {"null"})
            problems.wrong_type.append((path, _GO_TYPES.get(expected[0], expected[0]) if expected else "?", actual))
        return
    if isinstance(value, dict):
        properties: dict[str, Any] = schema.get("properties", {})
        extra = schema.get("additionalProperties")
        for key, item in value.items():
            child = f"{path}.{key}" if path else key
            if key in properties:
                _walk(item, properties[key], child, problems)
            elif isinstance(extra, dict):
                _walk(item, extra, child, problems)
            elif properties or extra is False:
                problems.unknown.append(child)
    elif isinstance(value, list) and "items" in schema:
        for i, item in enumerate(value):
            _walk(item, schema["items"], f"{path}[{i}]", problems)


def _types(schema: dict[str, Any]) -> list[str]:
    declared = schema.get("type", [])
    return [declared] if isinstance(declared, str) else list(declared)
