"""Settings: the only reader of environment variables and configuration files.

Sources, later ones winning: ``$FLYTELIKE_HOME/config.toml`` (home defaults to ``~/.flytelike``), then
``./flytelike.toml`` in the working directory, then ``FLYTELIKE_*`` environment variables (nested keys joined by
``__``, e.g. ``FLYTELIKE_LOCAL__RESOURCES=strict``), then explicit overrides (command-line flags). They are
resolved once into a frozen :class:`Settings` that is passed down; nothing else reads the environment.
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from flytelike._accelerators import DeviceClass, DeviceSpec
from flytelike.errors import ConfigError

__all__ = ["LocalSettings", "Settings", "load_settings"]

ResourcePolicy = Literal["check", "strict", "ignore"]


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class AcceleratorEntry(_Frozen):
    """A ``[[accelerators]]`` table: a new device, or more partitions/aliases for a known one."""

    name: str
    device_class: DeviceClass = DeviceClass.NVIDIA_GPU
    max_quantity: int = Field(default=8, ge=1)
    partitions: tuple[str, ...] = ()
    aliases: tuple[str, ...] = ()


class LocalSettings(_Frozen):
    """How local runs treat Resources.

    ``resources``: ``check`` (default) fails a memory request that can never fit this machine and warns for cpu
    beyond its cores or GPUs it lacks; ``strict`` makes those warnings errors; ``ignore`` runs everything anyway.
    """

    resources: ResourcePolicy = "check"
    workers: int | None = Field(default=None, ge=1)


def _home() -> Path:
    return Path(os.environ.get("FLYTELIKE_HOME") or Path.home() / ".flytelike").expanduser()


class Settings(BaseSettings):
    """Resolved configuration, frozen."""

    model_config = SettingsConfigDict(env_prefix="FLYTELIKE_", env_nested_delimiter="__", extra="forbid", frozen=True)

    home: Path = Field(default_factory=_home)
    local: LocalSettings = LocalSettings()
    accelerators: tuple[AcceleratorEntry, ...] = ()

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # One source per file, project first: sources are deep-merged, so a table in ./flytelike.toml overrides
        # the home file key by key instead of replacing the whole table (one multi-file source would do that).
        files = [p for p in (Path("flytelike.toml"), _home() / "config.toml") if p.is_file()]
        toml_sources: list[PydanticBaseSettingsSource] = []
        for f in files:
            try:
                toml_sources.append(TomlConfigSettingsSource(settings_cls, toml_file=f))
            except tomllib.TOMLDecodeError as e:  # else a bare decode error escapes, naming no file
                raise ConfigError(
                    f"config file {f}", str(f), f"not valid TOML: {e}", accepted="see https://toml.io"
                ) from None
        return (init_settings, env_settings, *toml_sources)

    def accelerator_specs(self) -> list[DeviceSpec]:
        return [DeviceSpec(a.name, a.device_class, a.max_quantity, a.partitions, a.aliases) for a in self.accelerators]

    @property
    def db_path(self) -> Path:
        return self.home / "runs.sqlite3"

    @property
    def store_path(self) -> Path:
        return self.home / "store"


def _variable_names(model: type[BaseModel], prefix: str) -> list[str]:
    names = []
    for name, field in model.model_fields.items():
        names.append(prefix + name.upper())
        sub = field.annotation
        if isinstance(sub, type) and issubclass(sub, BaseModel):
            names.extend(_variable_names(sub, f"{prefix}{name.upper()}__"))
    return names


# Read by the project's own test suites (to opt into real cloud accounts), never by the library.
_NOT_SETTINGS = frozenset({"FLYTELIKE_REAL_AWS"})


def _check_variables() -> None:
    """A mistyped FLYTELIKE_ variable would otherwise be ignored without a word."""
    known = set(_variable_names(Settings, "FLYTELIKE_")) | _NOT_SETTINGS
    for key in os.environ:
        if key.startswith("FLYTELIKE_") and key.upper() not in known:
            raise ConfigError(
                f"environment variable {key}",
                os.environ[key],
                "is not a flytelike setting",
                accepted=", ".join(sorted(known)),
            )


def load_settings(**overrides: Any) -> Settings:
    """Resolve settings from files, environment and ``overrides``; errors name the setting and its source."""
    _check_variables()
    try:
        return Settings(**overrides)
    except ValidationError as e:
        first = e.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise ConfigError(
            f"config {where}",
            first.get("input"),
            first["msg"],
            accepted="see docs/configuration.md; files: $FLYTELIKE_HOME/config.toml, ./flytelike.toml",
        ) from None
