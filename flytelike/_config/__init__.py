"""Settings: the only reader of environment variables and configuration files.

Sources, later ones winning: ``$FLYTELIKE_HOME/config.toml`` (home defaults to ``~/.flytelike``), then
``./flytelike.toml`` in the working directory, then ``FLYTELIKE_*`` environment variables (nested keys joined by
``__``, e.g. ``FLYTELIKE_LOCAL__RESOURCES=strict``), then explicit overrides (command-line flags). Tables merge key
by key across sources. They are resolved once into a frozen :class:`Settings` that is passed down; nothing else
reads the environment.

The schema is the dataclasses below: a section is a frozen dataclass, and a field of :class:`Settings` whose type
is a section is a TOML table (``[local]``), with a variable for it and for each of its keys. Adding a section
(``[store]``, ``[kubernetes]`` ...) is one dataclass and one field; its TOML keys, ``FLYTELIKE_`` variables, type
coercion, unknown-key errors and messages follow from the annotations (see :mod:`flytelike._config._schema`).

Example:
    >>> from flytelike._config import load_settings
    >>> s = load_settings(local={"resources": "strict"})
    >>> s.local.resources, "A100" in s.catalog
    ('strict', True)
"""

from __future__ import annotations

import dataclasses
import os
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from flytelike._accelerators._catalog import BUILTIN_CATALOG, Catalog, DeviceClass, DeviceSpec, device_spec
from flytelike._config._schema import Sources, at_least, origin_of, resolve, variable_names
from flytelike._config._sections import (
    BatchSettings,
    ControllerSettings,
    KubernetesSettings,
    RemoteSettings,
    ServeSettings,
)
from flytelike.errors import ConfigError, SpecError

__all__ = [
    "AcceleratorEntry",
    "BatchSettings",
    "ControllerSettings",
    "KubernetesSettings",
    "LocalSettings",
    "RemoteSettings",
    "ResourcePolicy",
    "ServeSettings",
    "SettingSource",
    "Settings",
    "StoreSettings",
    "aws_environment",
    "config_files",
    "default_settings",
    "explain_settings",
    "load_settings",
    "pem_setting",
]

ResourcePolicy = Literal["check", "strict", "ignore"]


@dataclass(frozen=True, slots=True)
class AcceleratorEntry:
    """A ``[[accelerators]]`` table: a new device, or more partitions/aliases for a known one."""

    name: str
    device_class: DeviceClass = DeviceClass.NVIDIA_GPU
    max_quantity: int = field(default=8, metadata=at_least(1))
    partitions: tuple[str, ...] = ()
    aliases: tuple[str, ...] = ()
    label: str = ""

    def __post_init__(self) -> None:
        # The same checks as fl.register_device; an error names AcceleratorEntry.<key>, which the loader reports
        # as accelerators.<index>.<key> with its source.
        self.spec()

    def spec(self) -> DeviceSpec:
        return device_spec(
            self.name,
            self.device_class,
            self.max_quantity,
            self.partitions,
            self.aliases,
            where="AcceleratorEntry",
            label=self.label,
        )


@dataclass(frozen=True, slots=True)
class LocalSettings:
    """How local runs treat Resources.

    ``resources``: ``check`` (default) fails a memory request that can never fit this machine and warns for cpu
    beyond its cores or GPUs it lacks; ``strict`` makes those warnings errors; ``ignore`` runs everything anyway.
    ``workers``: warm worker processes for process-isolated tasks (default: one per core); a larger number is
    lowered to what the machine holds (its cores, and 256 MiB of memory per worker).
    """

    resources: ResourcePolicy = "check"
    workers: int | None = field(default=None, metadata=at_least(1))


_STORE_SCHEMES = ("file", "s3")  # the schemes flytelike._storage.open_store accepts (a test keeps them equal)
_STORE_ACCEPTED = "file:///absolute/path or s3://bucket/prefix"


@dataclass(frozen=True, slots=True)
class StoreSettings:
    """Where bundles, inputs, outputs and offloaded data go when tasks run elsewhere (``[store]``).

    ``url``: ``file:///absolute/path`` or ``s3://bucket/prefix``; empty means ``file://$FLYTELIKE_HOME/store``,
    which :class:`Settings` fills in. ``endpoint_url``: an S3-compatible server (MinIO, Ceph, moto) for ``s3://``.
    """

    url: str = ""
    endpoint_url: str | None = None

    def __post_init__(self) -> None:
        # Only the scheme and the form are checked here (the store's own parser checks the rest when it opens),
        # so resolving settings never imports the storage layer.
        if self.url:
            scheme = urlsplit(self.url).scheme.lower()
            if scheme not in _STORE_SCHEMES:
                problem = f"the scheme {scheme!r} has no blob store" if scheme else "is not a URL (it has no scheme)"
                raise SpecError("StoreSettings.url", self.url, problem, accepted=_STORE_ACCEPTED)
        if self.endpoint_url is not None:
            endpoint = urlsplit(self.endpoint_url)
            if endpoint.scheme not in ("http", "https") or not endpoint.netloc:
                raise SpecError(
                    "StoreSettings.endpoint_url",
                    self.endpoint_url,
                    "is not an http:// or https:// URL",
                    accepted="e.g. 'http://127.0.0.1:9000'",
                )


