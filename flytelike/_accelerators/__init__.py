"""Accelerator requests (GPU, TPU, Device), checked against the device catalog when they are constructed.

``GPU`` and ``TPU`` look their device up in the catalog in effect (:mod:`flytelike._accelerators._catalog`): the
one installed in the current context, else that of the default settings, which is the built-in table plus the
configuration's ``[[accelerators]]``. ``Device`` is for devices outside the catalog and is not checked.

Example:
    >>> import flytelike as fl
    >>> fl.GPU("A100", 2)
    GPU(device='A100', quantity=2, partition=None)
    >>> fl.TPU("V5P", "2x2x2").quantity
    8
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field

from flytelike._accelerators._catalog import (
    BUILTIN_CATALOG,
    Catalog,
    DeviceClass,
    DeviceSpec,
    as_device_class,
    catalog,
    default_catalog,
    installed_catalog,
    register_device,
)
from flytelike.errors import SpecError

__all__ = [
    "BUILTIN_CATALOG",
    "GPU",
    "TPU",
    "Catalog",
    "Device",
    "DeviceClass",
    "DeviceSpec",
    "catalog",
    "parse_accelerator",
    "register_device",
]

_NV, _TPU, _NEURON, _AMD, _GAUDI = (
    DeviceClass.NVIDIA_GPU,
    DeviceClass.GOOGLE_TPU,
    DeviceClass.AMAZON_NEURON,
    DeviceClass.AMD_GPU,
    DeviceClass.HABANA_GAUDI,
)


MAX_DEVICES = 2**16
"""The most accelerators of one kind a request may name without a catalog bound (``gpu=N``, ``fl.Device``)."""


def _count(value: object, where: str, spec: DeviceSpec | None) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        else:
            raise SpecError(where, value, "accelerators are counted in whole devices", accepted="1, 2, 4 or 8")
    if value < 1:
        raise SpecError(where, value, "must be at least 1 (use gpu=0 or None for no accelerator)", accepted="1")
    if spec is None and value > MAX_DEVICES:
        raise SpecError(where, value, f"is more devices than any machine holds (at most {MAX_DEVICES})", accepted="1-8")
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
    partition: object = None,
    quantity: object = None,
) -> tuple[DeviceSpec, Catalog]:
    """The entry for ``device`` in the catalog in effect, and that catalog."""
    if not isinstance(device, str) or not device.strip():
        raise SpecError(where, device, "not a device name", accepted="'A100', 'H100', 'T4' or fl.Device(...)")
    table = installed_catalog()
    if table is None:
        # The default catalog is the built-in one extended by the configuration, which only ever adds: a request
        # the built-in catalog satisfies gets the same answer from it, so the configuration is not read for it.
        # Any other request consults the default settings, resolved when first needed and re-read if a file or
        # FLYTELIKE_ variable changed since (a program may write its flytelike.toml before defining tasks).
        table = BUILTIN_CATALOG
        if not _fits(table.get(device), want, partition, quantity):
            table = default_catalog(recheck=True)
    spec = table.get(device)
    if spec is None or (want is not None and spec.device_class not in want):
        kinds = want or tuple(DeviceClass)
        names = [n for k in kinds for n in table.names(k)]
        raise SpecError(
            where,
            device,
            "unknown accelerator" if spec is None else f"{spec.name} is a {spec.device_class.value} device",
            accepted=f"one of {', '.join(names)}; fl.Device(...) for devices outside the catalog, or "
            "fl.register_device / [[accelerators]] in the config file to add one",
        )
    return spec, table


def _fits(spec: DeviceSpec | None, want: tuple[DeviceClass, ...] | None, partition: object, quantity: object) -> bool:
    return not (
        spec is None
        or (want is not None and spec.device_class not in want)
        or (isinstance(partition, str) and partition not in spec.partitions)
        or (isinstance(quantity, int | float) and quantity > spec.max_quantity)
    )


def _restored(
    cls: type[Device], device: str, quantity: int, partition: str | None, device_class: str, label: str = ""
) -> Device:
    # Unpickling keeps a request as it was checked where it was made: the catalog in effect here may differ.
    value = object.__new__(cls)
    for name, v in (("device", device), ("quantity", quantity), ("partition", partition), ("label", label)):
        object.__setattr__(value, name, v)
    object.__setattr__(value, "device_class", DeviceClass(device_class))
    return value


@dataclass(frozen=True, slots=True)
class Device:
    """An accelerator request, free of catalog checks: use it for devices the catalog does not know.

    ``GPU`` and ``TPU`` build checked instances of this type. ``label`` is the device as node labels name it
    (what a template's ``GPUAccelerator.device`` holds); for ``GPU`` and ``TPU`` it comes from the catalog, for a
    ``Device`` it defaults to ``device`` as written.

    Example:
        >>> import flytelike as fl
        >>> fl.Device("custom_accelerator", quantity=2, partition="large")
        Device(device='custom_accelerator', quantity=2, partition='large', device_class=<DeviceClass.NVIDIA_GPU: 'nvidia-gpu'>)
    """  # noqa: E501

    device: str
    quantity: int = 1
    partition: str | None = None
    device_class: DeviceClass = field(default=DeviceClass.NVIDIA_GPU)
    label: str = field(default="", repr=False, compare=False, kw_only=True)

    def __post_init__(self) -> None:
        name = type(self).__name__
        if not isinstance(self.device, str) or not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9 ._\-/]*", self.device):
            raise SpecError(f"{name}.device", self.device, "not a device name", accepted="'custom_accelerator', 'A100'")
        object.__setattr__(self, "quantity", _count(self.quantity, f"{name}.quantity", None))
        if self.partition is not None and (not isinstance(self.partition, str) or not self.partition.strip()):
            raise SpecError(f"{name}.partition", self.partition, "not a partition name", accepted="'1g.5gb'")
        object.__setattr__(self, "device_class", as_device_class(self.device_class, f"{name}.device_class"))
        if not isinstance(self.label, str):
            raise SpecError(f"{name}.label", self.label, "not a node-label value", accepted="'nvidia-l4'")
        object.__setattr__(self, "label", self.label or self.device)


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
        spec, table = _lookup(device, "GPU.device", (_NV, _AMD, _NEURON, _GAUDI), partition, quantity)
        qty = _count(quantity, "GPU.quantity", spec)
        if partition is not None:
            if not spec.partitions:
                raise SpecError(
                    "GPU.partition",
                    partition,
                    f"{spec.name} does not support MIG partitions",
                    accepted=f"partition=None, or a MIG-capable GPU: {_mig_devices(table)}",
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
        object.__setattr__(self, "label", spec.node_label)

    def __repr__(self) -> str:
        return f"GPU(device={self.device!r}, quantity={self.quantity}, partition={self.partition!r})"

    def __reduce__(self) -> tuple[object, ...]:
        return (_restored, (GPU, self.device, self.quantity, self.partition, self.device_class.value, self.label))


def _mig_devices(table: Catalog) -> str:
    return ", ".join(s.name for s in table if s.device_class is _NV and s.partitions)


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
        spec, _ = _lookup(device, "TPU.device", (_TPU,), partition)
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
        object.__setattr__(self, "label", spec.node_label)

    def __repr__(self) -> str:
        return f"TPU(device={self.device!r}, partition={self.partition!r})"

    def __reduce__(self) -> tuple[object, ...]:
        return (_restored, (TPU, self.device, self.quantity, self.partition, self.device_class.value, self.label))


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
        if count > MAX_DEVICES:
            raise SpecError(
                field, value, f"is more accelerators than any machine holds (at most {MAX_DEVICES})", accepted="1-8"
            )
        return count
    if isinstance(value, tuple):
        raise SpecError(field, value, "GPUs have no request/limit pair", accepted="a single count, e.g. gpu=2")
    if isinstance(value, str):
        device, sep, count_text = value.partition(":")
        if sep and not re.fullmatch(r"[0-9]+", count_text):
            raise SpecError(field, value, f"{count_text!r} is not a whole device count", accepted="'A100:2'")
        try:
            spec, _ = _lookup(device, field)
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
