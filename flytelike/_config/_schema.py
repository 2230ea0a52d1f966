"""The settings loader: sources merged key by key, then coerced into frozen dataclasses by their annotations.

A *section* is a frozen dataclass; its fields are the keys of a TOML table. Field types understood: ``str``,
``int``, ``float``, ``bool``, ``Path`` (``~`` expanded), an ``Enum``, a ``Literal[...]``, ``X | None``,
``tuple[X, ...]`` (a TOML array), ``dict[str, X]`` (an immutable mapping) and another section (a nested table).
``field(metadata=at_least(n))`` bounds a number. A section may check more in ``__post_init__`` by raising a
``SpecError`` whose field is ``ClassName.key[.more]``: it is reported at that key, with its source.

Strings are accepted for numbers, booleans, paths, enums and choices wherever they come from (an environment
variable is always a string); a table or a list given by a variable is JSON.

Every error is a :class:`~flytelike.errors.ConfigError` naming the setting (``local.workers``), the value, where it
was set (the file, the variable, or an explicit argument) and what is accepted.
"""

from __future__ import annotations

import dataclasses
import enum
import functools
import json
import re
import types
from collections.abc import Mapping
from pathlib import Path, PurePath
from typing import Any, Literal, NoReturn, TypeVar, Union, get_args, get_origin, get_type_hints

from flytelike._frozendict import FrozenDict
from flytelike.errors import ConfigError, SpecError

__all__ = ["Sources", "at_least", "origin_of", "resolve", "variable_names"]

_Path = tuple[str, ...]
T = TypeVar("T")
_TRUE = frozenset({"1", "true", "t", "yes", "y", "on"})
_FALSE = frozenset({"0", "false", "f", "no", "n", "off"})
_INT = r"[+-]?[0-9]+"  # compiled (and cached) by re on first use, not at import


def at_least(minimum: int) -> dict[str, Any]:
    """Field metadata: the number must be >= ``minimum``."""
    return {"ge": minimum}


class _InvalidSettingError(Exception):
    def __init__(self, path: _Path, value: object, problem: str, accepted: str | None) -> None:
        super().__init__(problem)
        self.path, self.value, self.problem, self.accepted = path, value, problem, accepted


def _invalid(path: _Path, value: object, problem: str, accepted: str | None) -> NoReturn:
    raise _InvalidSettingError(path, value, problem, accepted)


class _Field:
    """One key of a section. A plain class: building a dataclass costs a millisecond of start-up."""

    __slots__ = ("metadata", "name", "required", "type")

    def __init__(self, name: str, tp: Any, required: bool, metadata: Mapping[str, Any]) -> None:
        self.name, self.type, self.required, self.metadata = name, tp, required, metadata


@functools.cache
def _fields(cls: type) -> dict[str, _Field]:
    hints = get_type_hints(cls)
    return {
        f.name: _Field(
            f.name,
            hints[f.name],
            f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING,
            f.metadata,
        )
        for f in dataclasses.fields(cls)
        if f.init
    }


def _is_section(tp: Any) -> bool:
    return isinstance(tp, type) and dataclasses.is_dataclass(tp)


def _optional_of(tp: Any) -> Any:
    """``X`` for ``X | None``, else ``tp``."""
    if get_origin(tp) in (Union, types.UnionType):
        rest = [a for a in get_args(tp) if a is not type(None)]
        if len(rest) == 1:
            return rest[0]
    return tp


def _is_structured(tp: Any) -> bool:
    tp = _optional_of(tp)
    return _is_section(tp) or get_origin(tp) in (tuple, dict)


@functools.cache
def variable_names(cls: type, prefix: str) -> frozenset[str]:
    """Every environment variable of ``cls``: one per field, and one per key of a nested section."""
    return frozenset(_variables(cls, prefix))


@functools.cache
def _variables(cls: type, prefix: str) -> dict[str, tuple[_Path, Any]]:
    out: dict[str, tuple[_Path, Any]] = {}
    for f in _fields(cls).values():
        name = prefix + f.name.upper()
        out[name] = ((f.name,), f.type)
        sub = _optional_of(f.type)
        if _is_section(sub):
            for var, (path, tp) in _variables(sub, name + "__").items():
                out[var] = ((f.name, *path), tp)
    return out


