"""``flytelike config init [PATH]`` and ``flytelike config show``: a commented config file with every setting, and
each setting's value with where it came from."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import click

from flytelike._config import Settings, config_files, explain_settings
from flytelike._config._template import config_template
from flytelike.errors import FlytelikeError

__all__ = ["config"]


@click.group()
def config() -> None:
    """Configuration files and resolved settings (see docs/configuration.md)."""


@config.command()
@click.argument("path", required=False, type=click.Path(dir_okay=False))
@click.option("--force", is_flag=True, help="Overwrite PATH if it exists.")
def init(path: str | None, force: bool) -> None:
    """Write a commented config file with every setting and its default, all commented out.

    PATH defaults to $FLYTELIKE_HOME/config.toml (~/.flytelike/config.toml); `./flytelike.toml` is the project's
    file, read after it.
    """
    target = Path(path) if path is not None else config_files()[0]
    if target.exists() and not force:
        raise click.ClickException(f"{target} exists; pass --force to overwrite it")
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        # Written beside and renamed, so that a failed write never leaves half a file in place of the old one.
        partial = target.with_name(f".{target.name}.{os.getpid()}.tmp")
        partial.write_text(config_template(Settings), encoding="utf-8")
        partial.replace(target)
    except OSError as e:
        raise click.ClickException(f"cannot write {target}: {e.strerror or e}") from None
    click.echo(f"wrote {target}")


def _secret(name: str, value: Any) -> Any:
    """``value`` with its credentials hidden: a token whole, the password of a database URL."""
    if not value:
        return value
    if name.endswith("token"):
        return "(set, not shown)"  # a credential does not belong in a terminal's scrollback
    if isinstance(value, str) and "://" in value:
        parts = urlsplit(value)
        if parts.password:
            host = parts.netloc.rpartition("@")[2]
            return urlunsplit(parts._replace(netloc=f"{parts.username or ''}:***@{host}"))
    return value


def _shown(value: Any, name: str = "") -> str:
    value = _secret(name, value)
    if value is None:
        return "(not set)"
    if isinstance(value, tuple):
        return json.dumps([_plain(v) for v in value]) if value else "[]"
    return str(value)


def _plain(value: Any) -> Any:
    """A settings table (an [[accelerators]] entry) as JSON."""
    slots = getattr(value, "__slots__", ())
    return (
        {k: _plain(getattr(value, k)) for k in slots}
        if slots
        else value
        if not isinstance(value, tuple)
        else list(value)
    )


@config.command()
@click.option("-o", "--output", type=click.Choice(["text", "json"]), default="text", show_default=True)
def show(output: str) -> None:
    """Each setting's value and where it came from: default, a file's path, or an environment variable."""
    try:
        entries = explain_settings()
    except FlytelikeError as e:
        raise click.ClickException(str(e)) from None
    if output == "json":
        rows = [
            {
                "name": s.name,
                "value": _json_value(_secret(s.name, s.value)),
                "source": s.source,
            }
            for s in entries
        ]
        click.echo(json.dumps(rows, indent=2))
        return
    width = max(len(s.name) for s in entries)
    value_width = min(60, max(len(_shown(s.value, s.name)) for s in entries))
    for s in entries:
        click.echo(f"{s.name:<{width}}  {_shown(s.value, s.name):<{value_width}}  {s.source}".rstrip())
    read = [str(p) for p in config_files() if p.is_file()]
    click.echo(f"\nfiles read: {', '.join(read) if read else 'none'}")


def _json_value(value: Any) -> Any:
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, tuple):
        return [_plain(v) for v in value]
    return value
