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

# The host:port check the settings make of [serve] bind and [controller] address, so all three agree.
from flytelike._config._sections import _check_host_port
from flytelike._config._template import config_template
from flytelike.errors import FlytelikeError, SpecError

__all__ = ["config"]


@click.group()
def config() -> None:
    """Configuration files and resolved settings (see docs/configuration.md)."""


_ENDPOINT_ACCEPTED = "HOST:PORT, grpc://HOST:PORT, or grpcs://HOST:PORT for TLS; e.g. flytelike.example.com:8470"


def _endpoint(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    """``--endpoint`` as the client reads ``[remote] endpoint``: an optional grpc:// or grpcs:// scheme, then
    HOST:PORT (a port is required: the server has no standard one)."""
    if value is None:
        return None
    scheme, sep, rest = value.partition("://")
    target = rest.rstrip("/") if sep else value
    if sep and scheme not in ("grpc", "grpcs"):
        raise click.BadParameter(
            f"{value!r}: the scheme {scheme!r} is not grpc or grpcs; accepted: {_ENDPOINT_ACCEPTED}"
        )
    try:
        _check_host_port("--endpoint", target, require_port=True)
    except SpecError as e:
        raise click.BadParameter(f"{value!r}: {e.problem}; accepted: {_ENDPOINT_ACCEPTED}") from None
    if int(target.rpartition(":")[2]) == 0:
        raise click.BadParameter(f"{value!r}: port 0 is not a port a server listens on; accepted: {_ENDPOINT_ACCEPTED}")
    return value


def _token(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    # The token goes into an `authorization` header: whitespace there is never part of a token, and a line break
    # would end the header.
    if value is not None and (not value or any(c.isspace() for c in value)):
        raise click.BadParameter("must be the token itself: not empty, no spaces or line breaks")
    return value


def _token_file(ctx: click.Context, param: click.Parameter, value: Path | None) -> Path | None:
    if value is None:
        return None
    try:
        content = value.read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as e:
        raise click.BadParameter(f"{value}: cannot be read ({getattr(e, 'strerror', None) or e})") from None
    if not content:
        raise click.BadParameter(f"{value}: is empty; accepted: a file holding the server's token")
    # Stored absolute: the file is read later from whatever directory a command runs in.
    return value.absolute()


@config.command()
@click.argument("path", required=False, type=click.Path(dir_okay=False))
@click.option("--force", is_flag=True, help="Overwrite PATH if it exists.")
@click.option(
    "--endpoint",
    metavar="URL",
    callback=_endpoint,
    help="Set [remote] endpoint, the server of --remote commands: HOST:PORT or grpc://HOST:PORT (plaintext), "
    "grpcs://HOST:PORT (TLS).",
)
@click.option(
    "--token",
    metavar="TOKEN",
    callback=_token,
    help="Set [remote] token; the file is then readable by you only (0600). It shows in your shell's history: "
    "--token-file does not.",
)
@click.option(
    "--token-file",
    metavar="PATH",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    callback=_token_file,
    help="Set [remote] token_file: the path of a file holding the token (the path is written, not the token).",
)
def init(path: str | None, force: bool, endpoint: str | None, token: str | None, token_file: Path | None) -> None:
    """Write a config file of every setting, its meaning and its default, commented out but for those given.

    PATH defaults to $FLYTELIKE_HOME/config.toml (~/.flytelike/config.toml); `./flytelike.toml` is the project's
    file, read after it. --endpoint, --token and --token-file write a [remote] table, set, for the commands that
    talk to a `flytelike serve`:

    \b
    flytelike config init --endpoint grpcs://flytelike.example.com:8470 --token-file ~/.flytelike/remote.token
    """
    if token is not None and token_file is not None:
        raise click.UsageError("--token and --token-file both set the server's token: give one of them")
    remote: dict[str, str] = {}
    if endpoint is not None:
        remote["endpoint"] = endpoint
    if token is not None:
        remote["token"] = token
    if token_file is not None:
        remote["token_file"] = str(token_file)
    target = Path(path) if path is not None else config_files()[0]
    if target.exists() and not force:
        raise click.ClickException(f"{target} exists; pass --force to overwrite it")
    text = config_template(Settings, {"remote": remote} if remote else None)
    try:
        _write(target, text, private=token is not None)
    except OSError as e:
        raise click.ClickException(f"cannot write {target}: {e.strerror or e}") from None
    click.echo(f"wrote {target}")
    if token is not None and target.absolute() != config_files()[0].absolute():
        click.echo(
            f"warning: {target} holds the server's token: keep it out of version control, or use --token-file",
            err=True,
        )


def _write(target: Path, text: str, *, private: bool) -> None:
    """Write ``text`` to ``target`` whole, readable by its owner only when ``private``."""
    target.parent.mkdir(parents=True, exist_ok=True)
    # Written beside and renamed, so that a failed write never leaves half a file in place of the old one.
    partial = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    # A file holding a token is made 0600 from its first byte: it is never readable by others, not even briefly.
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600 if private else 0o666)
    try:
        if private:
            os.fchmod(fd, 0o600)  # the file existed already (a leftover of a killed write) with another mode
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            fd = -1
            out.write(text)
        partial.replace(target)
    except BaseException:
        if fd >= 0:
            os.close(fd)
        partial.unlink(missing_ok=True)
        raise


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