def _default_home() -> Path:
    return Path.home() / ".flytelike"


@dataclass(frozen=True, slots=True)
class Settings:
    """Resolved configuration, frozen.

    Attributes:
        home: where run records and the cache live (``FLYTELIKE_HOME``).
        local: how local runs treat Resources (``[local]``).
        accelerators: the configured ``[[accelerators]]`` tables.
        store: the blob store (``[store]``); its ``url`` defaults to ``file://`` + ``home/store``.
        controller: how tasks running elsewhere call back (``[controller]``).
        kubernetes: pods (``[kubernetes]``).
        serve: the control plane (``[serve]``).
        remote: the control plane ``--remote`` commands use (``[remote]``).
        batch: how tasks run as AWS Batch jobs (``[batch]``).
        catalog: the device catalog of these settings: the built-in devices plus ``accelerators``.
    """

    home: Path = field(default_factory=_default_home)
    local: LocalSettings = field(default_factory=LocalSettings)
    accelerators: tuple[AcceleratorEntry, ...] = ()
    store: StoreSettings = field(default_factory=StoreSettings)
    controller: ControllerSettings = field(default_factory=ControllerSettings)
    kubernetes: KubernetesSettings = field(default_factory=KubernetesSettings)
    serve: ServeSettings = field(default_factory=ServeSettings)
    remote: RemoteSettings = field(default_factory=RemoteSettings)
    batch: BatchSettings = field(default_factory=BatchSettings)
    catalog: Catalog = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        table = BUILTIN_CATALOG
        for i, entry in enumerate(self.accelerators):
            try:
                table = table.extended(entry.spec())
            except SpecError as e:  # the entry contradicts the catalog (another device class for a known name)
                key = e.field.rpartition(".")[2]
                raise SpecError(f"Settings.accelerators.{i}.{key}", e.value, e.problem, accepted=e.accepted) from None
        object.__setattr__(self, "catalog", table)
        if not self.store.url:
            url = (self.home / "store").absolute().as_uri()
            object.__setattr__(self, "store", dataclasses.replace(self.store, url=url))

    def accelerator_specs(self) -> list[DeviceSpec]:
        """The ``[[accelerators]]`` tables as catalog entries."""
        return [a.spec() for a in self.accelerators]

    @property
    def db_path(self) -> Path:
        return self.home / "runs.sqlite3"

    @property
    def store_path(self) -> Path:
        return self.home / "store"


# Read by the project's own test suites (to opt into real cloud accounts), never by the library.
_NOT_SETTINGS = frozenset({"FLYTELIKE_REAL_AWS", "FLYTELIKE_REAL_K8S", "FLYTELIKE_TEST_POSTGRES", "FLYTELIKE_CRASH_AT"})
_PREFIX = "FLYTELIKE_"


def _home_dir(environ: Mapping[str, str]) -> Path:
    # The home file is found before anything is parsed, so only the variable (or the default) names it; a `home`
    # inside a file moves the records and the cache, not the file that is read.
    value = environ.get("FLYTELIKE_HOME")
    return Path(value).expanduser() if value else _default_home()


def _config_files(environ: Mapping[str, str]) -> list[Path]:
    """The candidate files, lowest precedence first."""
    return [_home_dir(environ) / "config.toml", Path("flytelike.toml")]


def config_files() -> list[Path]:
    """The configuration files read, lowest precedence first: ``$FLYTELIKE_HOME/config.toml``, ``./flytelike.toml``
    (whether they exist or not)."""
    return _config_files(os.environ)


_AWS_VARIABLES = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_DEFAULT_REGION")


def pem_setting(value: str, *, setting: str) -> bytes | None:
    """A certificate setting as PEM bytes: the text itself when it is PEM, else the content of the file it names;
    None when empty. Reads a file: call it off the event loop.

    Raises:
        ConfigError: naming ``setting``, when the file cannot be read or holds no PEM.
    """
    if not value:
        return None
    if value.lstrip().startswith("-----BEGIN"):
        return value.encode()
    try:
        data = Path(value).expanduser().read_bytes()
    except OSError as e:
        raise ConfigError(setting, value, f"cannot be read ({e.strerror})", accepted="PEM text or a PEM file") from None
    if b"-----BEGIN" not in data:
        raise ConfigError(setting, value, "holds no PEM certificate", accepted="PEM text or a PEM file")
    return data


