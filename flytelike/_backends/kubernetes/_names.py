"""Names and labels of pods: deterministic (a relaunch finds the pod of an attempt by name) and valid for the API."""

from __future__ import annotations

import hashlib
import re

__all__ = ["LABEL_ACTION", "LABEL_ATTEMPT", "LABEL_EXECUTOR", "LABEL_RUN", "label_value", "pod_name"]

LABEL_RUN = "flytelike.io/run"
LABEL_ACTION = "flytelike.io/action"
LABEL_ATTEMPT = "flytelike.io/attempt"
LABEL_EXECUTOR = "flytelike.io/executor"

_MAX_NAME = 63  # a pod's name is also its hostname: one DNS label
_NOT_NAME = re.compile(r"[^a-z0-9-]+")
_NOT_LABEL = re.compile(r"[^A-Za-z0-9_.-]+")


def pod_name(run: str, action: str, attempt: int) -> str:
    """``fl-<run>-<action>-<attempt>`` as a DNS label (lower case, ``-`` for anything else, 63 characters at most).

    A name that had to change (an action id's dots, capitals, a long run name) ends in a hash of the original, so
    two attempts never share a pod name.

    Example:
        >>> pod_name("r20261201-104501-ab12cd", "0", 2)
        'fl-r20261201-104501-ab12cd-0-2'
        >>> pod_name("r20261201-104501-ab12cd", "0.3.1", 2)
        'fl-r20261201-104501-ab12cd-0-3-1-2-17c512'
    """
    raw = f"fl-{run}-{action}-{attempt}"
    name = re.sub(r"-{2,}", "-", _NOT_NAME.sub("-", raw.lower())).strip("-")
    if name == raw and len(name) <= _MAX_NAME:
        return name
    digest = hashlib.sha256(raw.encode()).hexdigest()[:6]
    return f"{name[: _MAX_NAME - 7].rstrip('-')}-{digest}"


def label_value(value: str) -> str:
    """``value`` as a label value (63 characters of ``[A-Za-z0-9_.-]``, alphanumeric at both ends), hashed when it
    does not fit.

    Example:
        >>> label_value("0.3.1")
        '0.3.1'
    """
    clean = _NOT_LABEL.sub("-", value).strip("-_.")
    if clean == value and len(clean) <= 63:
        return clean
    digest = hashlib.sha256(value.encode()).hexdigest()[:10]
    return f"{clean[:52].strip('-_.')}-{digest}".lstrip("-")
