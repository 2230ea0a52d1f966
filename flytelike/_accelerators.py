"""Accelerator requests (GPU, TPU, Device) and the catalog they are validated against.

The catalog is data: built-in entries below, extended at run time with :func:`register_device` or from the
``[[accelerators]]`` tables of the configuration file, so a new device needs no release.

Example:
    >>> import flytelike as fl
    >>> fl.GPU("A100", 2)
    GPU(device='A100', quantity=2, partition=None)
    >>> fl.TPU("V5P", "2x2x2").quantity
    8
"""

from __future__ import annotations

import enum
import importlib
import math
import re
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from flytelike.errors import SpecError

__all__ = [
    "GPU",
    "TPU",
    "Device",
    "DeviceClass",
    "DeviceSpec",
    "catalog",
    "parse_accelerator",
    "register_device",
]


class DeviceClass(enum.StrEnum):
    """The vendor family of an accelerator; it decides the resource name a backend requests."""

    NVIDIA_GPU = "nvidia-gpu"
    GOOGLE_TPU = "google-tpu"
    AMAZON_NEURON = "amazon-neuron"
    AMD_GPU = "amd-gpu"
    HABANA_GAUDI = "habana-gaudi"


@dataclass(frozen=True, slots=True)
class DeviceSpec:
    """One catalog entry.

    Attributes:
        name: canonical device name, as written in requests (``"A100_80G"``).
        device_class: vendor family.
        max_quantity: most devices of this kind one task may request.
        partitions: MIG profiles for a GPU, slice topologies for a TPU; empty when the device cannot be split.
        aliases: other spellings accepted for ``name`` (matching ignores case, spaces, ``-`` and ``_``).
    """

    name: str
    device_class: DeviceClass
    max_quantity: int = 8
    partitions: tuple[str, ...] = ()
    aliases: tuple[str, ...] = ()


_TPU_2D = ("1x1", "2x2", "2x4", "4x4", "4x8", "8x8", "8x16", "16x16")
_TPU_3D = (
    "2x2x1", "2x2x2", "2x4x4", "4x4x4", "4x4x8", "4x8x8", "8x8x8", "8x8x16", "8x16x16", "16x16x16", "16x16x24",
)  # fmt: skip

_NV, _TPU, _NEURON, _AMD, _GAUDI = (
    DeviceClass.NVIDIA_GPU,
    DeviceClass.GOOGLE_TPU,
    DeviceClass.AMAZON_NEURON,
    DeviceClass.AMD_GPU,
    DeviceClass.HABANA_GAUDI,
)

_BUILTIN: tuple[DeviceSpec, ...] = (
    DeviceSpec("A2", _NV, max_quantity=1),
    DeviceSpec("A10", _NV),
    DeviceSpec("A10G", _NV),
    DeviceSpec("A100", _NV, partitions=("1g.5gb", "2g.10gb", "3g.20gb", "4g.20gb", "7g.40gb")),
    DeviceSpec(
        "A100_80G",
        _NV,
        partitions=("1g.10gb", "2g.20gb", "3g.40gb", "4g.40gb", "7g.80gb"),
        aliases=("A100 80G",),
    ),
    DeviceSpec("B200", _NV),
    DeviceSpec("H100", _NV, partitions=("1g.10gb", "1g.20gb", "2g.20gb", "3g.40gb", "4g.40gb", "7g.80gb")),
    DeviceSpec("H200", _NV, partitions=("1g.18gb", "1g.35gb", "2g.35gb", "3g.71gb", "4g.71gb", "7g.141gb")),
    DeviceSpec("L4", _NV),
    DeviceSpec("L40s", _NV),
    DeviceSpec("T4", _NV),
    DeviceSpec("V100", _NV),
    DeviceSpec("V5E", _TPU, max_quantity=256, partitions=_TPU_2D),
    DeviceSpec("V6E", _TPU, max_quantity=256, partitions=_TPU_2D),
    DeviceSpec("V5P", _TPU, max_quantity=6144, partitions=_TPU_3D),
    # Neuron devices are counted per device as AWS exposes them (aws.amazon.com/neuron), up to 16 per instance.
    DeviceSpec("Inf1", _NEURON, max_quantity=16),
    DeviceSpec("Inf2", _NEURON, max_quantity=12),
    DeviceSpec("Trn1", _NEURON, max_quantity=16),
    DeviceSpec("Trn1n", _NEURON, max_quantity=16),
    DeviceSpec("Trn2", _NEURON, max_quantity=16),
    DeviceSpec("MI100", _AMD),
    DeviceSpec("MI210", _AMD),
    DeviceSpec("MI250", _AMD),
    DeviceSpec("MI250X", _AMD),
    DeviceSpec("MI300A", _AMD),
    DeviceSpec("MI300X", _AMD),
    DeviceSpec("MI325X", _AMD),
    DeviceSpec("Gaudi", _GAUDI, aliases=("Gaudi1",)),
    DeviceSpec("Gaudi2", _GAUDI),
    DeviceSpec("Gaudi3", _GAUDI),
)


