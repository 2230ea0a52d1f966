"""Exact Kubernetes resource quantities, as ``k8s.io/apimachinery/pkg/api/resource`` defines them.

A :class:`Quantity` keeps its value as a :class:`~decimal.Decimal` in base units (cores, bytes), never as a
float. Parsing follows Go's ``ParseQuantity``: a number with an optional suffix (decimal ``n u m k M G T P
E``, binary ``Ki Mi Gi Ti Pi Ei``) or decimal exponent (``1e3``, ``129E6``). A non-zero value finer than
``1n`` rounds away from zero to ``1n``, a binary quantity is capped at 2^63-1, and the suffix decides the
format. ``str()`` prints Go's canonical form (``Quantity.CanonicalizeBytes``), which is what goes on the wire.

Deliberate differences from Go, each where Go is inconsistent or loses the value:

- a number without a digit (``"."``, ``"+"``, ``"Mi"``) is rejected, as the documented grammar says; Go's
  scanner takes some of them for zero through a fast path only (``"Ti"`` parses, ``"Pi"`` does not);
- a decimal exponent must fit an int32 (Go wraps it silently) and magnitudes stay below 10^(2^31);
- ``str()`` always canonicalises, where Go echoes some parsed spellings verbatim (``"1.441"``, ``"+1"``,
  ``"1E3"``; upstream #138165/#141166);
- a BinarySI value prints as DecimalSI unless it is a whole multiple of 1Ki up to 2^63-1, so that printing is
  idempotent: Go prints 10000 as ``"10000"``, which parses back as DecimalSI and prints ``"10k"``, and 2^63
  (only arithmetic makes it) as ``"8Ei"``, which parses back capped at 2^63-1.

Example:
    >>> from flytelike._quantity import Quantity
    >>> str(Quantity.parse("1024Mi")), str(Quantity.parse("0.5")), str(Quantity.parse("1.5Gi"))
    ('1Gi', '500m', '1536Mi')
    >>> Quantity.parse("16Gi") > Quantity.parse("16000Mi")
    True
"""

from __future__ import annotations

import decimal
import math
import re
from dataclasses import dataclass
from decimal import Decimal
from typing import Final, Literal

from flytelike.errors import SpecError

__all__ = ["Format", "Quantity", "parse_quantity"]

Format = Literal["DecimalSI", "BinarySI", "DecimalExponent"]

_FORMATS: Final = frozenset(("DecimalSI", "BinarySI", "DecimalExponent"))
_ACCEPTED: Final = "a Kubernetes quantity such as '4Gi', '500m' or '1.5'"

# Unlimited precision: the default context keeps 28 digits and would round sums and products silently.
_CTX: Final = decimal.Context(
    prec=decimal.MAX_PREC,
    Emax=decimal.MAX_EMAX,
    Emin=decimal.MIN_EMIN,
    rounding=decimal.ROUND_UP,
    traps=[decimal.InvalidOperation, decimal.DivisionByZero, decimal.Overflow],
)
_ZERO: Final = Decimal(0)
_ONE: Final = Decimal(1)
_NANO: Final = Decimal("1e-9")
_MAX_INT64: Final = 2**63 - 1
_INT32_MIN: Final = -(2**31)
_INT32_MAX: Final = 2**31 - 1
# The largest magnitude is below 10^(2^31): any canonical spelling of it has an int32 exponent.
_MAX_ADJUSTED: Final = _INT32_MAX

# Go's scanner (parseQuantityString) expressed as one pattern: sign, digits, optional fraction, then a run of
# suffix letters, an optional sign and digits. fullmatch, because "$" would also match before a final newline.
_QUANTITY_RE: Final = re.compile(r"([+-]?)([0-9]*)(?:\.([0-9]*))?([eEinumkKMGTP]*[+-]?[0-9]*)")
_EXPONENT_RE: Final = re.compile(r"[+-]?[0-9]+")
_NUMBER_PREFIX_RE: Final = re.compile(r"[+-]?[0-9]*(?:\.[0-9]*)?")

