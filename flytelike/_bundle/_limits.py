"""Size thresholds of a bundle: the total of its files' sizes, uncompressed."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["DEFAULT_LIMITS", "FAIL_BYTES", "WARN_BYTES", "SizeLimits"]

WARN_BYTES = 50 << 20
FAIL_BYTES = 500 << 20


@dataclass(frozen=True, slots=True)
class SizeLimits:
    """Total file sizes at which bundling warns (:class:`~flytelike.errors.BundleSizeWarning`) and fails
    (:class:`~flytelike.errors.BundleTooLargeError`)."""

    warn: int = WARN_BYTES
    fail: int = FAIL_BYTES


DEFAULT_LIMITS = SizeLimits()
