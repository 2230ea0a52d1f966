"""The one exception tree of flytelike.

Every error flytelike raises on purpose derives from :class:`FlytelikeError`, so callers can catch the library's
failures without catching their own. Definition mistakes are :class:`SpecError`, which is also a
:class:`ValueError` so that ``except ValueError`` (as written against other task SDKs) keeps working.

::

    FlytelikeError
    ├── SpecError (also ValueError)       a definition is invalid; raised where it is written
    │   └── ConfigError                   a configuration file or FLYTELIKE_* variable is invalid
    ├── LoadError                         a file could not be imported, or has no such task
    ├── ValueConversionError (TypeError)  a value does not match a task's declared type
    ├── RunError                          a run could not complete
    │   ├── AdmissionError                a task can never fit where it would run (nothing was started)
    │   ├── TaskFailedError               a task failed after its retries
    │   │   ├── TaskTimeoutError          ... by running past its timeout
    │   │   └── OutOfMemoryError          ... by exceeding its memory limit
    │   ├── TaskCodeError                 a task's code raised in another process
    │   └── CancelledError                the run was cancelled and recorded as aborted
    ├── RecordWriteError                  a run records or cache file could not be opened or written
    ├── BundleError                       a project cannot be bundled (a link leaving it, an unreadable file)
    │   ├── BundleTooLargeError           ... because it is larger than the size limit
    │   └── BundleIntegrityError          an archive is unsafe or does not match its manifest or digest
    ├── StoreError                        the blob store could not read or write an object
    │   ├── InvalidKeyError (also ValueError)  a blob key is not a relative path of plain names
    │   ├── BlobNotFoundError             no object is stored under the key
    │   └── DigestMismatchError           an object's content does not match the digest it must have
    └── BackendError                      a backend failed to launch or track a task
        └── ControllerUnreachableError    a task running elsewhere cannot reach its controller

Errors carry their facts as attributes (the field, the task, the request); how to get past them is phrased by
whoever shows them (the CLI names its own flags), so the same error can travel in a gRPC status too.

Example:
    >>> import flytelike as fl
    >>> try:
    ...     fl.Resources(cpu=-1)
    ... except ValueError as e:
    ...     print(type(e).__name__, e.field)
    SpecError Resources.cpu
"""

from __future__ import annotations

__all__ = [
    "AdmissionError",
    "BackendError",
    "BlobNotFoundError",
    "BundleError",
    "BundleIntegrityError",
    "BundleSizeWarning",
    "BundleTooLargeError",
    "CancelledError",
    "CapacityWarning",
    "ConfigError",
    "ControllerUnreachableError",
    "DigestMismatchError",
    "FlytelikeError",
    "InvalidKeyError",
    "LoadError",
    "OutOfMemoryError",
    "RecordWriteError",
    "RunError",
    "SpecError",
    "StoreError",
    "TaskCodeError",
    "TaskFailedError",
    "TaskTimeoutError",
    "ValueConversionError",
]


class FlytelikeError(Exception):
    """Base of every error flytelike raises on purpose.

    Attributes:
        run_id: the run the error ended, when it ended one (``flytelike runs show RUN_ID``).
    """

    run_id: str | None = None


class SpecError(FlytelikeError, ValueError):
    """A definition is invalid: a resource, accelerator, platform, policy, task or environment.

    Raised when the object is constructed, so the mistake surfaces where it was written. The message names the
    field, the rejected value and what would be accepted; the same facts are kept as attributes.

    Attributes:
        field: dotted name of the offending field, for example ``"Resources.memory"``.
        value: the rejected value, as given.
        accepted: a short description or example of what would be accepted.
    """

    def __init__(
        self,
        field: str,
        value: object,
        problem: str,
        *,
        accepted: str | None = None,
    ) -> None:
        self.field = field
        self.value = value
        self.problem = problem
        self.accepted = accepted
        message = f"{field}={value!r}: {problem}"
        if accepted:
            message += f"; accepted: {accepted}"
        super().__init__(message)

    def __reduce__(self) -> tuple[object, ...]:
        # Keyword-only arguments are not restored by the default pickling of exceptions, and errors must cross
        # process boundaries intact.
        return (_rebuild_spec_error, (type(self), self.field, self.value, self.problem, self.accepted))


def _rebuild_spec_error(
    cls: type[SpecError], field: str, value: object, problem: str, accepted: str | None
) -> SpecError:
    return cls(field, value, problem, accepted=accepted)


class ConfigError(SpecError):
    """The configuration file or an environment variable holds an invalid setting."""


class LoadError(FlytelikeError):
    """A user's file could not be imported, or does not define the requested task."""


class ValueConversionError(FlytelikeError, TypeError):
    """A value crossing a task boundary does not match the task's declared type."""


class RunError(FlytelikeError):
    """A run could not complete."""