# suffix -> (base, power, format), as suffix.go's tables.
_SUFFIXES: Final[dict[str, tuple[int, int, Format]]] = {
    "": (10, 0, "DecimalSI"),
    "n": (10, -9, "DecimalSI"),
    "u": (10, -6, "DecimalSI"),
    "m": (10, -3, "DecimalSI"),
    "k": (10, 3, "DecimalSI"),
    "M": (10, 6, "DecimalSI"),
    "G": (10, 9, "DecimalSI"),
    "T": (10, 12, "DecimalSI"),
    "P": (10, 15, "DecimalSI"),
    "E": (10, 18, "DecimalSI"),
    "Ki": (2, 10, "BinarySI"),
    "Mi": (2, 20, "BinarySI"),
    "Gi": (2, 30, "BinarySI"),
    "Ti": (2, 40, "BinarySI"),
    "Pi": (2, 50, "BinarySI"),
    "Ei": (2, 60, "BinarySI"),
}
_DECIMAL_SUFFIX_BY_EXPONENT: Final = {power: s for s, (base, power, _) in _SUFFIXES.items() if base == 10}
_BINARY_SUFFIX_BY_STEP: Final = ("", "Ki", "Mi", "Gi", "Ti", "Pi", "Ei")
# What people write instead (GiB, gb, K), keyed by the lower-cased suffix without a trailing byte "b".
_SUFFIX_HINTS: Final = {
    **{c.lower(): (("k" if c == "K" else c), c + "i") for c in "KMGTPE"},
    **{c.lower() + "i": (c + "i",) for c in "KMGTPE"},
}


