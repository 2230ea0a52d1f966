"""Resources: what a task needs, as request/limit pairs of exact quantities, and how definitions combine.

A scalar sets the request; a ``(request, limit)`` tuple sets both. ``None`` leaves a field unset so that it is
inherited; ``0`` (or ``gpu=0``) sets it to nothing, which resets an inherited value.

Example:
    >>> import flytelike as fl
    >>> r = fl.Resources(cpu=("1", "2"), memory="4Gi", gpu="A100:1")
    >>> str(r.cpu.request), str(r.cpu.limit), r.gpu
    ('1', '2', GPU(device='A100', quantity=1, partition=None))
    >>> r.merge(fl.Resources(memory="8Gi")).memory.request
    Quantity('8Gi')
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from decimal import Decimal
from typing import Final, Literal, TypeAlias

from flytelike._accelerators import GPU, Device, parse_accelerator
from flytelike._quantity import Quantity, parse_quantity
from flytelike.errors import SpecError

__all__ = ["AUTO", "Amount", "Resources"]

AUTO: Final = "auto"
"""``shm="auto"``: shared memory sized by the platform (Kubernetes: an unbounded in-memory volume)."""

CpuValue: TypeAlias = int | float | str
SizeValue: TypeAlias = str
GpuValue: TypeAlias = int | str | Device | None

_MAX_INT64: Final = 2**63 - 1
_CPU_EXAMPLE = "cpu=2, cpu=0.5, cpu='500m' or cpu=('1', '2')"
_SIZE_EXAMPLE = "'{}' (a Kubernetes quantity string such as '512Mi', '16Gi' or '1G')"


@dataclass(frozen=True, slots=True)
class Amount:
    """A request and an optional limit of one resource, both exact quantities.

    Attributes:
        request: what the task is guaranteed.
        limit: the most it may use; ``None`` leaves it to the backend's documented rule.
    """

    request: Quantity
    limit: Quantity | None = None

    def __repr__(self) -> str:
        if self.limit is None:
            return repr(str(self.request))
        return repr((str(self.request), str(self.limit)))

    @property
    def is_zero(self) -> bool:
        """True for an explicit "none of this resource" (``cpu=0``), which resets an inherited value."""
        return self.request.value == 0 and (self.limit is None or self.limit.value == 0)

    def upper(self) -> Quantity:
        """The limit when there is one, else the request: the most this task can use."""
        return self.limit if self.limit is not None else self.request

    def max_with(self, other: Amount) -> Amount:
        """The larger request and the larger limit; a lone limit is kept (raised to the request if needed)."""
        request = max(self.request, other.request)
        limits = [q for q in (self.limit, other.limit) if q is not None]
        limit = max([*limits, request]) if limits else None
        return Amount(request, limit)


def _check_quantity(q: Quantity, field: str, given: object, kind: Literal["cpu", "size"]) -> Quantity:
    example = _CPU_EXAMPLE if kind == "cpu" else _SIZE_EXAMPLE.format("16Gi")
    if q.value < 0:
        raise SpecError(field, given, "must not be negative", accepted=example)
    # milli() is exact and tidy (no trailing zeros), so a negative exponent means a digit finer than 1m; the
    # modulo it replaces ran in the default 28-digit context and raised InvalidOperation for cpu >= 1e25.
    milli_exponent = q.milli().as_tuple().exponent
    if kind == "cpu" and isinstance(milli_exponent, int) and milli_exponent < 0:
        raise SpecError(field, given, "cpu is counted in steps of 1m (0.001 cores)", accepted=example)
    if kind == "size" and not q.is_integer:
        raise SpecError(field, given, "a size must be a whole number of bytes", accepted=example)
    # Kubernetes holds no quantity above 2^63-1 (in millicores for cpu, as every scheduler counts it), and run
    # records and admission count in int64: a larger value is a mistake, refused here rather than deep in a run.
    if (q.milli() if kind == "cpu" else q.value) > _MAX_INT64:
        largest = f"{_MAX_INT64 // 1000} cores" if kind == "cpu" else "2^63-1 bytes, just below 8Ei"
        raise SpecError(field, given, f"is larger than any machine or cluster (at most {largest})", accepted=example)
    return q


def _scalar(value: object, field: str, kind: Literal["cpu", "size"]) -> Quantity:
    if kind == "size" and not isinstance(value, str):
        if isinstance(value, int | float) and not isinstance(value, bool):
            raise SpecError(
                field,
                value,
                "a bare number is ambiguous for a size (bytes? MB? MiB?)",
                accepted=f"a string with a unit, e.g. '{int(value)}Mi' or '16Gi'",
            )
        raise SpecError(field, value, "not a size", accepted=_SIZE_EXAMPLE.format("16Gi"))
    if kind == "cpu" and (isinstance(value, bool) or not isinstance(value, int | float | str | Decimal)):
        raise SpecError(field, value, "not a cpu amount", accepted=_CPU_EXAMPLE)
    q = parse_quantity(value, field=field)  # type: ignore[arg-type]
    return _check_quantity(q, field, value, kind)


def _amount(value: object, field: str, kind: Literal["cpu", "size"]) -> Amount | None:
    if value is None:
        return None
    if isinstance(value, list):
        value = tuple(value)
    if isinstance(value, tuple):
        if len(value) != 2:
            example = "('1', '2')" if kind == "cpu" else "('1Gi', '4Gi')"
            raise SpecError(field, value, "a range is exactly (request, limit)", accepted=example)
        request = _scalar(value[0], field, kind)
        limit = _scalar(value[1], field, kind)
        if request > limit:
            raise SpecError(
                field,
                value,
                f"request {request} is larger than limit {limit}",
                accepted="(request, limit) with request <= limit",
            )
        return Amount(request, limit)
    return Amount(_scalar(value, field, kind))


def _shm(value: object) -> Amount | Literal["auto"] | None:
    if isinstance(value, str) and value.strip().lower() == AUTO:
        return AUTO
    if isinstance(value, tuple):
        raise SpecError("Resources.shm", value, "shared memory has no request/limit pair", accepted="'2Gi'")
    return _amount(value, "Resources.shm", "size")


@dataclass(frozen=True, slots=True, init=False)
class Resources:
    """Compute a task needs: cpu, memory, accelerators, ephemeral disk and shared memory (``/dev/shm``).

    Args:
        cpu: cores as int, float or string (``2``, ``0.5``, ``"500m"``), or ``(request, limit)``.
        memory: a quantity string (``"16Gi"``, ``"512Mi"``), or ``(request, limit)``. Bare numbers are rejected:
            they are ambiguous.
        gpu: a count of any device (``1``), ``"A100:2"``, ``fl.GPU(...)``, ``fl.TPU(...)`` or ``fl.Device(...)``.
        disk: ephemeral storage, a quantity string.
        shm: shared memory size, a quantity string or ``"auto"``.

    Example:
        >>> import flytelike as fl
        >>> fl.Resources(cpu=0.5, memory="1024Mi")
        Resources(cpu='500m', memory='1Gi')
    """

    cpu: Amount | None
    memory: Amount | None
    gpu: int | Device | None
    disk: Amount | None
    shm: Amount | Literal["auto"] | None

    def __init__(
        self,
        cpu: CpuValue | tuple[CpuValue, CpuValue] | None = None,
        memory: SizeValue | tuple[SizeValue, SizeValue] | None = None,
        gpu: GpuValue = None,
        disk: SizeValue | tuple[SizeValue, SizeValue] | None = None,
        shm: SizeValue | None = None,
    ) -> None:
        object.__setattr__(self, "cpu", _amount(cpu, "Resources.cpu", "cpu"))
        object.__setattr__(self, "memory", _amount(memory, "Resources.memory", "size"))
        object.__setattr__(self, "gpu", parse_accelerator(gpu, field="Resources.gpu"))
        disk_amount = _amount(disk, "Resources.disk", "size")
        object.__setattr__(self, "disk", disk_amount)
        object.__setattr__(self, "shm", _shm(shm))

    @classmethod
    def _of(cls, **values: object) -> Resources:
        """Build from already-normalised fields (no re-parsing)."""
        r = object.__new__(cls)
        for f in fields(cls):
            object.__setattr__(r, f.name, values.get(f.name))
        return r

    def __repr__(self) -> str:
        parts = [f"{f.name}={getattr(self, f.name)!r}" for f in fields(self) if getattr(self, f.name) is not None]
        return f"Resources({', '.join(parts)})"

    def __reduce__(self) -> tuple[object, ...]:
        return (_rebuild, (tuple(getattr(self, f.name) for f in fields(self)),))

    def is_empty(self) -> bool:
        """True when no field is set."""
        return all(getattr(self, f.name) is None for f in fields(self))

    def merge(self, override: Resources | None) -> Resources:
        """Field by field: every field ``override`` sets wins, the rest is kept.

        Setting ``memory`` on a task keeps the environment's ``cpu`` and ``gpu``; an explicit zero
        (``gpu=0``, ``cpu=0``) resets the inherited value.
        """
        if override is None:
            return self
        return Resources._of(
            **{
                f.name: getattr(override, f.name) if getattr(override, f.name) is not None else getattr(self, f.name)
                for f in fields(self)
            }
        )

    def combine_max(self, other: Resources) -> Resources:
        """The larger of each field, compared exactly with units understood (``16000Mi`` < ``16Gi``).

        This is how a platform that also names resources (``Batch(cpu=4, memory=8000)``) combines with
        ``Resources``: neither side's value can shrink the other's, and a field only one side sets is kept.
        """
        out: dict[str, object] = {}
        for name in ("cpu", "memory", "disk"):
            a: Amount | None = getattr(self, name)
            b: Amount | None = getattr(other, name)
            out[name] = a.max_with(b) if a is not None and b is not None else (a or b)
        out["gpu"] = _max_gpu(self.gpu, other.gpu)
        out["shm"] = _max_shm(self.shm, other.shm)
        return Resources._of(**out)

    @property
    def gpu_count(self) -> int:
        """Whole accelerators requested (TPU chips count individually); 0 when none."""
        if self.gpu is None:
            return 0
        return self.gpu if isinstance(self.gpu, int) else self.gpu.quantity


def _rebuild(values: tuple[object, ...]) -> Resources:
    return Resources._of(**{f.name: v for f, v in zip(fields(Resources), values, strict=True)})


def _max_gpu(a: int | Device | None, b: int | Device | None) -> int | Device | None:
    if a is None or b is None:
        return a if b is None else b
    if isinstance(a, int) and isinstance(b, int):
        return max(a, b)
    if isinstance(a, Device) and isinstance(b, Device):
        if (a.device, a.partition, a.device_class) != (b.device, b.partition, b.device_class):
            raise SpecError(
                "gpu",
                (a, b),
                "two different accelerators are requested for one task",
                accepted="the same device in both places, or a count on one side",
            )
        return a if a.quantity >= b.quantity else b
    device, count = (a, b) if isinstance(a, Device) else (b, a)
    assert isinstance(device, Device)
    assert isinstance(count, int)
    if count <= device.quantity:
        return device
    if type(device) is GPU:
        return GPU(device.device, count, device.partition)
    raise SpecError(
        "gpu",
        (a, b),
        f"cannot raise a {type(device).__name__} slice to {count} devices",
        accepted="the same count on both sides",
    )


def _max_shm(a: Amount | Literal["auto"] | None, b: Amount | Literal["auto"] | None) -> Amount | Literal["auto"] | None:
    # "auto" sizes shared memory to whatever the platform allows, so it already covers any fixed size.
    if a == AUTO or b == AUTO:
        return AUTO
    if a is None or b is None:
        return a if b is None else b
    assert isinstance(a, Amount)
    assert isinstance(b, Amount)
    return a.max_with(b)


def size_amount(value: object, field: str, *, int_unit: Literal["Mi", "Gi"] = "Mi") -> Amount | None:
    """A platform size: an int counts ``int_unit`` (MiB for AWS Batch), a string is a quantity."""
    if value is None:
        return None
    if isinstance(value, int) and not isinstance(value, bool):
        if value < 0:
            raise SpecError(field, value, "must not be negative", accepted=f"16000 ({int_unit}B) or '16Gi'")
        return Amount(Quantity.parse(f"{value}{int_unit}", field=field))
    return _amount(value, field, "size")


def cpu_amount(value: object, field: str) -> Amount | None:
    """A platform cpu value with the same rules as ``Resources.cpu``."""
    return _amount(value, field, "cpu")