class Sources:
    """What each source sets, lowest precedence first, and where each value came from."""

    def __init__(self) -> None:
        self.layers: list[tuple[dict[str, Any], str]] = []
        # Each origin as `flytelike config show` names it: the file's path, the variable's name, or "argument".
        self.short: dict[str, str] = {}

    def add_toml_file(self, path: Path) -> None:
        # Imported only when there is a file to read: a run without one (the common case, and every test's) is
        # spared the parser's import, which costs as much as the rest of the settings.
        import tomllib

        where = f"config file {path}"
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except tomllib.TOMLDecodeError as e:  # else a bare decode error escapes, naming no file
            raise ConfigError(where, str(path), f"not valid TOML: {e}", accepted="see https://toml.io") from None
        except (OSError, UnicodeDecodeError) as e:
            raise ConfigError(where, str(path), f"cannot be read: {e}", accepted="a UTF-8 TOML file") from None
        origin = f"in {path}" if path.is_absolute() else f"in ./{path}"
        self.layers.append((data, origin))
        self.short[origin] = origin.removeprefix("in ")

    def add_environment(self, cls: type, variables: Mapping[str, str], prefix: str) -> None:
        """``variables`` named ``PREFIX`` + field (``__`` between a table and its key), already checked to be
        names of ``cls``'s settings; a table's variable comes before its keys', so the keys win."""
        known = _variables(cls, prefix)
        ordered = sorted(variables.items(), key=lambda kv: (kv[0].count("__"), kv[0]))
        for key, text in ordered:
            if text == "":  # `FLYTELIKE_X= command` unsets a setting, as shells mean it
                continue
            path, tp = known[key.upper()]
            value: Any = text
            where = f"environment variable {key}"
            origin = f"from {where}"
            if _is_structured(tp):
                try:
                    value = json.loads(text)
                except ValueError as e:
                    problem = f"a table or list is written as JSON: {e}"
                    raise ConfigError(where, text, problem, accepted=_describe(tp)) from None
            data: dict[str, Any] = {path[-1]: value}
            for name in reversed(path[:-1]):
                data = {name: data}
            self.layers.append((data, origin))
            self.short[origin] = key

    def add_overrides(self, overrides: Mapping[str, Any]) -> None:
        if overrides:
            origin = "given explicitly, as an argument or a command-line option"
            self.layers.append((dict(overrides), origin))
            self.short[origin] = "argument"

    def merged(self) -> tuple[dict[str, Any], dict[_Path, str]]:
        """The deep merge of every layer (tables key by key, anything else replaced) and each value's origin."""
        into: dict[str, Any] = {}
        origins: dict[_Path, str] = {}
        for data, origin in self.layers:
            _merge(into, data, origin, (), origins)
        return into, origins


def _merge(into: dict[str, Any], data: Mapping[str, Any], origin: str, path: _Path, origins: dict[_Path, str]) -> None:
    for key, value in data.items():
        here = (*path, key)
        if isinstance(value, Mapping) and isinstance(into.get(key), dict):
            _merge(into[key], value, origin, here, origins)
            continue
        for p in [p for p in origins if p[: len(here)] == here]:
            del origins[p]
        origins[here] = origin
        into[key] = _copy(value)


def _copy(value: Any) -> Any:
    # Later layers merge into what earlier ones set; copying keeps a caller's dict (an override) untouched.
    if isinstance(value, Mapping):
        return {k: _copy(v) for k, v in value.items()}
    return value


def origin_of(path: _Path, sources: Sources, merged: tuple[dict[str, Any], dict[_Path, str]]) -> str:
    """Where the setting at ``path`` was set (``merged`` is ``sources.merged()``), as ``config show`` names it:
    ``default``, a file's path, an environment variable's name, or ``argument``."""
    data: Any = merged[0]
    for key in path:  # a table set by a source leaves its other keys at their defaults
        if not isinstance(data, Mapping) or key not in data:
            return "default"
        data = data[key]
    return sources.short.get(_origin(path, merged[1]), "default")


def _origin(path: _Path, origins: dict[_Path, str]) -> str:
    for n in range(len(path), 0, -1):
        found = origins.get(path[:n])
        if found is not None:
            return found
    return "by default"


def resolve(cls: type[T], sources: Sources) -> T:
    """An instance of the section ``cls`` from ``sources``; a ConfigError names the first wrong setting."""
    data, origins = sources.merged()
    try:
        return _section(cls, data, ())
    except _InvalidSettingError as e:
        where = _origin(e.path, origins)
        raise ConfigError(
            ".".join(e.path) or "settings", e.value, f"{e.problem} ({where})", accepted=e.accepted
        ) from None


def _section(cls: type[T], value: Any, path: _Path) -> T:
    if isinstance(value, cls):
        return value
    kind: type = cls  # type[T] is hashable, but mypy does not know it
    fields = _fields(kind)
    if not isinstance(value, Mapping):
        _invalid(path, value, "must be a table", _describe(cls))
    for key in value:
        if key not in fields:
            problem = f"is not a key of [{'.'.join(path)}]" if path else "is not a setting"
            _invalid((*path, str(key)), value[key], problem, ", ".join(fields))
    kwargs = {}
    for f in fields.values():
        if f.name in value:
            kwargs[f.name] = _coerce(f.type, value[f.name], (*path, f.name), f.metadata)
        elif f.required:
            _invalid((*path, f.name), dict(value), "is required, and this table has none", _describe(f.type))
    try:
        return cls(**kwargs)
    except SpecError as e:  # the section's own checks
        prefix = cls.__name__ + "."
        rest = tuple(e.field[len(prefix) :].split(".")) if e.field.startswith(prefix) else ()
        _invalid((*path, *rest), e.value, e.problem, e.accepted)