@dataclass(frozen=True, slots=True, eq=False)
class Quantity:
    """An exact Kubernetes quantity; equality, ordering and hashing go by value, whatever the format.

    Attributes:
        value: the exact value in base units, a multiple of 1e-9 (finer precision rounds away from zero).
        format: how :func:`str` spells it: ``"BinarySI"`` (``Ki``...), ``"DecimalSI"`` (``m``, ``k``...) or
            ``"DecimalExponent"`` (``1e3``).

    Example:
        >>> Quantity(Decimal("0.25"), "DecimalSI")
        Quantity('250m')
        >>> Quantity.parse("1Gi") == Quantity.parse("1073741824")
        True
    """

    value: Decimal
    format: Format = "DecimalSI"

    def __post_init__(self) -> None:
        value: object = self.value
        if isinstance(value, bool) or not isinstance(value, (int, Decimal)):
            raise TypeError(f"Quantity value must be a Decimal or int, not {type(value).__name__}")
        if self.format not in _FORMATS:
            raise ValueError(f"Quantity format must be one of {sorted(_FORMATS)}, not {self.format!r}")
        object.__setattr__(self, "value", _exact(Decimal(value)))

    @classmethod
    def parse(cls, text: str, *, field: str = "quantity") -> Quantity:
        """Parse a quantity string exactly as Kubernetes' ``ParseQuantity`` does.

        Args:
            text: the quantity, such as ``"4Gi"``, ``"500m"``, ``"1.5"`` or ``"1e3"``; no whitespace.
            field: the name reported in errors.

        Returns:
            The quantity, with the format its suffix implies.

        Raises:
            SpecError: ``text`` is not a string or not a quantity Kubernetes accepts (negatives are accepted).

        Example:
            >>> Quantity.parse("1.5Gi")
            Quantity('1536Mi')
            >>> try:
            ...     Quantity.parse("4GiB", field="memory")
            ... except SpecError as e:
            ...     print(e.problem)
            unknown suffix 'GiB' (did you mean 'Gi'?)
        """
        if not isinstance(text, str):
            raise SpecError(field, text, f"must be a str, not {type(text).__name__}", accepted=_ACCEPTED)
        m = _QUANTITY_RE.fullmatch(text)
        if m is None:
            raise SpecError(field, text, _diagnose(text), accepted=_ACCEPTED)
        sign, whole, fraction, suffix = m.groups()
        fraction = fraction or ""
        if not whole and not fraction:
            raise SpecError(field, text, _diagnose(text), accepted=_ACCEPTED)
        spec = _SUFFIXES.get(suffix)
        if spec is not None:
            base, power, fmt = spec
        elif suffix[0] in "eE" and _EXPONENT_RE.fullmatch(suffix, 1):
            base, power, fmt = 10, int(suffix[1:]), "DecimalExponent"
            if not _INT32_MIN <= power <= _INT32_MAX:
                raise SpecError(field, text, "exponent out of range", accepted=_ACCEPTED)
        else:
            raise SpecError(field, text, _diagnose(text), accepted=_ACCEPTED)

        if base == 10:
            value = Decimal(f"{sign}{whole}{fraction}E{power - len(fraction)}")
        else:
            value = Decimal(f"{sign}{int(whole + fraction) << power}E-{len(fraction)}")
        if value and value.adjusted() > _MAX_ADJUSTED:
            raise SpecError(field, text, "is too large", accepted=_ACCEPTED)
        value = _exact(value)
        if base == 2:
            magnitude = abs(value)
            if magnitude > _MAX_INT64:
                # Kubernetes caps binary quantities (not decimal ones) silently at int64.
                value = Decimal(_MAX_INT64).copy_sign(value)
            elif magnitude < 1 and value:
                fmt = "DecimalSI"
        # Already exact and tidy: skip __post_init__, parse is on the task-definition path.
        q = object.__new__(cls)
        object.__setattr__(q, "value", value)
        object.__setattr__(q, "format", fmt)
        return q

    @classmethod
    def from_number(cls, value: int | Decimal, format: Format = "DecimalSI") -> Quantity:
        """Make a quantity from an exact number of base units.

        Args:
            value: the amount; an int or a finite Decimal (floats are refused: they are rarely exact).
            format: the format :func:`str` uses.

        Returns:
            The quantity, rounded away from zero to a multiple of 1n.

        Raises:
            TypeError: ``value`` is not an int or Decimal.
            ValueError: ``value`` is not finite or not below 10^(2^31), or ``format`` is unknown.

        Example:
            >>> Quantity.from_number(1536, "BinarySI")
            Quantity('1536')
            >>> Quantity.from_number(Decimal("0.0000000001"))
            Quantity('1n')
        """
        if isinstance(value, bool) or not isinstance(value, (int, Decimal)):
            raise TypeError(f"Quantity value must be a Decimal or int, not {type(value).__name__}")
        return cls(Decimal(value), format)

    def __str__(self) -> str:
        """The canonical form Kubernetes prints (``Quantity.CanonicalizeBytes``).

        Example:
            >>> [str(Quantity.parse(s)) for s in ("1000M", "0.1", "1e3", "100.035Ki")]
            ['1G', '100m', '1e3', '102435840m']
        """
        value = self.value
        if not value:
            return "0"
        fmt = self.format
        if fmt == "BinarySI":
            magnitude = abs(value)
            if 1024 <= magnitude <= _MAX_INT64 and self.is_integer:
                n = int(magnitude)
                step = ((n & -n).bit_length() - 1) // 10  # at most 6: 1024**7 > 2**63
                if step:
                    return f"{'-' if value < 0 else ''}{n >> (10 * step)}{_BINARY_SUFFIX_BY_STEP[step]}"
            fmt = "DecimalSI"
        sign, digit_tuple, exponent = value.normalize(_CTX).as_tuple()
        assert isinstance(exponent, int)  # finite by construction
        # The exponent goes down to a multiple of 3, so the mantissa gains zeros rather than a fraction.
        shift = exponent % 3
        exponent -= shift
        digits = "".join(map(str, digit_tuple)) + "0" * shift
        prefix = "-" if sign else ""
        if fmt == "DecimalSI" and exponent in _DECIMAL_SUFFIX_BY_EXPONENT:
            return f"{prefix}{digits}{_DECIMAL_SUFFIX_BY_EXPONENT[exponent]}"
        # DecimalExponent, or DecimalSI beyond 'E': Go falls back to exponent notation.
        return f"{prefix}{digits}e{exponent}" if exponent else f"{prefix}{digits}"

    def __repr__(self) -> str:
        return f"Quantity({str(self)!r})"

    def __eq__(self, other: object) -> bool:
        return self.value == other.value if isinstance(other, Quantity) else NotImplemented

    def __hash__(self) -> int:
        return hash(self.value)

    def __lt__(self, other: Quantity) -> bool:
        return self.value < other.value if isinstance(other, Quantity) else NotImplemented

    def __le__(self, other: Quantity) -> bool:
        return self.value <= other.value if isinstance(other, Quantity) else NotImplemented

    def __gt__(self, other: Quantity) -> bool:
        return self.value > other.value if isinstance(other, Quantity) else NotImplemented

    def __ge__(self, other: Quantity) -> bool:
        return self.value >= other.value if isinstance(other, Quantity) else NotImplemented

    def __add__(self, other: Quantity) -> Quantity:
        """Exact sum in this quantity's format (a zero takes the other's format, as Go's ``Add`` does).

        Example:
            >>> Quantity.parse("1Gi") + Quantity.parse("512Mi")
            Quantity('1536Mi')
        """
        if not isinstance(other, Quantity):
            return NotImplemented
        fmt = other.format if not self.value else self.format
        return Quantity(_CTX.add(self.value, other.value), fmt)

    def scale(self, factor: Decimal | int) -> Quantity:
        """Multiply exactly, keeping the format; the product rounds away from zero to 1n.

        Example:
            >>> Quantity.parse("1Gi").scale(Decimal("1.5"))
            Quantity('1536Mi')
        """
        if isinstance(factor, bool) or not isinstance(factor, (int, Decimal)):
            raise TypeError(f"factor must be a Decimal or int, not {type(factor).__name__}")
        if isinstance(factor, Decimal) and not factor.is_finite():
            raise ValueError(f"factor must be finite, not {factor}")
        return Quantity(_CTX.multiply(self.value, Decimal(factor)), self.format)

    def ceil_to(self, unit: Decimal | int) -> int:
        """The smallest integer ``n`` with ``n * unit >= value``, e.g. whole MiB for AWS Batch.

        Example:
            >>> Quantity.parse("1.5Gi").ceil_to(2**20), Quantity.parse("1G").ceil_to(2**20)
            (1536, 954)
        """
        if isinstance(unit, bool) or not isinstance(unit, (int, Decimal)):
            raise TypeError(f"unit must be a Decimal or int, not {type(unit).__name__}")
        if not (isinstance(unit, int) or unit.is_finite()) or unit <= 0:
            raise ValueError(f"unit must be a positive number, not {unit}")
        # divmod truncates toward zero: only a positive remainder needs the step up.
        quotient, remainder = _CTX.divmod(self.value, Decimal(unit))
        return int(quotient) + (1 if remainder > 0 else 0)

    @property
    def is_integer(self) -> bool:
        """Whether the value is a whole number of base units.

        Example:
            >>> Quantity.parse("1.5Ki").is_integer, Quantity.parse("1.5").is_integer
            (True, False)
        """
        exponent = self.value.as_tuple().exponent
        assert isinstance(exponent, int)
        # _exact() leaves a whole number without a negative exponent.
        return exponent >= 0

    def milli(self) -> Decimal:
        """The value in thousandths of a base unit (exact), as Kubernetes' milli-CPU.

        Example:
            >>> Quantity.parse("1.5").milli()
            Decimal('1500')
        """
        return _tidy(_CTX.scaleb(self.value, 3))


