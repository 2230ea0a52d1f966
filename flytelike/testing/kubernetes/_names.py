"""Kubernetes' name and label syntax (``k8s.io/apimachinery/pkg/util/validation``), with its error wording."""

from __future__ import annotations

import re
from typing import Final

from flytelike.testing.kubernetes._status import Cause, invalid

__all__ = ["dns_label", "dns_subdomain", "label_key", "label_value", "labels"]

_LABEL: Final = "[a-z0-9]([-a-z0-9]*[a-z0-9])?"
_LABEL_RE: Final = re.compile(_LABEL)
_SUBDOMAIN_RE: Final = re.compile(rf"{_LABEL}(\.{_LABEL})*")
_QUALIFIED: Final = "([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]"
_QUALIFIED_RE: Final = re.compile(_QUALIFIED)
_VALUE_RE: Final = re.compile(rf"({_QUALIFIED})?")

LABEL_MESSAGE: Final = (
    "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end "
    "with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is "
    "'[a-z0-9]([-a-z0-9]*[a-z0-9])?')"
)
SUBDOMAIN_MESSAGE: Final = (
    "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start "
    "and end with an alphanumeric character (e.g. 'example.com', regex used for validation is "
    "'[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"
)
_QUALIFIED_MESSAGE: Final = (
    "must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric "
    "character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is "
    "'([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')"
)
_VALUE_MESSAGE: Final = (
    "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start "
    "and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for "
    "validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')"
)


def dns_label(value: str) -> list[str]:
    """Problems of ``value`` as an RFC 1123 label (container names, namespaces); empty when valid."""
    problems = []
    if len(value) > 63:
        problems.append("must be no more than 63 characters")
    if not _LABEL_RE.fullmatch(value):
        problems.append(LABEL_MESSAGE)
    return problems


def dns_subdomain(value: str) -> list[str]:
    """Problems of ``value`` as an RFC 1123 subdomain (object names); empty when valid."""
    problems = []
    if len(value) > 253:
        problems.append("must be no more than 253 characters")
    if not _SUBDOMAIN_RE.fullmatch(value):
        problems.append(SUBDOMAIN_MESSAGE)
    return problems


def label_key(key: str) -> list[str]:
    """Problems of ``key`` as a qualified name (label and annotation keys, extended resource names)."""
    parts = key.split("/")
    if len(parts) == 1:
        prefix, name = "", parts[0]
    elif len(parts) == 2:
        prefix, name = parts
        if not prefix:
            return ["prefix part must be non-empty"]
    else:
        return [
            "a qualified name "
            + _QUALIFIED_MESSAGE
            + " with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')"
        ]
    problems = []
    if not name:
        problems.append("name part must be non-empty")
    elif len(name) > 63:
        problems.append("name part must be no more than 63 characters")
    if name and not _QUALIFIED_RE.fullmatch(name):
        problems.append("name part " + _QUALIFIED_MESSAGE)
    if prefix:
        problems.extend("prefix part " + p for p in dns_subdomain(prefix))
    return problems


def label_value(value: str) -> list[str]:
    """Problems of ``value`` as a label value; empty when valid."""
    problems = []
    if len(value) > 63:
        problems.append("must be no more than 63 characters")
    if not _VALUE_RE.fullmatch(value):
        problems.append(_VALUE_MESSAGE)
    return problems


def labels(values: dict[str, str], field: str) -> list[Cause]:
    """The causes for every bad key and value of a label map at ``field``."""
    causes: list[Cause] = []
    for key, value in values.items():
        causes.extend(invalid(field, key, p) for p in label_key(key))
        if isinstance(value, str):
            causes.extend(invalid(field, value, p) for p in label_value(value))
    return causes