def aws_environment() -> dict[str, str]:
    """The AWS credentials and region of this process's environment, for a task process that reaches the same
    ``s3://`` store with nothing else of this environment (read here, as every variable is)."""
    return {name: os.environ[name] for name in _AWS_VARIABLES if os.environ.get(name)}


def load_settings(**overrides: Any) -> Settings:
    """Resolve settings from files, environment and ``overrides``; errors name the setting, the value, its source
    and what is accepted.

    Args:
        overrides: top-level settings (``local={"resources": "strict"}``, ``home=Path(...)``); tables merge key by
            key with what the files and variables set.
    """
    return resolve(Settings, _sources(overrides))


def _sources(overrides: Mapping[str, Any]) -> Sources:
    environ = os.environ
    sources = Sources()
    for path in _config_files(environ):
        if path.is_file():
            sources.add_toml_file(path)
    variables = {k: v for k, v in environ.items() if k.upper().startswith(_PREFIX) and k.upper() not in _NOT_SETTINGS}
    known = variable_names(Settings, _PREFIX)
    for key in variables:
        if key.upper() not in known:  # a mistyped variable would otherwise be ignored without a word
            raise ConfigError(
                f"environment variable {key}",
                environ[key],
                "is not a flytelike setting",
                accepted=", ".join(sorted(known | _NOT_SETTINGS)),
            )
    sources.add_environment(Settings, variables, _PREFIX)
    sources.add_overrides(overrides)
    return sources


@dataclass(frozen=True, slots=True)
class SettingSource:
    """One setting as resolved: its dotted name, its value and where it came from.

    Attributes:
        name: ``home``, ``local.resources``, ``store.url``, ``accelerators`` ...
        value: the resolved value (a tuple of tables for ``accelerators``).
        source: ``default``, the path of the file that set it, the environment variable's name, or ``argument``.
    """

    name: str
    value: Any
    source: str


def explain_settings(**overrides: Any) -> list[SettingSource]:
    """Every setting, resolved as :func:`load_settings` resolves it, with where its value came from.

    Example:
        >>> [s for s in explain_settings(local={"workers": 2}) if s.name == "local.workers"]
        [SettingSource(name='local.workers', value=2, source='argument')]
    """
    sources = _sources(overrides)
    settings = resolve(Settings, sources)
    merged = sources.merged()
    out: list[SettingSource] = []
    for f in dataclasses.fields(Settings):
        if not f.init:
            continue
        value = getattr(settings, f.name)
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            for sub in dataclasses.fields(value):
                path = (f.name, sub.name)
                out.append(SettingSource(".".join(path), getattr(value, sub.name), origin_of(path, sources, merged)))
        else:
            out.append(SettingSource(f.name, value, origin_of((f.name,), sources, merged)))
    return out


class _Default:
    """The settings of this process's working directory and environment, resolved on first use and kept.

    They back the checks made when requests are defined (``GPU("X")`` against ``Settings.catalog``), where no
    settings object is passed. ``recheck`` looks again (cheaply: file times and sizes, FLYTELIKE_ variables,
    the working directory; tens of microseconds) and re-resolves only if something changed.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._entry: tuple[object, Settings] | None = None

    def get(self, *, recheck: bool) -> Settings:
        entry = self._entry
        if entry is not None and not recheck:
            return entry[1]
        key = _fingerprint()
        if entry is not None and entry[0] == key:
            return entry[1]
        with self._lock:
            settings = load_settings()  # an error is raised to every caller, never kept
            self._entry = (key, settings)
        return settings

    def clear(self) -> None:
        self._entry = None


def _fingerprint() -> object:
    environ = os.environ
    files: list[tuple[int, int, int] | None] = []
    for path in _config_files(environ):
        try:
            st = path.stat()
        except OSError:
            files.append(None)
        else:
            files.append((st.st_mtime_ns, st.st_size, st.st_ino))
    variables = sorted((k, v) for k, v in environ.items() if k.upper().startswith(_PREFIX))
    try:
        cwd = os.getcwd()
    except OSError:  # the working directory was removed: ./flytelike.toml cannot be there
        cwd = ""
    return (cwd, tuple(files), tuple(variables))


_DEFAULT = _Default()


def default_settings(*, recheck: bool = False) -> Settings:
    """The settings :func:`load_settings` resolves for this process, resolved once and reused.

    Args:
        recheck: re-resolve them if a configuration file, a FLYTELIKE_ variable or the working directory changed
            since they were resolved.
    """
    return _DEFAULT.get(recheck=recheck)