class AdmissionError(RunError):
    """A task asks for more than the machine running it can ever provide; raised before anything starts.

    The message states the facts; what to do about them (run it elsewhere, or anyway) is phrased by whoever shows
    the error (the CLI names its flags), from the attributes.

    Attributes:
        task: the task's name.
        action: the action id, when the request showed up during the run ("" before it starts).
        resource: ``memory``, ``cpu`` or ``gpu``.
        requested: what the task asks for (bytes, millicores or devices).
        capacity: what this machine has, in the same unit.
        strict: the request would run (slower, or without GPUs) but strict mode refuses it.
    """

    def __init__(
        self,
        message: str,
        *,
        task: str = "",
        action: str = "",
        resource: str = "",
        requested: int = 0,
        capacity: int = 0,
        strict: bool = False,
    ) -> None:
        self.task = task
        self.action = action
        self.resource = resource
        self.requested = requested
        self.capacity = capacity
        self.strict = strict
        super().__init__(message)


class TaskFailedError(RunError):
    """A task raised, after exhausting its retries.

    Attributes:
        task: the task's name.
        action: the action id inside the run.
        attempt: the attempt number that failed last (1-based).
        cause_type: the qualified name of the exception the task raised.
        cause: ``"Type: message"`` of that exception (``"KeyError: 'x'"``).
        origin_task, origin_action: where it was raised: this task, or the descendant whose failure this task let
            through. A failure that passes up through parents stays one error deep: its ``__cause__`` is the
            user's exception itself, whatever the nesting.
    """

    def __init__(
        self,
        message: str,
        *,
        task: str,
        action: str,
        attempt: int,
        cause_type: str = "",
        cause: str = "",
        origin_task: str = "",
        origin_action: str = "",
    ) -> None:
        self.task = task
        self.action = action
        self.attempt = attempt
        self.cause_type = cause_type
        self.cause = cause
        self.origin_task = origin_task or task
        self.origin_action = origin_action or action
        super().__init__(message)

    def __reduce__(self) -> tuple[object, ...]:
        return (
            _rebuild_task_error,
            (
                type(self),
                self.args[0],
                self.task,
                self.action,
                self.attempt,
                self.cause_type,
                self.cause,
                self.origin_task,
                self.origin_action,
            ),
        )


def _rebuild_task_error(
    cls: type[TaskFailedError],
    message: str,
    task: str,
    action: str,
    attempt: int,
    cause_type: str,
    cause: str = "",
    origin_task: str = "",
    origin_action: str = "",
) -> TaskFailedError:
    return cls(
        message,
        task=task,
        action=action,
        attempt=attempt,
        cause_type=cause_type,
        cause=cause,
        origin_task=origin_task,
        origin_action=origin_action,
    )


class TaskTimeoutError(TaskFailedError):
    """A task ran longer than its timeout and was cancelled."""


class OutOfMemoryError(TaskFailedError):
    """A task exceeded its memory limit and was killed."""


class TaskCodeError(RunError):
    """The task's code raised in another process (a warm worker, a pod, a job), or ended with ``sys.exit()``.

    Exceptions do not travel between processes (nothing is unpickled), so the error describes the original one.

    Attributes:
        type_name: the qualified name of the exception's class (``ValueError``, ``mymodule.MyError``).
        message: ``str()`` of the exception.
        traceback_text: the traceback as the task's process formatted it.
    """

    def __init__(self, type_name: str, message: str, traceback_text: str = "") -> None:
        self.type_name = type_name
        self.message = message
        self.traceback_text = traceback_text
        super().__init__(f"{type_name}: {message}" if message else type_name)


class CancelledError(RunError):
    """The run was cancelled (Ctrl-C or an API call) and recorded as aborted."""


class BackendError(FlytelikeError):
    """A backend (Kubernetes, AWS Batch, local processes) failed to launch or track a task."""


class ControllerUnreachableError(BackendError):
    """A task running outside the controller's process (a pod, a Batch job) cannot reach the controller's
    ActionService, or the controller refused the run's token.

    Attributes:
        address: the ``host:port`` the task was told to reach.
        reason: why, as gRPC put it (``UNAVAILABLE: failed to connect to all addresses ...``,
            ``UNAUTHENTICATED: ...``).
    """

    def __init__(self, *, address: str, reason: str) -> None:
        self.address = address
        self.reason = reason
        super().__init__(
            f"cannot reach the controller at {address} ({reason}): set [controller] address"
            " (or FLYTELIKE_CONTROLLER__ADDRESS) to an address this task can reach"
        )

    def __reduce__(self) -> tuple[object, ...]:
        return (_rebuild_unreachable, (type(self), self.address, self.reason))


def _rebuild_unreachable(
    cls: type[ControllerUnreachableError], address: str, reason: str
) -> ControllerUnreachableError:
    return cls(address=address, reason=reason)


class RecordWriteError(FlytelikeError):
    """A local SQLite file (the run records, or the output cache) could not be opened or written.

    The write was rolled back, so the file keeps what it held before; once the cause is fixed, later writes work.

    Attributes:
        path: the database file.
        cause: why, as SQLite or the operating system put it (``database or disk is full``,
            ``attempt to write a readonly database``, ``database is locked``, ...).
    """

    def __init__(self, message: str, *, path: str, cause: str) -> None:
        self.path = path
        self.cause = cause
        super().__init__(message)

    def __reduce__(self) -> tuple[object, ...]:
        return (_rebuild_record_write_error, (type(self), self.args[0], self.path, self.cause))


