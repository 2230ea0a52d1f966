"""The device catalog: device classes, catalog entries, the built-in table, and the catalog in effect.

A :class:`Catalog` is an immutable value. The built-in entries plus the ``[[accelerators]]`` tables of the
configuration make the catalog of the resolved settings (``Settings.catalog``). Requests (``GPU``, ``TPU``) are
checked against the catalog in effect: one installed in the current context (:meth:`Catalog.use`,
:func:`register_device`), else the catalog of the default settings (``flytelike._config.default_settings``).
Nothing is changed in place, so two runs in one process never see each other's devices.

Example:
    >>> import flytelike as fl
    >>> spec = fl.catalog().get("a100 80g")
    >>> spec.name, spec.max_quantity, spec.partitions[0]
    ('A100_80G', 8, '1g.10gb')
"""

from __future__ import annotations

import contextlib
import contextvars
import enum
import importlib
import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from flytelike.errors import SpecError

__all__ = [
    "BUILTIN_CATALOG",
    "Catalog",
    "DeviceClass",
    "DeviceSpec",
    "as_device_class",
    "catalog",
    "default_catalog",
    "device_spec",
    "installed_catalog",
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
        label: the device as node labels name it (GKE's ``cloud.google.com/gke-accelerator``, NVIDIA's GPU
            feature discovery): what a template's ``GPUAccelerator.device`` holds, so that Flyte backends
            recognise it. Empty: derived from the name (:attr:`node_label`).
    """

    name: str
    device_class: DeviceClass
    max_quantity: int = 8
    partitions: tuple[str, ...] = ()
    aliases: tuple[str, ...] = ()
    label: str = ""

    @property
    def node_label(self) -> str:
        """``label`` when given, else the vendor prefix and the name, lower-cased (``MI300X`` -> ``amd-mi300x``)."""
        return self.label or default_label(self.name, self.device_class)


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

# Labels are the values of GKE's node label cloud.google.com/gke-accelerator where GKE offers the device (Flyte's
# own constants use the same names: nvidia-tesla-t4, nvidia-tesla-a100, tpu-v5-lite-podslice, ...); the others
# follow the same vendor-model pattern.
_BUILTIN: tuple[DeviceSpec, ...] = (
    DeviceSpec("A2", _NV, max_quantity=1),
    DeviceSpec("A10", _NV),
    DeviceSpec("A10G", _NV),
    DeviceSpec(
        "A100", _NV, partitions=("1g.5gb", "2g.10gb", "3g.20gb", "4g.20gb", "7g.40gb"), label="nvidia-tesla-a100"
    ),
    DeviceSpec(
        "A100_80G",
        _NV,
        partitions=("1g.10gb", "2g.20gb", "3g.40gb", "4g.40gb", "7g.80gb"),
        aliases=("A100 80G",),
        label="nvidia-a100-80gb",
    ),
    DeviceSpec("B200", _NV),
    # Flyte 2 lists GB10 and RTX PRO 6000 with a single device per task.
    DeviceSpec("GB10", _NV, max_quantity=1),
    DeviceSpec(
        "H100",
        _NV,
        partitions=("1g.10gb", "1g.20gb", "2g.20gb", "3g.40gb", "4g.40gb", "7g.80gb"),
        label="nvidia-h100-80gb",
    ),
    DeviceSpec(
        "H200",
        _NV,
        partitions=("1g.18gb", "1g.35gb", "2g.35gb", "3g.71gb", "4g.71gb", "7g.141gb"),
        label="nvidia-h200-141gb",
    ),
    DeviceSpec("L4", _NV),
    DeviceSpec("L40s", _NV),
    DeviceSpec(
        "RTX PRO 6000", _NV, max_quantity=1, aliases=("RTX_PRO_6000", "RTXPRO6000"), label="nvidia-rtx-pro-6000"
    ),
    DeviceSpec("T4", _NV, label="nvidia-tesla-t4"),
    DeviceSpec("V100", _NV, label="nvidia-tesla-v100"),
    DeviceSpec("V5E", _TPU, max_quantity=256, partitions=_TPU_2D, label="tpu-v5-lite-podslice"),
    DeviceSpec("V6E", _TPU, max_quantity=256, partitions=_TPU_2D, label="tpu-v6e-slice"),
    DeviceSpec("V5P", _TPU, max_quantity=6144, partitions=_TPU_3D, label="tpu-v5p-slice"),
    # Neuron devices are counted per device as AWS exposes them (aws.amazon.com/neuron), up to 16 per instance.
    DeviceSpec("Inf1", _NEURON, max_quantity=16),
    DeviceSpec("Inf2", _NEURON, max_quantity=12),
    DeviceSpec("Trn1", _NEURON, max_quantity=16),
    DeviceSpec("Trn1n", _NEURON, max_quantity=16),
    DeviceSpec("Trn2", _NEURON, max_quantity=16),
    DeviceSpec("Trn2u", _NEURON, max_quantity=16),
    DeviceSpec("MI100", _AMD),
    DeviceSpec("MI210", _AMD),
    DeviceSpec("MI250", _AMD),
    DeviceSpec("MI250X", _AMD),
    DeviceSpec("MI300A", _AMD),
    DeviceSpec("MI300X", _AMD),
    DeviceSpec("MI325X", _AMD),
    DeviceSpec("MI350X", _AMD),
    DeviceSpec("MI355X", _AMD),
    DeviceSpec("Gaudi", _GAUDI, aliases=("Gaudi1",)),
    DeviceSpec("Gaudi2", _GAUDI),
    DeviceSpec("Gaudi3", _GAUDI),
)


# A Kubernetes label value: at most 63 characters, alphanumeric at both ends.
_LABEL = re.compile(r"[A-Za-z0-9]([A-Za-z0-9._\-]{0,61}[A-Za-z0-9])?")
_LABEL_PREFIX = {_NV: "nvidia-", _TPU: "tpu-", _NEURON: "aws-", _AMD: "amd-", _GAUDI: "habana-"}


def default_label(name: str, device_class: DeviceClass) -> str:
    """The node-label spelling of a device without one of its own: ``RTX 6000`` -> ``nvidia-rtx-6000``."""
    return _LABEL_PREFIX[device_class] + re.sub(r"[\s_.]+", "-", name.strip()).lower()


def _key(name: str) -> str:
    return re.sub(r"[\s_\-]+", "_", name.strip()).upper()


def _merged(existing: DeviceSpec, spec: DeviceSpec) -> DeviceSpec:
    if existing.device_class is not spec.device_class:
        raise SpecError(
            "accelerators.device_class",
            spec.device_class.value,
            f"{existing.name} is already a {existing.device_class.value} device",
            accepted=f"device_class={existing.device_class.value!r} to extend it",
        )
    # Extending an entry adds partitions and aliases and may raise the maximum; it never removes what the catalog
    # promised, so a request valid before stays valid.
    return DeviceSpec(
        existing.name,
        existing.device_class,
        max(existing.max_quantity, spec.max_quantity),
        existing.partitions + tuple(p for p in spec.partitions if p not in existing.partitions),
        existing.aliases + tuple(a for a in spec.aliases if a not in existing.aliases),
        spec.label or existing.label,
    )


class Catalog(Sequence[DeviceSpec]):
    """An immutable table of devices: a sequence of :class:`DeviceSpec`, sorted by device class and name.

    A catalog never changes; :meth:`extended` and :meth:`with_device` return a new one. The catalog of the
    resolved settings is ``Settings.catalog``; :func:`catalog` returns the one in effect, and :meth:`use`
    puts one in effect for a block of code. Names match ignoring case, spaces, ``-`` and ``_``.

    Example:
        >>> import flytelike as fl
        >>> mine = fl.catalog().with_device("RTX6000", device_class="nvidia-gpu", max_quantity=4)
        >>> "RTX6000" in mine, "RTX6000" in fl.catalog()
        (True, False)
        >>> with mine.use():
        ...     fl.GPU("rtx6000", 4).device
        'RTX6000'
    """

    __slots__ = ("_by_key", "_specs")
    _by_key: dict[str, DeviceSpec]
    _specs: tuple[DeviceSpec, ...]

    def __init__(self, specs: Iterable[DeviceSpec] = ()) -> None:
        by_name: dict[str, DeviceSpec] = {}
        by_key: dict[str, DeviceSpec] = {}
        for spec in specs:
            existing = by_key.get(_key(spec.name))
            if existing is not None:
                spec = _merged(existing, spec)
            by_name[spec.name] = spec
            for alias in (spec.name, *spec.aliases):
                other = by_key.get(_key(alias))
                if other is not None and other.name != spec.name:
                    raise SpecError(
                        "accelerators.aliases",
                        alias,
                        f"already names {other.name}",
                        accepted=f"a spelling no other device has, or extend {other.name} itself",
                    )
                by_key[_key(alias)] = spec
        object.__setattr__(self, "_by_key", by_key)
        ordered = sorted(by_name.values(), key=lambda s: (s.device_class.value, s.name))
        object.__setattr__(self, "_specs", tuple(ordered))

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"a Catalog is immutable; {name!r} cannot be set (Catalog.extended returns a new one)")

    def get(self, name: str) -> DeviceSpec | None:
        """The entry called ``name`` or one of its aliases, else ``None``."""
        return self._by_key.get(_key(name)) if isinstance(name, str) else None

    def by_label(self, label: str) -> DeviceSpec | None:
        """The entry whose node label (:attr:`DeviceSpec.node_label`) is ``label``, else ``None``."""
        return next((s for s in self._specs if s.node_label == label), None)

    def names(self, device_class: DeviceClass | None = None) -> list[str]:
        """Canonical device names, sorted; only those of ``device_class`` when given."""
        return sorted(s.name for s in self._specs if device_class is None or s.device_class is device_class)

    def extended(self, *specs: DeviceSpec) -> Catalog:
        """A new catalog: this one plus ``specs``; a spec naming a known device adds partitions and aliases to
        it and may raise its maximum (changing its device class is an error)."""
        return Catalog((*self._specs, *specs)) if specs else self

    def with_device(
        self,
        name: str,
        *,
        device_class: DeviceClass | str,
        max_quantity: int = 8,
        partitions: Iterable[str] = (),
        aliases: Iterable[str] = (),
        label: str = "",
    ) -> Catalog:
        """A new catalog with one device added or extended, checked as :func:`register_device` checks it."""
        return self.extended(
            device_spec(name, device_class, max_quantity, partitions, aliases, where="Catalog.with_device", label=label)
        )

    def use(self) -> contextlib.AbstractContextManager[Catalog]:
        """Put this catalog in effect for the ``with`` block, in the current context only (thread or asyncio
        task, and what it starts); the catalog in effect before is back afterwards, whatever happens inside."""
        return _using(self)

    def __getitem__(self, index: Any) -> Any:
        return self._specs[index]

    def __len__(self) -> int:
        return len(self._specs)

    def __iter__(self) -> Iterator[DeviceSpec]:
        return iter(self._specs)

    def __contains__(self, item: object) -> bool:
        """A device name (any accepted spelling) or a DeviceSpec."""
        if isinstance(item, str):
            return self.get(item) is not None
        return item in self._specs

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Catalog) and self._specs == other._specs

    def __hash__(self) -> int:
        return hash(self._specs)

    def __repr__(self) -> str:
        return f"Catalog({len(self._specs)} devices: {', '.join(s.name for s in self._specs)})"

    def __reduce__(self) -> tuple[object, ...]:
        return (Catalog, (self._specs,))


BUILTIN_CATALOG = Catalog(_BUILTIN)
"""The catalog as flytelike ships it, before any configuration."""

# The catalog in effect in this context, when one was installed (Catalog.use, register_device); None means the
# catalog of the default settings. A context variable, not a module-level table: what one thread, asyncio task or
# run installs is invisible to the others.
_IN_EFFECT: contextvars.ContextVar[Catalog | None] = contextvars.ContextVar("flytelike_catalog", default=None)


@contextlib.contextmanager
def _using(value: Catalog) -> Iterator[Catalog]:
    token = _IN_EFFECT.set(value)
    try:
        yield value
    finally:
        _IN_EFFECT.reset(token)


def installed_catalog() -> Catalog | None:
    """The catalog installed in this context (by :meth:`Catalog.use` or :func:`register_device`), if any."""
    return _IN_EFFECT.get()


def default_catalog(*, recheck: bool = False) -> Catalog:
    """The catalog of the default settings; ``recheck`` re-resolves them if the configuration changed since."""
    # Imported on first use: `import flytelike` needs no settings, and the settings module imports this one.
    config = importlib.import_module("flytelike._config")
    settings = config.default_settings(recheck=recheck)
    return settings.catalog  # type: ignore[no-any-return]


def catalog() -> Catalog:
    """The catalog in effect: the one installed in this context, else that of the default settings (the built-in
    devices plus the configuration's ``[[accelerators]]``, re-read if the configuration changed since it was last
    read). Iterating it gives :class:`DeviceSpec` entries sorted by class and name.

    Example:
        >>> import flytelike as fl
        >>> "H100" in [d.name for d in fl.catalog()]
        True
    """
    installed = _IN_EFFECT.get()
    return installed if installed is not None else default_catalog(recheck=True)


def register_device(
    name: str,
    *,
    device_class: DeviceClass | str,
    max_quantity: int = 8,
    partitions: Iterable[str] = (),
    aliases: Iterable[str] = (),
    label: str = "",
) -> DeviceSpec:
    """Add a device to the catalog in effect, or extend a known one with partitions (MIG profiles) and aliases.

    Nothing is changed in place: the catalog in effect plus this device becomes a new catalog, installed in the
    current context (as :meth:`Catalog.use` would, without an end). Code that runs afterwards in the same thread
    or asyncio task sees the device, and so do the tasks, threads (``anyio.to_thread``, ``asyncio.to_thread``)
    and runs started from it; the settings, other threads started with ``threading.Thread`` (each starts in a
    fresh context) and other runs do not. Call it at the top of the file that defines the tasks (a worker process
    that imports the file registers it again). For a device the whole team uses, add an ``[[accelerators]]``
    table to the configuration instead; for a change limited to a block of code (a test),
    ``with fl.catalog().with_device(...).use():``.

    Returns:
        the device's entry as the catalog now holds it (merged with the known entry when extending one).

    Example:
        >>> import flytelike as fl
        >>> spec = fl.register_device("RTX6000", device_class="nvidia-gpu", max_quantity=4)
        >>> fl.GPU("RTX6000", 2).quantity
        2
    """
    spec = device_spec(name, device_class, max_quantity, partitions, aliases, where="register_device", label=label)
    extended = catalog().extended(spec)
    _IN_EFFECT.set(extended)
    entry = extended.get(spec.name)
    assert entry is not None
    return entry


def device_spec(
    name: str,
    device_class: DeviceClass | str,
    max_quantity: int,
    partitions: Iterable[str],
    aliases: Iterable[str],
    *,
    where: str,
    label: str = "",
) -> DeviceSpec:
    """A checked catalog entry; errors name ``where.<argument>``."""
    if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9 ._\-]{0,62}", name):
        raise SpecError(f"{where}.name", name, "not a device name", accepted="letters, digits, ' ', '.', '_', '-'")
    cls = as_device_class(device_class, f"{where}.device_class")
    if isinstance(max_quantity, bool) or not isinstance(max_quantity, int) or max_quantity < 1:
        raise SpecError(f"{where}.max_quantity", max_quantity, "must be a whole number >= 1", accepted="8")
    for arg, given in (("partitions", partitions), ("aliases", aliases)):
        if isinstance(given, str):  # iterating it would make each letter a name
            raise SpecError(f"{where}.{arg}", given, "a list of names, not one string", accepted=f"[{given!r}]")
    parts = tuple(partitions)
    for p in parts:
        if not isinstance(p, str) or not p or any(c.isspace() for c in p):
            raise SpecError(f"{where}.partitions", p, "not a partition name", accepted="'1g.10gb', '2x2'")
    names = tuple(aliases)
    for a in names:
        if not isinstance(a, str) or not a.strip():
            raise SpecError(f"{where}.aliases", a, "not a device name", accepted="'RTX 6000 Ada'")
    if not isinstance(label, str) or (label and not _LABEL.fullmatch(label)):
        raise SpecError(
            f"{where}.label",
            label,
            "not a node-label value",
            accepted="lowercase letters, digits and '-', e.g. 'nvidia-l4'",
        )
    return DeviceSpec(name.strip(), cls, max_quantity, parts, names, label)


def as_device_class(value: DeviceClass | str, where: str) -> DeviceClass:
    """``value`` as a DeviceClass; an unknown one is a SpecError naming ``where``."""
    try:
        return DeviceClass(value)
    except ValueError:
        raise SpecError(
            where, value, "unknown device class", accepted=", ".join(repr(c.value) for c in DeviceClass)
        ) from None
