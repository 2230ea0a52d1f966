"""Command-line options typed from a task's interface: ``--n 3``, ``--flag/--no-flag``, enums as choices, and
lists, dicts, dataclasses and models as JSON."""

from __future__ import annotations

import dataclasses
import datetime as dt
import enum
import json
from typing import Any

import click

from flytelike._files import Dir, File
from flytelike._interface import Param
from flytelike._policies import parse_duration
from flytelike._types import TypeSpec
from flytelike.errors import SpecError, ValueConversionError

__all__ = ["task_command"]


def _from_json(spec: TypeSpec, value: Any, where: str) -> Any:
    """Build a typed value from decoded JSON (dataclasses and enums need construction, the rest is checked)."""
    match spec.kind:
        case "optional":
            return None if value is None else _from_json(spec.args[0], value, where)
        case "list" if isinstance(value, list):
            return [_from_json(spec.args[0], v, f"{where}[{i}]") for i, v in enumerate(value)]
        case "dict" if isinstance(value, dict):
            return {k: _from_json(spec.args[0], v, f"{where}[{k!r}]") for k, v in value.items()}
        case "dataclass" if isinstance(value, dict) and spec.py is not None:
            unknown = set(value) - set(spec.field_names)
            if unknown:
                raise ValueConversionError(f"{where}: unknown field(s) {sorted(unknown)} for {spec}")
            fields = {
                n: _from_json(t, value[n], f"{where}.{n}")
                for n, t in zip(spec.field_names, spec.args, strict=True)
                if n in value
            }
            try:
                return spec.py(**fields)
            except TypeError as e:
                raise ValueConversionError(f"{where}: {e}") from None
        case "union":
            # A value that already is one of the variants stays as it is ("7" in JSON is a str, not an int);
            # only then are conversions tried, in the variants' order.
            for variant in spec.args:
                try:
                    return variant.check(value, where)
                except ValueConversionError:
                    continue
            for variant in spec.args:
                try:
                    return variant.check(_from_json(variant, value, where), where)
                except ValueConversionError:
                    continue
        case _:
            if isinstance(value, str) or spec.kind in ("enum", "file", "dir", "datetime", "timedelta", "bytes"):
                return _from_text(spec, value if isinstance(value, str) else json.dumps(value), where)
    return spec.check(value, where)


def _from_text(spec: TypeSpec, text: str, where: str) -> Any:
    try:
        match spec.kind:
            case "str":
                return text
            case "int":
                return int(text)
            case "float":
                return float(text)
            case "bytes":
                return text.encode()
            case "datetime":
                return dt.datetime.fromisoformat(text)
            case "timedelta":
                return parse_duration(text, field=where)
            case "file":
                return File(text)
            case "dir":
                return Dir(text)
            case "enum":
                assert spec.py is not None
                assert issubclass(spec.py, enum.Enum)
                members = spec.py.__members__
                if text in members:
                    return members[text]
                for member in members.values():
                    if str(member.value) == text:
                        return member
                raise ValueConversionError(f"{where}: {text!r} is not one of {', '.join(members)}")
            case "optional" if text.lower() in ("none", "null"):
                return None
            case "optional" if spec.args[0].kind in (
                "str", "int", "float", "enum", "file", "dir", "datetime", "timedelta", "bytes"
            ):  # fmt: skip
                return _from_text(spec.args[0], text, where)
    except (ValueError, SpecError) as e:
        if isinstance(e, ValueConversionError):
            raise
        raise ValueConversionError(f"{where}: {text!r} is not a {spec}: {e}") from None
    try:
        decoded = json.loads(text)
    except ValueError:
        if spec.kind == "union" and any(v.kind == "str" for v in spec.args):
            return text  # plain words for an `int | str` input mean the string
        raise ValueConversionError(f"{where}: expected JSON for {spec}, got {text!r}") from None
    return _from_json(spec, decoded, where)


class _Typed(click.ParamType):  # type: ignore[type-arg]
    def __init__(self, spec: TypeSpec, where: str) -> None:
        self.spec = spec
        self.where = where
        self.name = str(spec)

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if not isinstance(value, str):
            return value
        try:
            return self.spec.check(_from_text(self.spec, value, self.where), self.where)
        except ValueConversionError as e:
            self.fail(str(e), param, ctx)


def _option(p: Param, task: str) -> click.Option:
    dashed = p.name.replace("_", "-")
    names = [f"--{dashed}"] + ([f"--{p.name}"] if dashed != p.name else [])
    required = p.required
    default = None if required else p.default
    # No default at all for a required input: click (>= 8.3) counts an explicit default=None as a value and would
    # then never report the option as missing.
    no_default: dict[str, Any] = {} if required else {"default": default}
    if p.type.kind == "bool":
        return click.Option(
            [f"--{dashed}/--no-{dashed}"], required=required, show_default=True, help="bool", **no_default
        )
    help_text = "JSON" if p.type.kind in ("list", "dict", "dataclass", "model", "union") else ""
    enum_cls = p.type.py
    if p.type.kind == "enum" and enum_cls is not None and issubclass(enum_cls, enum.Enum):
        choices = list(enum_cls.__members__)
        enum_default: dict[str, Any] = {} if required else {"default": default.name if default is not None else None}
        return click.Option(
            names,
            type=click.Choice(choices),
            **enum_default,
            required=required,
            show_default=True,
            help=help_text,
            callback=lambda _c, _p, v: None if v is None else enum_cls.__members__[v],
        )
    if not required:
        help_text = f"{help_text}  [default: {_shown(default)}]".strip()
    scalar = p.type.kind in ("int", "float", "str", "bytes", "datetime", "timedelta", "file", "dir")
    return click.Option(
        names,
        type=_Typed(p.type, f"{task}({p.name})"),
        metavar=str(p.type).upper() if scalar else str(p.type),
        **no_default,
        required=required,
        help=help_text or None,
    )


def _shown(value: Any) -> str:
    """A default as the user would type it on the command line."""
    if value is None or isinstance(value, str | int | float):
        return "none" if value is None else str(value)
    if isinstance(value, enum.Enum):
        return value.name
    if hasattr(value, "model_dump"):
        return json.dumps(value.model_dump(mode="json"))
    if dataclasses.is_dataclass(value) or isinstance(value, list | dict):
        try:
            return json.dumps(dataclasses.asdict(value) if dataclasses.is_dataclass(value) else value, default=str)  # type: ignore[arg-type]
        except TypeError:
            return repr(value)
    return str(value)


def task_command(name: str, inputs: tuple[Param, ...], task: str, doc: str | None) -> click.Command:
    """A click command whose options are the task's inputs; its callback returns the parsed values."""
    return click.Command(
        name,
        params=[_option(p, task) for p in inputs],
        callback=lambda **values: values,
        help=(doc or "").strip() or None,
        context_settings={"help_option_names": ["-h", "--help"]},
    )