def parse_quantity(value: str | int | float | Decimal, *, field: str) -> Quantity:
    """Read a quantity given as a string or a number, exactly.

    Ints and Decimals are taken as they are, floats by their ``repr`` (``0.1`` is ``"0.1"``, not the binary
    fraction); numbers get the DecimalSI format. Strings go through :meth:`Quantity.parse`.

    Args:
        value: the quantity.
        field: the name reported in errors.

    Returns:
        The quantity; negatives are returned, for the caller to judge.

    Raises:
        SpecError: a bool, a NaN or infinity, another type, or a string Kubernetes rejects.

    Example:
        >>> parse_quantity(0.5, field="cpu"), parse_quantity("2Gi", field="memory")
        (Quantity('500m'), Quantity('2Gi'))
        >>> try:
        ...     parse_quantity(float("nan"), field="cpu")
        ... except SpecError as e:
        ...     print(e.field, e.problem)
        cpu is not a finite number
    """
    given: object = value  # typed callers aside, configuration and CLI values arrive here too
    if isinstance(given, str):
        return Quantity.parse(given, field=field)
    if isinstance(given, bool):
        raise SpecError(field, given, "is a bool, not a quantity", accepted=_ACCEPTED)
    if isinstance(given, int):
        return Quantity(Decimal(given))
    if isinstance(given, float):
        if not math.isfinite(given):
            raise SpecError(field, given, "is not a finite number", accepted=_ACCEPTED)
        return Quantity(Decimal(repr(given)))
    if isinstance(given, Decimal):
        if not given.is_finite():
            raise SpecError(field, given, "is not a finite number", accepted=_ACCEPTED)
        return Quantity(given)
    problem = f"must be a str or a number, not {type(given).__name__}"
    raise SpecError(field, given, problem, accepted=_ACCEPTED)


