"""The emulated API server reads resource amounts with Kubernetes' quantity grammar, exactly."""

from __future__ import annotations

import json
import re
from decimal import ROUND_UP, Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from flytelike.testing.kubernetes._pods import QUANTITY_PATTERN, parse_quantity
from flytelike.testing.kubernetes._status import ApiError

_DECIMAL = {"": 0, "n": -9, "u": -6, "m": -3, "k": 3, "M": 6, "G": 9, "T": 12, "P": 15, "E": 18}
_BINARY = {"Ki": 10, "Mi": 20, "Gi": 30, "Ti": 40, "Pi": 50, "Ei": 60}
_NANO = Decimal("1e-9")
_INT64 = 2**63 - 1


@st.composite
def quantities(draw: st.DrawFn) -> tuple[str, Decimal]:
    """A string of the grammar and the value it stands for, computed independently of the parser."""
    sign = draw(st.sampled_from(["", "+", "-"]))
    whole = draw(st.text("0123456789", min_size=0, max_size=6))
    fraction = draw(st.none() | st.text("0123456789", min_size=0, max_size=4))
    if not whole and not fraction:
        whole = "0"
    number = Decimal(f"{sign}{whole or '0'}.{fraction or '0'}")
    kind = draw(st.sampled_from(["decimal", "binary", "exponent"]))
    if kind == "decimal":
        suffix = draw(st.sampled_from(sorted(_DECIMAL)))
        value = number.scaleb(_DECIMAL[suffix])
    elif kind == "binary":
        suffix = draw(st.sampled_from(sorted(_BINARY)))
        value = number * (2 ** _BINARY[suffix])
        if abs(value) > _INT64:
            value = Decimal(_INT64).copy_sign(value)
    else:
        exponent = draw(st.integers(-12, 12))
        suffix = (
            draw(st.sampled_from(["e", "E"]))
            + draw(st.sampled_from(["", "+"]) if exponent >= 0 else st.just(""))
            + str(exponent)
        )
        value = number.scaleb(exponent)
    text = f"{sign}{whole}{'.' + fraction if fraction is not None else ''}{suffix}"
    # Finer than 1n rounds away from zero to 1n, as Kubernetes does.
    rounded = (value / _NANO).to_integral_value(rounding=ROUND_UP) * _NANO
    return text, rounded


@given(quantities())
def test_every_string_of_the_grammar_parses_to_its_value(case: tuple[str, Decimal]) -> None:
    text, value = case
    assert parse_quantity(text, "limits[memory]").value == value


@given(st.text("0123456789.+-eEinumkKMGTPEiBbg ", max_size=8))
def test_what_is_accepted_matches_the_documented_pattern(text: str) -> None:
    if re.fullmatch(QUANTITY_PATTERN.strip("^$"), text) is None:
        with pytest.raises(ApiError) as error:
            parse_quantity(text, "limits[cpu]")
        assert error.value.code == 400
        assert "quantities must match the regular expression" in error.value.message
        assert error.value.message.endswith(f"(limits[cpu]: {json.dumps(text)})")  # names the field and the value
    else:
        try:
            parse_quantity(text, "limits[cpu]")
        except ApiError as error:
            # The pattern is looser than the grammar (it allows "1.2.3", "1Ki5"); the message is the same.
            assert error.code == 400  # noqa: PT017


@pytest.mark.parametrize("text", ["4GiB", "1gb", "lots", " 1", "1 ", "", "1.2.3", "Mi", "1e", "--1"])
def test_not_quantities(text: str) -> None:
    with pytest.raises(ApiError) as error:
        parse_quantity(text, "limits[memory]")
    assert error.value.code == 400


def test_json_numbers_are_quantities_too() -> None:
    assert parse_quantity(2, "limits[cpu]").value == 2
    assert parse_quantity(0.5, "limits[cpu]").value == Decimal("0.5")
