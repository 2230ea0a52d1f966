"""What the backends whose tasks run in another process share: the blob store, code bundles, the controller's
service for tasks calling back, and the steps of an attempt through ``flytelike-entry`` (design.md §4.3)."""

from flytelike._backends._remote._attempt import EntryLaunch, prepare_attempt, read_attempt
from flytelike._backends._remote._services import BundleRef, RemoteServices

__all__ = ["BundleRef", "EntryLaunch", "RemoteServices", "prepare_attempt", "read_attempt"]
