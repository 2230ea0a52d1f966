"""Command-line options typed from a task's interface: ``--n 3``, ``--flag/--no-flag``, enums as choices, and
lists, dicts, dataclasses and models as JSON, or read from a JSON or YAML file (``--config @cfg.yaml``).

``inputs_from_file`` reads every input from one JSON or YAML mapping (``flytelike run --inputs-file``); the values
become the options' defaults, so options given on the command line win.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import difflib
import enum
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import click

from flytelike._cli._labels import parse_label
from flytelike._files import Dir, File
from flytelike._interface import Param
from flytelike._policies import parse_duration
from flytelike._run_context import RunContext
from flytelike._types import TypeSpec
from flytelike.errors import SpecError, ValueConversionError

__all__ = [
    "as_default",
    "from_json",
    "inputs_from_file",
    "label_option",
    "name_option",
    "parse_label",
    "read_document",
    "reject_unknown_option",
    "task_command",
]

_STRUCTURED = frozenset({"list", "dict", "dataclass", "model"})
_DOCUMENT_SUFFIXES = (".json", ".yaml", ".yml")
_EPILOG = "A JSON input may also be read from a file: --config @config.yaml (or @config.json)."


def _structured(spec: TypeSpec) -> bool:
    return spec.kind in _STRUCTURED or (spec.kind == "optional" and spec.args[0].kind in _STRUCTURED)


def read_document(path: str, where: str) -> Any:
    """The JSON or YAML document in the file at ``path`` (YAML unless it ends in ``.json``; YAML reads JSON too).

    Raises:
        ValueConversionError: the file cannot be read or parsed; the message names ``where`` and the file.
    """
    file = Path(path).expanduser()
    try:
        text = file.read_text(encoding="utf-8")
    except OSError as e:
        raise ValueConversionError(f"{where}: cannot read {path}: {e.strerror or e}") from None
    if file.suffix == ".json":
        try:
            return json.loads(text)
        except ValueError as e:
            raise ValueConversionError(f"{where}: {path} is not valid JSON: {e}") from None
    # PyYAML costs tens of milliseconds to import; only a run given a YAML file pays for it.
    import yaml

    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise ValueConversionError(f"{where}: {path} is not valid YAML: {e}") from None


def _document_path(text: str) -> str | None:
    """The file a structured option's value names: ``@path``, or a path ending in .json/.yaml/.yml that exists."""
    if text.startswith("@"):
        return text[1:]
    if text.endswith(_DOCUMENT_SUFFIXES) and Path(text).expanduser().is_file():
        return text
    return None


def _missing_path(spec: TypeSpec, value: Any) -> str | None:
    """The local path of a File or Dir value that does not exist (URIs are checked where they are read)."""
    if spec.kind == "optional":
        spec = spec.args[0]
    if spec.kind not in ("file", "dir") or not isinstance(value, File | Dir):
        return None
    path = value.path
    if "://" in path:
        return None
    exists = Path(path).is_file() if spec.kind == "file" else Path(path).is_dir()
    return None if exists else path


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


def from_json(spec: TypeSpec, value: Any, where: str) -> Any:
    """A value of ``spec`` from decoded JSON (or YAML), checked; errors name ``where``."""
    return spec.check(_from_json(spec, value, where), where)


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
            document = _document_path(value) if _structured(self.spec) else None
            if document is not None:
                converted = _from_json(self.spec, read_document(document, self.where), self.where)
            else:
                converted = _from_text(self.spec, value, self.where)
            checked = self.spec.check(converted, self.where)
        except ValueConversionError as e:
            self.fail(str(e), param, ctx)
        missing = _missing_path(self.spec, checked)
        if missing is not None:
            what = "folder" if "dir" in (self.spec.kind, *(a.kind for a in self.spec.args)) else "file"
            self.fail(
                f"no such {what}: {missing!r} (give an existing path, or a URI such as s3://bucket/key)", param, ctx
            )
        return checked


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
    help_text = "JSON" if _structured(p.type) or p.type.kind == "union" else ""
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
    fields = _fields_help(p.type)
    if fields:
        help_text = f"{help_text}  fields: {fields}"
    scalar = p.type.kind in ("int", "float", "str", "bytes", "datetime", "timedelta", "file", "dir")
    return click.Option(
        names,
        type=_Typed(p.type, f"{task}({p.name})"),
        metavar=str(p.type).upper() if scalar else str(p.type),
        **no_default,
        required=required,
        help=help_text or None,
    )


def _type_name(annotation: Any) -> str:
    if isinstance(annotation, type):
        return annotation.__qualname__
    return str(annotation).replace("typing.", "")