def _key(name: str) -> str:
    return re.sub(r"[\s_\-]+", "_", name.strip()).upper()


class _Catalog:
    """The device table; thread-safe because definitions may be built from worker threads."""

    def __init__(self, specs: Iterable[DeviceSpec]) -> None:
        self._lock = threading.Lock()
        self._by_key: dict[str, DeviceSpec] = {}
        self._extensions_loaded = False
        for spec in specs:
            self._add(spec)

    def _add(self, spec: DeviceSpec) -> DeviceSpec:
        existing = self._by_key.get(_key(spec.name))
        if existing is not None:
            if existing.device_class is not spec.device_class:
                raise SpecError(
                    "accelerators.device_class",
                    spec.device_class.value,
                    f"{existing.name} is already a {existing.device_class.value} device",
                    accepted=f"device_class={existing.device_class.value!r} to extend it",
                )
            # Extending an entry adds partitions and aliases; it never removes what the catalog promised.
            spec = DeviceSpec(
                existing.name,
                existing.device_class,
                max(existing.max_quantity, spec.max_quantity),
                existing.partitions + tuple(p for p in spec.partitions if p not in existing.partitions),
                existing.aliases + tuple(a for a in spec.aliases if a not in existing.aliases),
            )
        for alias in (spec.name, *spec.aliases):
            self._by_key[_key(alias)] = spec
        return spec

    def register(self, spec: DeviceSpec) -> DeviceSpec:
        with self._lock:
            return self._add(spec)

    def get(self, name: str, partition: str | None = None, quantity: object = None) -> DeviceSpec | None:
        spec = self._by_key.get(_key(name))
        # A count above the built-in maximum is a miss too: the configuration may raise that maximum.
        missing = (
            spec is None
            or (partition is not None and partition not in spec.partitions)
            or (isinstance(quantity, int | float) and quantity > spec.max_quantity)
        )
        if missing and not self._extensions_loaded:
            self.load_extensions()
            spec = self._by_key.get(_key(name))
        return spec

    def load_extensions(self) -> None:
        # Only a miss pays for reading the configuration: the built-in catalog answers almost every lookup, and
        # importing the settings machinery at definition time would slow down `import flytelike`.
        with self._lock:
            if self._extensions_loaded:
                return
            self._extensions_loaded = True
        config = importlib.import_module("flytelike._config")
        for spec in config.load_settings().accelerator_specs():
            self.register(spec)

    def names(self, device_class: DeviceClass | None = None) -> list[str]:
        specs = {id(s): s for s in self._by_key.values()}.values()
        return sorted(s.name for s in specs if device_class is None or s.device_class is device_class)

    def __iter__(self) -> Iterator[DeviceSpec]:
        seen: dict[str, DeviceSpec] = {s.name: s for s in self._by_key.values()}
        return iter(sorted(seen.values(), key=lambda s: (s.device_class.value, s.name)))


_CATALOG = _Catalog(_BUILTIN)


def catalog() -> list[DeviceSpec]:
    """Every device the catalog knows: built-in, registered and from the configuration, sorted by class and name.

    Example:
        >>> import flytelike as fl
        >>> "H100" in [d.name for d in fl.catalog()]
        True
    """
    _CATALOG.load_extensions()
    return list(_CATALOG)


def register_device(
    name: str,
    *,
    device_class: DeviceClass | str,
    max_quantity: int = 8,
    partitions: Iterable[str] = (),
    aliases: Iterable[str] = (),
) -> DeviceSpec:
    """Add a device to the catalog, or extend an existing one with partitions (MIG profiles) and aliases.

    Example:
        >>> import flytelike as fl
        >>> spec = fl.register_device("RTX6000", device_class="nvidia-gpu", max_quantity=4)
        >>> fl.GPU("RTX6000", 2).quantity
        2
    """
    if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9 ._\-]{0,62}", name):
        raise SpecError(
            "register_device.name", name, "not a device name", accepted="letters, digits, ' ', '.', '_', '-'"
        )
    cls = _device_class(device_class, "register_device.device_class")
    if isinstance(max_quantity, bool) or not isinstance(max_quantity, int) or max_quantity < 1:
        raise SpecError("register_device.max_quantity", max_quantity, "must be a whole number >= 1", accepted="8")
    parts = tuple(partitions)
    for p in parts:
        if not isinstance(p, str) or not p or any(c.isspace() for c in p):
            raise SpecError("register_device.partitions", p, "not a partition name", accepted="'1g.10gb', '2x2'")
    return _CATALOG.register(DeviceSpec(name.strip(), cls, max_quantity, parts, tuple(aliases)))