def _exact(value: Decimal) -> Decimal:
    """Round a finite value away from zero to a multiple of 1n, as Kubernetes does, and tidy it."""
    if not value.is_finite():
        raise ValueError(f"Quantity value must be finite, not {value}")
    if value and value.adjusted() > _MAX_ADJUSTED:
        # Its canonical exponent would not parse back (Go reads exponents as int32).
        raise ValueError(f"Quantity value is too large: {value}")
    exponent = value.as_tuple().exponent
    assert isinstance(exponent, int)
    if exponent < -9 and value:
        if value.adjusted() < -9:
            # Below 1n: the answer is known, and quantize would shift through every digit of the exponent.
            return _NANO.copy_sign(value)
        value = value.quantize(_NANO, context=_CTX)
    return _tidy(value)


def _tidy(value: Decimal) -> Decimal:
    """One spelling per value: no trailing zeros in a fraction, no exponent on a modest whole number."""
    if not value:
        return _ZERO
    value = value.normalize(_CTX)
    exponent = value.as_tuple().exponent
    assert isinstance(exponent, int)
    if exponent > 0 and value.adjusted() < 40:
        value = value.quantize(_ONE, context=_CTX)
    return value


def _diagnose(text: str) -> str:
    """Say why ``text`` is not a quantity; only called on failure, so clarity beats speed."""
    if not text:
        return "is empty"
    if any(c.isspace() for c in text):
        return "contains whitespace"
    number = _NUMBER_PREFIX_RE.match(text)
    assert number is not None  # every part of the pattern is optional
    rest = text[number.end() :]
    if not any(c.isdigit() for c in number.group()):
        if rest[:1] in ("+", "-"):
            return "has a misplaced sign"
        return "does not start with a number" if rest else "has no digits"
    if rest.startswith("."):
        return "has more than one decimal point"
    if rest[:1] in ("+", "-"):
        return "has a misplaced sign"
    if rest[:1] in ("e", "E") and re.fullmatch(r"[eE][+-]?", rest):
        return f"exponent {rest!r} has no digits"
    hint = _SUFFIX_HINTS.get(rest.removesuffix("b").removesuffix("B").lower())
    if hint:
        return f"unknown suffix {rest!r} (did you mean {' or '.join(repr(h) for h in hint)}?)"
    return f"unknown suffix {rest!r} (valid: n u m k M G T P E Ki Mi Gi Ti Pi Ei, or an exponent such as e3)"
