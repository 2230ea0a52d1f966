"""A task's typed interface, read from its function signature when the task is defined.

Inputs are the parameters (positional-or-keyword and keyword-only; ``*args``/``**kwargs`` are rejected, since a
remote task needs every input named and typed). Outputs come from the return annotation: ``None`` for none, a
type for one output ``o0``, a fixed ``tuple[A, B]`` for several (``o0``, ``o1``).
"""

from __future__ import annotations

import inspect
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from flytelike._types import TypeSpec, type_spec
from flytelike.errors import SpecError, ValueConversionError

__all__ = ["NO_DEFAULT", "Interface", "Param"]


class _NoDefault:
    __slots__ = ()

    def __repr__(self) -> str:
        return "NO_DEFAULT"


NO_DEFAULT: Any = _NoDefault()


@dataclass(frozen=True, slots=True)
class Param:
    """One named, typed input or output."""

    name: str
    type: TypeSpec
    default: Any = NO_DEFAULT
    keyword_only: bool = False

    @property
    def required(self) -> bool:
        return self.default is NO_DEFAULT


@dataclass(frozen=True, slots=True)
class Interface:
    """Ordered inputs and outputs of a task."""

    inputs: tuple[Param, ...]
    outputs: tuple[Param, ...]
    # For calls that give every input by position (a fan-out's): names and checks, ready. Empty when an input is
    # keyword-only, so such calls take the general path.
    _by_position: tuple[tuple[str, Callable[[object, str], Any]], ...] = field(
        init=False, repr=False, compare=False, hash=False, default=()
    )
    # "task(input)" for each input, by task name: errors need them, and formatting them per call costs every call.
    _wheres: dict[str, tuple[str, ...]] = field(init=False, repr=False, compare=False, hash=False, default_factory=dict)

    def __post_init__(self) -> None:
        if not any(p.keyword_only for p in self.inputs):
            object.__setattr__(self, "_by_position", tuple((p.name, p.type.check) for p in self.inputs))

    @classmethod
    def of(cls, fn: Callable[..., Any], *, task: str) -> Interface:
        """Read the interface of ``fn``; ``task`` names the task in errors."""
        try:
            hints = typing.get_type_hints(fn)
        except Exception as e:  # NameError, or any error raised while evaluating a string annotation
            raise SpecError(
                f"{task} annotations",
                str(e),
                "cannot resolve the annotations",
                accepted="types importable at module level (string annotations are evaluated in the module)",
            ) from None
        inputs = []
        for p in inspect.signature(fn).parameters.values():
            where = f"{task}({p.name})"
            if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
                raise SpecError(where, str(p), "*args and **kwargs cannot be typed inputs", accepted="named parameters")
            if p.kind is p.POSITIONAL_ONLY:
                raise SpecError(where, str(p), "positional-only inputs cannot be named remotely", accepted="x: int")
            if p.name not in hints:
                raise SpecError(where, p.name, "the input has no type annotation", accepted=f"{p.name}: int")
            spec = type_spec(hints[p.name], where=where)
            default = NO_DEFAULT
            if p.default is not p.empty:
                try:
                    default = spec.check(p.default, f"{where} default")
                except ValueConversionError as e:  # a wrong default is a definition mistake
                    raise SpecError(
                        f"{where} default", p.default, str(e), accepted=f"a default of type {spec}"
                    ) from None
            inputs.append(Param(p.name, spec, default, keyword_only=p.kind is p.KEYWORD_ONLY))
        if "return" not in hints:
            raise SpecError(f"{task} -> ?", None, "the return type is not annotated", accepted="-> int, or -> None")
        return cls(tuple(inputs), _outputs(hints["return"], task))

    def bind(self, args: tuple[Any, ...], kwargs: Mapping[str, Any], *, task: str) -> dict[str, Any]:
        """Map a call's arguments to checked input values, defaults filled in.

        Raises:
            ValueConversionError: a missing, unexpected or mistyped argument, naming the task and input.
        """
        inputs = self.inputs
        fast = self._by_position
        if not kwargs and fast and len(args) == len(fast):
            # Every input given by position, the common call inside a fan-out: no name lookups, no defaults.
            wheres = self._wheres.get(task)
            if wheres is None:
                wheres = self._wheres[task] = tuple(f"{task}({name})" for name, _ in fast)
            return {name: check(v, where) for (name, check), v, where in zip(fast, args, wheres, strict=True)}
        positionals = [p for p in inputs if not p.keyword_only]
        if len(args) > len(positionals):
            raise ValueConversionError(
                f"{task}() takes {len(positionals)} positional inputs but {len(args)} were given"
            )
        values: dict[str, Any] = {}
        for positional, value in zip(positionals, args, strict=False):
            values[positional.name] = positional.type.check(value, f"{task}({positional.name})")
        for name, value in kwargs.items():
            param = self.input(name)
            if param is None:
                names = ", ".join(p.name for p in inputs) or "none"
                raise ValueConversionError(f"{task}() got an unexpected input {name!r}; its inputs are: {names}")
            if name in values:
                raise ValueConversionError(f"{task}() got input {name!r} twice")
            values[name] = param.type.check(value, f"{task}({name})")
        for param in inputs:
            if param.name not in values:
                if param.required:
                    raise ValueConversionError(f"{task}() is missing required input {param.name!r}: {param.type}")
                values[param.name] = param.default
        return values

    def input(self, name: str) -> Param | None:
        for p in self.inputs:
            if p.name == name:
                return p
        return None

    def check_outputs(self, result: Any, *, task: str) -> dict[str, Any]:
        """Name and check what a task returned."""
        if not self.outputs:
            if result is not None:
                raise ValueConversionError(f"{task} returned {type(result).__name__} but is annotated -> None")
            return {}
        if len(self.outputs) == 1:
            p = self.outputs[0]
            return {p.name: p.type.check(result, f"{task} -> {p.name}")}
        if not isinstance(result, tuple) or len(result) != len(self.outputs):
            raise ValueConversionError(f"{task} must return a tuple of {len(self.outputs)} values, got {result!r}")
        return {p.name: p.type.check(v, f"{task} -> {p.name}") for p, v in zip(self.outputs, result, strict=True)}

    def result(self, outputs: Mapping[str, Any]) -> Any:
        """The Python return value from named outputs (the inverse of :meth:`check_outputs`)."""
        if not self.outputs:
            return None
        if len(self.outputs) == 1:
            return outputs[self.outputs[0].name]
        return tuple(outputs[p.name] for p in self.outputs)


def _outputs(annotation: object, task: str) -> tuple[Param, ...]:
    if annotation is None or annotation is type(None):
        return ()
    where = f"{task} -> o0"
    if typing.get_origin(annotation) is tuple:
        parts = typing.get_args(annotation)
        if not parts or Ellipsis in parts:
            raise SpecError(
                f"{task} ->",
                str(annotation),
                "variable-length tuples are not outputs",
                accepted="tuple[int, str]",
            )
        return tuple(Param(f"o{i}", type_spec(a, where=f"{task} -> o{i}")) for i, a in enumerate(parts))
    return (Param("o0", type_spec(annotation, where=where)),)