def _coerce(tp: Any, value: Any, path: _Path, meta: Mapping[str, Any]) -> Any:
    origin = get_origin(tp)
    if origin in (Union, types.UnionType):
        args = get_args(tp)
        if value is None and type(None) in args:
            return None
        choices = [a for a in args if a is not type(None)]
        first: _InvalidSettingError | None = None
        for choice in choices:
            try:
                return _coerce(choice, value, path, meta)
            except _InvalidSettingError as e:
                first = first or e
        assert first is not None
        raise first
    if origin is Literal:
        if value in get_args(tp):
            return value
        _invalid(path, value, "is not one of the choices", _describe(tp))
    if origin is tuple:
        item = get_args(tp)[0]
        if not isinstance(value, list | tuple):
            _invalid(path, value, "must be a list", _describe(tp))
        return tuple(_coerce(item, v, (*path, str(i)), {}) for i, v in enumerate(value))
    if origin is dict:
        item = get_args(tp)[1]
        if not isinstance(value, Mapping):
            _invalid(path, value, "must be a table", _describe(tp))
        return FrozenDict({str(k): _coerce(item, v, (*path, str(k)), {}) for k, v in value.items()})
    if _is_section(tp):
        return _section(tp, value, path)
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        try:
            return tp(value)
        except ValueError:
            _invalid(path, value, "is not one of the choices", _describe(tp))
    if tp is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
            return value.strip().lower() in _TRUE
        if isinstance(value, int) and value in (0, 1):
            return bool(value)
        _invalid(path, value, "is not a boolean", _describe(tp))
    if tp is int:
        number: Any = value
        if isinstance(value, str) and re.fullmatch(_INT, value.strip()):
            number = int(value.strip())
        elif isinstance(value, float) and value.is_integer():
            number = int(value)
        if isinstance(number, bool) or not isinstance(number, int):
            _invalid(path, value, "is not a whole number", _describe(tp, meta))
        return _bounded(number, value, path, meta)
    if tp is float:
        if isinstance(value, int | float) and not isinstance(value, bool):
            return _bounded(float(value), value, path, meta)
        if isinstance(value, str):
            try:
                return _bounded(float(value), value, path, meta)
            except ValueError:
                pass
        _invalid(path, value, "is not a number", _describe(tp, meta))
    if tp is str:
        if isinstance(value, str):
            return value
        _invalid(path, value, "is not a string", _describe(tp))
    if tp is Path:
        if isinstance(value, str | PurePath) and str(value):
            return Path(value).expanduser()
        _invalid(path, value, "is not a path", _describe(tp))
    raise TypeError(f"settings field {'.'.join(path)}: type {tp!r} is not supported by the loader")


def _bounded(number: Any, given: object, path: _Path, meta: Mapping[str, Any]) -> Any:
    minimum = meta.get("ge")
    if minimum is not None and number < minimum:
        _invalid(path, given, f"must be at least {minimum}", _describe(type(number), meta))
    return number


def _describe(tp: Any, meta: Mapping[str, Any] | None = None) -> str:
    """What a value of ``tp`` looks like, for the ``accepted`` part of an error."""
    origin = get_origin(tp)
    if origin in (Union, types.UnionType):
        return " or ".join(_describe(a, meta) for a in get_args(tp) if a is not type(None))
    if origin is Literal:
        return _one_of([repr(c) for c in get_args(tp)])
    if origin in (tuple, dict):
        item = get_args(tp)[0 if origin is tuple else 1]
        kind = "a list" if origin is tuple else "a table"
        if item is str:
            return f"{kind} of strings"
        return f"{kind}, each {_describe(item).removeprefix('a ')}"
    if _is_section(tp):
        return f"a table with the keys {', '.join(_fields(tp))}"
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        return _one_of([repr(m.value) for m in tp])
    minimum = (meta or {}).get("ge")
    bound = f" >= {minimum}" if minimum is not None else ""
    return {
        bool: "true or false",
        int: f"a whole number{bound}, e.g. {max(minimum or 0, 1) * 2}",
        float: f"a number{bound}",
        str: "a string",
        Path: "a path, e.g. '/data/flytelike'",
    }.get(tp, getattr(tp, "__name__", str(tp)))


def _one_of(choices: list[str]) -> str:
    return ", ".join(choices[:-1]) + f" or {choices[-1]}" if len(choices) > 1 else choices[0]
