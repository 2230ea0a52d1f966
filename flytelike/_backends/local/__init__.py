"""The local backend: this machine's capacity and admission, in-process and warm-worker execution."""

from flytelike._backends.local._backend import LocalBackend

__all__ = ["LocalBackend"]
