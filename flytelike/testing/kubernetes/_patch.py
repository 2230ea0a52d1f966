"""JSON merge patches (RFC 7386) and the strategic merge of the lists kubelets patch (conditions by type,
container statuses by name)."""

from __future__ import annotations

import copy
from typing import Any, Final

__all__ = ["merge_patch"]

# The merge keys of the pod status lists (x-kubernetes-patch-merge-key in the OpenAPI schema).
_MERGE_KEYS: Final = {
    "conditions": "type",
    "containerStatuses": "name",
    "initContainerStatuses": "name",
    "ephemeralContainerStatuses": "name",
}


def merge_patch(target: Any, patch: Any, *, strategic: bool) -> Any:
    """``target`` with ``patch`` applied; ``strategic`` merges keyed lists element by element."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        elif strategic and key in _MERGE_KEYS and isinstance(value, list) and isinstance(result.get(key), list):
            result[key] = _merge_list(result[key], value, _MERGE_KEYS[key])
        else:
            result[key] = merge_patch(result.get(key), value, strategic=strategic)
    return result


def _merge_list(current: list[Any], patch: list[Any], key: str) -> list[Any]:
    merged = [copy.deepcopy(item) for item in current]
    for item in patch:
        for i, existing in enumerate(merged):
            if isinstance(existing, dict) and isinstance(item, dict) and existing.get(key) == item.get(key):
                merged[i] = merge_patch(existing, item, strategic=True)
                break
        else:
            merged.append(copy.deepcopy(item))
    return merged
