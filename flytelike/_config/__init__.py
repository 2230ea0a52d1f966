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


@dataclass(frozen=True, slots=True)
class ControllerSettings:
    """How tasks running elsewhere reach the process that runs their run (``[controller]``).

    ``bind``: where the controller listens when a run has a task off this process tree, ``HOST`` or ``HOST:PORT``
    (default ``127.0.0.1``, any free port). ``address``: the ``HOST:PORT`` tasks are told to call back on, when it
    is not the bound one (a pod reaching a laptop through a tunnel, a NAT); empty: the bound address. ``token``:
    set by the controller in a task's environment (``FLYTELIKE_CONTROLLER__TOKEN``), the run's own credential;
    never configured by hand.
    """

    bind: str = "127.0.0.1"
    address: str = ""
    token: str = field(default="", repr=False)

    def __post_init__(self) -> None:
        for name in ("bind", "address"):
            value = getattr(self, name)
            if not value:
                continue
            _check_host_port(f"ControllerSettings.{name}", value, require_port=name == "address")


@dataclass(frozen=True, slots=True)
class KubernetesSettings:
    """Where and how tasks run as pods (``[kubernetes]``).

    ``kubeconfig`` / ``context``: the cluster, as kubectl finds it (default: ``KUBECONFIG`` or ``~/.kube/config``,
    else the in-cluster service account); ``namespace`` of the pods (a task's ``fl.Kubernetes(namespace=)`` wins);
    ``image`` of pods whose task names none (it needs Python and flytelike: see docs/remote.md);
    ``entrypoint``: the command before the entrypoint's arguments; ``service_account``; ``gpu_product_label``,
    ``tpu_accelerator_label``, ``tpu_topology_label``: the node labels that select a GPU type and a TPU slice;
    ``mig_strategy``: ``single`` (MIG profile as a node label) or ``mixed`` (``nvidia.com/mig-<profile>``);
    ``pending_timeout``: seconds a pod may stay unschedulable before the attempt fails (an INFRA failure);
    ``image_pull_grace``: seconds of ImagePullBackOff before a USER failure.
    """

    kubeconfig: str = ""
    context: str = ""
    namespace: str = "default"
    image: str = "python:3.11-slim"
    entrypoint: tuple[str, ...] = ("flytelike-entry",)
    service_account: str = ""
    gpu_product_label: str = "nvidia.com/gpu.product"
    tpu_accelerator_label: str = "cloud.google.com/gke-tpu-accelerator"
    tpu_topology_label: str = "cloud.google.com/gke-tpu-topology"
    mig_strategy: Literal["single", "mixed"] = "mixed"
    pending_timeout: float = field(default=900.0, metadata=at_least(0))
    image_pull_grace: float = field(default=180.0, metadata=at_least(0))


@dataclass(frozen=True, slots=True)
class ServeSettings:
    """The control plane, ``flytelike serve`` (``[serve]``).

    ``bind``: ``HOST:PORT`` it listens on (default ``127.0.0.1:8470``). ``token``: the bearer token every call
    must present (``FLYTELIKE_SERVE__TOKEN``), or ``token_file``: a file holding it; with neither, the server makes
    one in ``$FLYTELIKE_HOME/serve.token``. ``database``: ``postgresql://user:pass@host/db``, or a SQLite file;
    empty: ``$FLYTELIKE_HOME/server.sqlite3``. ``tls_cert`` / ``tls_key``: PEM files; both set, the server speaks
    TLS only. ``backends``: the backends runs may use, each a built-in name (``kubernetes``, ``batch``) or
    ``NAME=module:factory``; the first is the platform of tasks without one unless ``platform`` names another.
    """

    bind: str = "127.0.0.1:8470"
    token: str = field(default="", repr=False)
    token_file: str = ""
    database: str = field(default="", repr=False)
    tls_cert: str = ""
    tls_key: str = ""
    backends: tuple[str, ...] = ("kubernetes",)
    platform: str = ""

    def __post_init__(self) -> None:
        _check_host_port("ServeSettings.bind", self.bind, require_port=True)
        if bool(self.tls_cert) != bool(self.tls_key):
            raise SpecError(
                "ServeSettings.tls_key" if self.tls_cert else "ServeSettings.tls_cert",
                "",
                "TLS needs both a certificate and its key",
                accepted="tls_cert and tls_key, both PEM file paths",
            )
        if not self.backends:
            raise SpecError("ServeSettings.backends", [], "names no backend", accepted='["kubernetes"]')