def _device_class(value: DeviceClass | str, where: str) -> DeviceClass:
    try:
        return DeviceClass(value)
    except ValueError:
        raise SpecError(
            where, value, "unknown device class", accepted=", ".join(repr(c.value) for c in DeviceClass)
        ) from None


def _count(value: object, where: str, spec: DeviceSpec | None) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        else:
            raise SpecError(where, value, "accelerators are counted in whole devices", accepted="1, 2, 4 or 8")
    if value < 1:
        raise SpecError(where, value, "must be at least 1 (use gpu=0 or None for no accelerator)", accepted="1")
    if spec is not None and value > spec.max_quantity:
        raise SpecError(
            where,
            value,
            f"{spec.name} allows at most {spec.max_quantity} per task",
            accepted=f"1-{spec.max_quantity}",
        )
    return value


def _lookup(
    device: object,
    where: str,
    want: tuple[DeviceClass, ...] | None = None,
    partition: str | None = None,
    quantity: object = None,
) -> DeviceSpec:
    if not isinstance(device, str) or not device.strip():
        raise SpecError(where, device, "not a device name", accepted="'A100', 'H100', 'T4' or fl.Device(...)")
    spec = _CATALOG.get(device, partition if isinstance(partition, str) else None, quantity)
    if spec is None or (want is not None and spec.device_class not in want):
        kinds = want or tuple(DeviceClass)
        names = [n for k in kinds for n in _CATALOG.names(k)]
        raise SpecError(
            where,
            device,
            "unknown accelerator" if spec is None else f"{spec.name} is a {spec.device_class.value} device",
            accepted=f"one of {', '.join(names)}; fl.Device(...) for devices outside the catalog, or "
            "fl.register_device / [[accelerators]] in the config file to add one",
        )
    return spec


@dataclass(frozen=True, slots=True)
class Device:
    """An accelerator request, free of catalog checks: use it for devices the catalog does not know.

    ``GPU`` and ``TPU`` build checked instances of this type.

    Example:
        >>> import flytelike as fl
        >>> fl.Device("custom_accelerator", quantity=2, partition="large")
        Device(device='custom_accelerator', quantity=2, partition='large', device_class=<DeviceClass.NVIDIA_GPU: 'nvidia-gpu'>)
    """  # noqa: E501

    device: str
    quantity: int = 1
    partition: str | None = None
    device_class: DeviceClass = field(default=DeviceClass.NVIDIA_GPU)

    def __post_init__(self) -> None:
        name = type(self).__name__
        if not isinstance(self.device, str) or not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9 ._\-/]*", self.device):
            raise SpecError(f"{name}.device", self.device, "not a device name", accepted="'custom_accelerator', 'A100'")
        object.__setattr__(self, "quantity", _count(self.quantity, f"{name}.quantity", None))
        if self.partition is not None and (not isinstance(self.partition, str) or not self.partition.strip()):
            raise SpecError(f"{name}.partition", self.partition, "not a partition name", accepted="'1g.5gb'")
        object.__setattr__(self, "device_class", _device_class(self.device_class, f"{name}.device_class"))


