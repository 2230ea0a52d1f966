"""Run labels given on the command line (``--label KEY=VALUE``), checked as run labels are.

Its own module, free of the SDK model: ``flytelike runs --label`` reads the records and nothing else.
"""

from __future__ import annotations

import click

from flytelike._run_context import RunContext
from flytelike.errors import SpecError

__all__ = ["parse_label"]


def parse_label(text: str) -> tuple[str, str]:
    """``key=value`` as a label, checked as run labels are.

    Raises:
        click.BadParameter: not ``key=value``, or a key or value that is not a valid label.
    """
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise click.BadParameter(f"{text!r} is not KEY=VALUE; accepted: e.g. team=ml")
    try:
        RunContext.build(labels={key: value})
    except SpecError as e:
        accepted = f"; accepted: {e.accepted}" if e.accepted else ""
        raise click.BadParameter(f"{text!r}: {e.problem} ({e.field}={e.value!r}){accepted}") from None
    return key, value