@dataclass(frozen=True, slots=True)
class RemoteSettings:
    """The control plane this machine's ``--remote`` commands talk to (``[remote]``).

    ``endpoint``: ``HOST:PORT`` or ``grpc://HOST:PORT`` (plaintext), ``grpcs://HOST:PORT`` (TLS).
    ``token``: the server's bearer token (``FLYTELIKE_REMOTE__TOKEN``), or ``token_file`` holding it.
    ``tls_ca``: a PEM file of the CA that signed the server's certificate (default: the system's roots).
    """

    endpoint: str = ""
    token: str = field(default="", repr=False)
    token_file: str = ""
    tls_ca: str = ""


@dataclass(frozen=True, slots=True)
class BatchSettings:
    """How tasks run as AWS Batch jobs (``[batch]``; see ``docs/batch.md``).

    ``queue``: the job queue (name or ARN) of tasks whose ``fl.Batch`` names none. ``job_role`` and
    ``execution_role``: IAM role ARNs (jobRoleArn, executionRoleArn; Fargate needs the latter). ``region`` and
    ``endpoint_url``: where the Batch and CloudWatch Logs clients go (None: as botocore finds them).
    ``runnable_timeout``: seconds a job may stay RUNNABLE before its attempt fails as INFRA (default 30 min).
    ``poll_interval_min`` / ``poll_interval_max``: bounds in seconds of the shared DescribeJobs poll, fast while
    jobs start or end, slow while all wait in RUNNABLE. ``calls_per_second``: the one budget of every Batch and
    Logs call of a backend. ``entrypoint``: the command before ``flytelike-entry``'s arguments. ``image``: the
    image of tasks whose template names none. ``log_group``: the CloudWatch Logs group of the jobs' streams.
    """

    queue: str = ""
    job_role: str = ""
    execution_role: str = ""
    region: str | None = None
    endpoint_url: str | None = None
    runnable_timeout: float = 1800.0
    poll_interval_min: float = 1.0
    poll_interval_max: float = 15.0
    calls_per_second: float = 10.0
    entrypoint: tuple[str, ...] = ("flytelike-entry",)
    image: str = ""
    log_group: str = "/aws/batch/job"

    def __post_init__(self) -> None:
        for name in ("runnable_timeout", "poll_interval_min", "poll_interval_max", "calls_per_second"):
            if not getattr(self, name) > 0:
                raise SpecError(f"BatchSettings.{name}", getattr(self, name), "must be above 0", accepted="e.g. 10")
        if self.poll_interval_max < self.poll_interval_min:
            raise SpecError(
                "BatchSettings.poll_interval_max",
                self.poll_interval_max,
                f"is below poll_interval_min ({self.poll_interval_min})",
                accepted=f">= {self.poll_interval_min}",
            )
        if not self.entrypoint or not all(self.entrypoint):
            raise SpecError(
                "BatchSettings.entrypoint",
                list(self.entrypoint),
                "must name a program (and its first arguments), none of them empty",
                accepted="['flytelike-entry'] or ['python', '-m', 'flytelike.entry']",
            )
        if self.endpoint_url is not None:
            endpoint = urlsplit(self.endpoint_url)
            if endpoint.scheme not in ("http", "https") or not endpoint.netloc:
                raise SpecError(
                    "BatchSettings.endpoint_url",
                    self.endpoint_url,
                    "is not an http:// or https:// URL",
                    accepted="e.g. 'http://127.0.0.1:5000'",
                )


def _check_host_port(setting: str, value: str, *, require_port: bool) -> None:
    accepted = "HOST:PORT, e.g. '127.0.0.1:4170' or '[::1]:4170'" if require_port else "HOST or HOST:PORT"
    host, port = value, ""
    if value.startswith("["):
        close = value.find("]")
        if close < 0:
            raise SpecError(setting, value, "has '[' without ']'", accepted=accepted)
        host, rest = value[1:close], value[close + 1 :]
        if rest and not rest.startswith(":"):
            raise SpecError(setting, value, "has text after ']' that is not ':PORT'", accepted=accepted)
        port = rest[1:]
    elif value.count(":") == 1:
        host, port = value.split(":")
    elif ":" in value:
        raise SpecError(setting, value, "an IPv6 address needs brackets", accepted=accepted)
    if not host or any(c.isspace() or c in "/?#@" for c in host):
        raise SpecError(setting, value, "has no valid host", accepted=accepted)
    if require_port and not port:
        raise SpecError(setting, value, "has no port", accepted=accepted)
    if port and (not port.isdigit() or not 0 <= int(port) <= 65535):
        raise SpecError(setting, value, f"the port {port!r} is not a number from 0 to 65535", accepted=accepted)


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
_NOT_SETTINGS = frozenset({"FLYTELIKE_REAL_AWS", "FLYTELIKE_REAL_K8S", "FLYTELIKE_TEST_POSTGRES"})
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