class GPU(Device):
    """A catalog-checked accelerator counted in whole devices, optionally a MIG partition.

    Args:
        device: catalog name (``"A100"``, ``"A100 80G"``, ``"H100"``, ``"MI300X"``, ``"Inf2"`` ...).
        quantity: whole devices, 1 up to the device's maximum.
        partition: a MIG profile of that device (``"1g.5gb"``); an error for devices without MIG.

    Example:
        >>> import flytelike as fl
        >>> fl.GPU("A100", 1, "1g.5gb").partition
        '1g.5gb'
    """

    __slots__ = ()

    def __init__(self, device: str, quantity: int = 1, partition: str | None = None) -> None:
        spec = _lookup(device, "GPU.device", (_NV, _AMD, _NEURON, _GAUDI), partition, quantity)
        qty = _count(quantity, "GPU.quantity", spec)
        if partition is not None:
            if not spec.partitions:
                raise SpecError(
                    "GPU.partition",
                    partition,
                    f"{spec.name} does not support MIG partitions",
                    accepted=f"partition=None, or a MIG-capable GPU: {_mig_devices()}",
                )
            if partition not in spec.partitions:
                raise SpecError(
                    "GPU.partition",
                    partition,
                    f"not a MIG profile of {spec.name}",
                    accepted=", ".join(spec.partitions),
                )
        object.__setattr__(self, "device", spec.name)
        object.__setattr__(self, "quantity", qty)
        object.__setattr__(self, "partition", partition)
        object.__setattr__(self, "device_class", spec.device_class)

    def __repr__(self) -> str:
        return f"GPU(device={self.device!r}, quantity={self.quantity}, partition={self.partition!r})"

    def __reduce__(self) -> tuple[object, ...]:
        return (GPU, (self.device, self.quantity, self.partition))


def _mig_devices() -> str:
    return ", ".join(s.name for s in _CATALOG if s.device_class is _NV and s.partitions)


class TPU(Device):
    """A Cloud TPU slice; the chip count (``quantity``) follows from the topology.

    Args:
        device: ``"V5E"``, ``"V6E"`` or ``"V5P"`` (or a registered TPU).
        partition: the slice topology, ``"2x4"`` for v5e/v6e, ``"2x2x1"`` for v5p.

    Example:
        >>> import flytelike as fl
        >>> fl.TPU("V6E", "4x4").quantity
        16
    """

    __slots__ = ()

    def __init__(self, device: str, partition: str | None = None) -> None:
        spec = _lookup(device, "TPU.device", (_TPU,), partition)
        if partition is None or partition not in spec.partitions:
            raise SpecError(
                "TPU.partition",
                partition,
                f"not a {spec.name} topology" if partition is not None else f"{spec.name} needs a slice topology",
                accepted=", ".join(spec.partitions),
            )
        object.__setattr__(self, "device", spec.name)
        object.__setattr__(self, "quantity", math.prod(int(d) for d in partition.split("x")))
        object.__setattr__(self, "partition", partition)
        object.__setattr__(self, "device_class", spec.device_class)

    def __repr__(self) -> str:
        return f"TPU(device={self.device!r}, partition={self.partition!r})"

    def __reduce__(self) -> tuple[object, ...]:
        return (TPU, (self.device, self.partition))


def parse_accelerator(value: object, *, field: str = "Resources.gpu") -> Device | int | None:
    """Normalise a ``gpu=`` value: an int (any type), ``"A100:2"``, ``"A100"``, or a Device.

    Returns ``None`` when unset, ``0`` for an explicit "no accelerator" (it resets an inherited one), an ``int``
    for a count of any device type, else a Device.
    """
    if value is None or isinstance(value, Device):
        return value
    if isinstance(value, bool):
        raise SpecError(field, value, "a bool is not a GPU count", accepted="gpu=1, gpu='A100:1'")
    if isinstance(value, int | float):
        if isinstance(value, float) and not value.is_integer():
            raise SpecError(field, value, "GPUs are whole devices", accepted="1, 2 or a MIG partition via fl.GPU")
        count = int(value)
        if count < 0:
            raise SpecError(field, value, "must not be negative", accepted="0 (none), 1, 2, ...")
        return count
    if isinstance(value, tuple):
        raise SpecError(field, value, "GPUs have no request/limit pair", accepted="a single count, e.g. gpu=2")
    if isinstance(value, str):
        device, sep, count_text = value.partition(":")
        if sep and not re.fullmatch(r"[0-9]+", count_text):
            raise SpecError(field, value, f"{count_text!r} is not a whole device count", accepted="'A100:2'")
        try:
            spec = _lookup(device, field)
        except SpecError as e:
            raise SpecError(field, value, f"{e.problem} {device!r}", accepted=e.accepted) from None
        if spec.device_class is _TPU:
            raise SpecError(
                field,
                value,
                f"{spec.name} is a TPU and takes a topology",
                accepted=f"fl.TPU({spec.name!r}, {spec.partitions[0] if spec.partitions else '2x2'!r})",
            )
        try:
            return GPU(spec.name, int(count_text) if sep else 1)
        except SpecError as e:
            raise SpecError(field, value, e.problem, accepted=e.accepted) from None
    raise SpecError(
        field,
        value,
        f"a {type(value).__name__} is not an accelerator",
        accepted="an int, 'A100:2', fl.GPU(...), fl.TPU(...) or fl.Device(...)",
    )