def _fields_help(spec: TypeSpec) -> str:
    """A dataclass's or model's fields as ``name: type = default``, for ``--help``."""
    if spec.kind == "optional":
        spec = spec.args[0]
    cls = spec.py
    parts: list[str] = []
    if spec.kind == "dataclass" and cls is not None:
        for f, t in zip(dataclasses.fields(cls), spec.args, strict=False):
            if f.default is not dataclasses.MISSING:
                parts.append(f"{f.name}: {t} = {_field_default(f.default)}")
            elif f.default_factory is not dataclasses.MISSING:
                parts.append(f"{f.name}: {t} = {_field_default(f.default_factory())}")
            else:
                parts.append(f"{f.name}: {t} (required)")
    elif spec.kind == "model" and cls is not None:
        for name, info in getattr(cls, "model_fields", {}).items():
            shown = _type_name(info.annotation)
            if info.is_required():
                parts.append(f"{name}: {shown} (required)")
            else:
                parts.append(f"{name}: {shown} = {_field_default(info.get_default(call_default_factory=True))}")
    return ", ".join(parts)


def _field_default(value: Any) -> str:
    # Quoted, so that a string default reads as one: name: str = "x".
    return json.dumps(value) if isinstance(value, str) else _shown(value)


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


def as_default(spec: TypeSpec, value: Any) -> Any:
    """A typed value as an option's default (``default_map``): enum members by name, the rest as they are."""
    if isinstance(value, enum.Enum) and spec.kind in ("enum", "optional"):
        return value.name
    return value


def inputs_from_file(path: str, inputs: Sequence[Param], task: str) -> dict[str, Any]:
    """Every input in the JSON or YAML mapping at ``path``, typed from ``inputs``, as options' defaults.

    Raises:
        ValueConversionError: the file cannot be read, is not a mapping, names an input the task does not have
            (with the closest names), or holds a value that does not fit its input's type.
    """
    where = path
    document = read_document(path, where)
    if document is None:
        return {}
    if not isinstance(document, Mapping):
        raise ValueConversionError(
            f"{where}: expected a mapping of input names to values, got {type(document).__name__}"
        )
    params = {p.name: p for p in inputs}
    values: dict[str, Any] = {}
    for key, raw in document.items():
        name = str(key).replace("-", "_")
        param = params.get(name)
        if param is None:
            close = difflib.get_close_matches(name, list(params), n=3)
            hint = f"; did you mean {', '.join(close)}?" if close else ""
            raise ValueConversionError(
                f"{where}: {task} has no input {key!r}{hint} (inputs: {', '.join(params) or 'none'})"
            )
        at = f"{task}({name}) in {path}"
        value = param.type.check(_from_json(param.type, raw, at), at)
        missing = _missing_path(param.type, value)
        if missing is not None:
            raise ValueConversionError(f"{at}: no such file or folder: {missing!r}")
        values[name] = as_default(param.type, value)
    return values


def task_command(name: str, inputs: tuple[Param, ...], task: str, doc: str | None) -> click.Command:
    """A click command whose options are the task's inputs; its callback returns the parsed values."""
    return click.Command(
        name,
        params=[_option(p, task) for p in inputs],
        callback=lambda **values: values,
        help=(doc or "").strip() or None,
        epilog=_EPILOG if any(_structured(p.type) for p in inputs) else None,
        context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 110},
    )


# --- the run's own options ---------------------------------------------------------------------------------------


def _labels(ctx: click.Context, param: click.Parameter, values: tuple[str, ...]) -> dict[str, str]:
    return dict(parse_label(v) for v in values)


def _name(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    if value is not None:
        try:
            RunContext.build(name=value)
        except SpecError as e:
            raise click.BadParameter(f"{value!r} is {e.problem}; accepted: {e.accepted}") from None
    return value


name_option = click.option(
    "--name",
    metavar="NAME",
    callback=_name,
    help="The run id's prefix (NAME-3f9a2c) instead of the date and time.",
)
label_option = click.option(
    "--label",
    metavar="KEY=VALUE",
    multiple=True,
    callback=_labels,
    help="A label recorded on the run (repeatable); `flytelike runs --label KEY=VALUE` finds it.",
)


def reject_unknown_option(ctx: click.Context, param: click.Parameter, value: str) -> str:
    """FILE's callback: an option the command does not know lands here (options after TASK are the task's), so
    report it as the unknown option it is, with the closest options, rather than as a missing file."""
    if value.startswith("-") and len(value) > 1:
        known = sorted({o for p in ctx.command.params for o in getattr(p, "opts", ()) if o.startswith("-")})
        raise click.NoSuchOption(value, possibilities=difflib.get_close_matches(value, known, n=3), ctx=ctx)
    return value
