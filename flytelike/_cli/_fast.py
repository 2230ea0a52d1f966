"""The front door of ``flytelike``: the command lines it fully understands, answered without loading click.

``flytelike runs`` is what a user types most, often in a loop (``watch flytelike runs``), and loading click costs
more than reading the records does. So the console script offers its arguments here first; this answers exactly
- ``flytelike --version``;
- ``flytelike runs`` with no options but ``--limit``/``-n N``, ``--output``/``-o text|json``, ``--state S``
  (repeatable, comma-separated) and ``--task T``, in the spellings click accepts (``--limit 5``, ``--limit=5``,
  ``-n5``; the last of a repeated option wins), when the settings are the defaults' but ``FLYTELIKE_HOME``: no
  configuration file, no other ``FLYTELIKE_`` variable (only then is the records file known without resolving
  settings), and the records file is already at the current schema, in WAL mode (reading it then writes nothing).

Anything else (another option or command, ``--help``, a bad value, a records file that needs migrating or cannot
be read, shell completion) is left to click, which says what is wrong as it always has. What is printed comes
from :func:`flytelike._cli._runs_list.list_runs`, the function the click command prints too, so both ways print
the same bytes.
"""

from __future__ import annotations

import os
import sqlite3
import sys

from flytelike._cli._runs_list import list_runs
from flytelike._storage._record_tables import SCHEMA_VERSION
from flytelike._storage._run_query import RUN_STATES
from flytelike._version import __version__

# Not typing's: the point of this module is to load nothing it does not use.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence
    from typing import Any

__all__ = ["answer"]

# click's shell completion runs the command with this variable set; its answers are click's to give.
_COMPLETION_VARIABLE = "_FLYTELIKE_COMPLETE"
_HOME_VARIABLE = "FLYTELIKE_HOME"
# How long to wait for the file while another process holds it exclusively, as RecordStore does (BUSY_TIMEOUT).
_BUSY_TIMEOUT = 10.0
_OUTPUTS = ("text", "json")
# The runs options answered here (every spelling), by the keyword of list_runs they set.
_VALUED = {
    "--limit": "limit",
    "-n": "limit",
    "--output": "output",
    "-o": "output",
    "--state": "states",
    "--task": "task",
}


class _NotHereError(Exception):
    """The command line or the records are not for the front door: click answers instead."""


def answer(argv: Sequence[str], environ: Mapping[str, str]) -> bool:
    """Answer the command line ``argv`` (without the program name) and return True, or return False having printed
    nothing, for click to answer it (see the module's docstring).
    """
    if _COMPLETION_VARIABLE in environ:
        return False
    if list(argv) == ["--version"]:
        # click.version_option's message.
        return _print(f"flytelike, version {__version__}")
    if not argv or argv[0] != "runs":
        return False
    try:
        options = _runs_options(argv[1:])
        text = _listing(_records_path(environ), options)
    except (_NotHereError, sqlite3.Error, OSError):
        return False
    return _print(text)


def _runs_options(args: Sequence[str]) -> dict[str, Any]:
    """The options of ``flytelike runs`` as click would take them, for the subset answered here."""
    options: dict[str, Any] = {"limit": 20, "output": "text", "states": None, "task": None}
    states: set[str] = set()
    rest = list(args)
    while rest:
        token = rest.pop(0)
        if token.startswith("--") and "=" in token:
            name, value = token.split("=", 1)
        elif token in _VALUED:
            if not rest:
                raise _NotHereError(token)
            name, value = token, rest.pop(0)
        elif token[:2] in ("-n", "-o") and len(token) > 2:
            name, value = token[:2], token[2:]
        else:
            raise _NotHereError(token)
        key = _VALUED.get(name)
        # A value that looks like an option is one click would take as the value; rare enough to leave to click.
        if key is None or value.startswith("-"):
            raise _NotHereError(token)
        if key == "limit":
            if not (value.isascii() and value.isdigit()) or int(value) < 1:
                raise _NotHereError(token)
            options["limit"] = int(value)
        elif key == "output":
            if value not in _OUTPUTS:
                raise _NotHereError(token)
            options["output"] = value
        elif key == "states":
            for part in value.split(","):
                state = part.strip().lower()
                if state not in RUN_STATES:
                    raise _NotHereError(token)
                states.add(state)
            options["states"] = frozenset(states)
        else:
            options["task"] = value
    return options


def _records_path(environ: Mapping[str, str]) -> str:
    """The records file, as the settings would name it, when nothing but ``FLYTELIKE_HOME`` can move it."""
    if any(k.upper().startswith("FLYTELIKE_") and k != _HOME_VARIABLE for k in environ):
        raise _NotHereError("a FLYTELIKE_ variable")  # a setting, or a mistyped one that settings reject
    value = environ.get(_HOME_VARIABLE)
    home = os.path.expanduser(value) if value else os.path.join(os.path.expanduser("~"), ".flytelike")
    if os.path.isfile(os.path.join(home, "config.toml")) or os.path.isfile("flytelike.toml"):
        raise _NotHereError("a configuration file")  # it may move the home, or be invalid
    return os.path.join(home, "runs.sqlite3")


def _listing(path: str, options: Mapping[str, Any]) -> str:
    if not os.path.exists(path):  # checked so that listing never creates an empty records file
        return list_runs(None, **options)
    conn = sqlite3.connect(path, timeout=_BUSY_TIMEOUT, isolation_level=None)
    try:
        # A file RecordStore would change on opening (migrate, or switch to WAL) is left for it to open.
        (mode,) = conn.execute("PRAGMA journal_mode").fetchone()
        (version,) = conn.execute("PRAGMA user_version").fetchone()
        if mode != "wal" or version != SCHEMA_VERSION:
            raise _NotHereError(path)

        def fetch(sql: str, params: Sequence[Any]) -> list[Any]:
            return conn.execute(sql, params).fetchall()

        return list_runs(fetch, **options)
    finally:
        conn.close()


def _print(text: str) -> bool:
    try:
        sys.stdout.write(text + "\n")
        sys.stdout.flush()
    except BrokenPipeError:
        # As click does: the reader left (`flytelike runs | head -1`); say nothing more and exit 1.
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - replaces stdout until the process exits
        sys.exit(1)
    return True