def _rebuild_record_write_error(cls: type[RecordWriteError], message: str, path: str, cause: str) -> RecordWriteError:
    return cls(message, path=path, cause=cause)


class StoreError(FlytelikeError):
    """The blob store (``file://`` or ``s3://``) could not read or write an object.

    Attributes:
        url: where the object is (``s3://bucket/prefix/key``, ``file:///root/key``), or the store's URL.
        key: the store key (``runs/R/A/inputs.pb``), ``""`` when the error is not about one object.
        cause: why, as the storage service or the operating system put it (``AccessDenied: Access Denied``,
            ``No space left on device``), ``""`` when the message says it all.
    """

    def __init__(self, message: str, *, url: str = "", key: str = "", cause: str = "") -> None:
        self.url = url
        self.key = key
        self.cause = cause
        super().__init__(message)

    def __reduce__(self) -> tuple[object, ...]:
        return (_rebuild_store_error, (type(self), self.args[0], self.url, self.key, self.cause))


def _rebuild_store_error(cls: type[StoreError], message: str, url: str, key: str, cause: str) -> StoreError:
    return cls(message, url=url, key=key, cause=cause)


class InvalidKeyError(StoreError, ValueError):
    """A blob key is empty, absolute, or has an empty, ``.`` or ``..`` part (or a character a path cannot hold)."""


class BlobNotFoundError(StoreError):
    """No object is stored under the key."""


class DigestMismatchError(StoreError):
    """An object's content does not have the sha256 digest its key (or the caller) names.

    Attributes:
        expected: the hex digest the content must have.
        actual: the hex digest it has.
    """

    def __init__(
        self, message: str, *, url: str = "", key: str = "", cause: str = "", expected: str = "", actual: str = ""
    ) -> None:
        self.expected = expected
        self.actual = actual
        super().__init__(message, url=url, key=key, cause=cause)

    def __reduce__(self) -> tuple[object, ...]:
        return (
            _rebuild_digest_error,
            (type(self), self.args[0], self.url, self.key, self.cause, self.expected, self.actual),
        )


def _rebuild_digest_error(
    cls: type[DigestMismatchError], message: str, url: str, key: str, cause: str, expected: str, actual: str
) -> DigestMismatchError:
    return cls(message, url=url, key=key, cause=cause, expected=expected, actual=actual)


class CapacityWarning(UserWarning):
    """A local task asks for more cpu or GPUs than this machine has; it runs anyway (slower, or without GPUs)."""


class BundleError(FlytelikeError):
    """A project's code could not be bundled, or a bundle could not be read.

    Attributes:
        path: the file, link or archive member concerned, relative to the project root or the archive ("" if none).
        reason: what is wrong with it, without the path.
    """

    def __init__(self, message: str, *, path: str = "", reason: str = "") -> None:
        self.path = path
        self.reason = reason
        super().__init__(message)

    def __reduce__(self) -> tuple[object, ...]:
        return (_rebuild_bundle_error, (type(self), self.args[0], self.path, self.reason))


def _rebuild_bundle_error(cls: type[BundleError], message: str, path: str, reason: str) -> BundleError:
    return cls(message, path=path, reason=reason)


class BundleTooLargeError(BundleError):
    """The files to bundle add up to more than the size limit; nothing was hashed or written.

    Attributes:
        size: the total size of the files, in bytes.
        limit: the limit, in bytes.
        largest: the largest files as ``(path, size)`` pairs, largest first.
    """

    def __init__(self, message: str, *, size: int, limit: int, largest: tuple[tuple[str, int], ...]) -> None:
        self.size = size
        self.limit = limit
        self.largest = largest
        super().__init__(message, reason=f"{size} bytes is more than the limit of {limit} bytes")

    def __reduce__(self) -> tuple[object, ...]:
        return (_rebuild_too_large, (type(self), self.args[0], self.size, self.limit, self.largest))


def _rebuild_too_large(
    cls: type[BundleTooLargeError], message: str, size: int, limit: int, largest: tuple[tuple[str, int], ...]
) -> BundleTooLargeError:
    return cls(message, size=size, limit=limit, largest=largest)


class BundleIntegrityError(BundleError):
    """An archive was refused: a member is unsafe (an absolute path, ``..``, a link leaving the directory, a
    device, a setuid bit) or its content does not match the manifest, or the manifest does not match the digest.

    Nothing of a refused archive is left in the destination.
    """


class BundleSizeWarning(UserWarning):
    """The files to bundle are larger than the warning threshold (but within the limit).

    Attributes:
        size: the total size, in bytes.
        threshold: the warning threshold, in bytes.
        largest: the largest files as ``(path, size)`` pairs, largest first.
    """

    def __init__(self, message: str, *, size: int, threshold: int, largest: tuple[tuple[str, int], ...]) -> None:
        self.size = size
        self.threshold = threshold
        self.largest = largest
        super().__init__(message)
