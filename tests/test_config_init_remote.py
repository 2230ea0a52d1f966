"""``flytelike config init --endpoint/--token/--token-file`` writes a set ``[remote]`` table that the settings read
back, keeps a file holding a token readable by its owner only, stores a token file's path rather than its token,
and refuses a bad endpoint or token naming the option, what was given and what is accepted."""

from __future__ import annotations

import os
import stat
import tomllib
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from flytelike._cli import cli
from flytelike._config import RemoteSettings, Settings, load_settings
from flytelike._config._template import config_template


def invoke(*args: str) -> Result:
    return CliRunner().invoke(cli, ["config", "init", *args], catch_exceptions=False)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_endpoint_and_token_are_written_set_and_read_back(isolated_config: Path) -> None:
    result = invoke("--endpoint", "grpcs://flytelike.example.com:8470", "--token", "s3cret-Token_1")
    assert result.exit_code == 0, result.output
    target = isolated_config / "config.toml"
    assert result.output == f"wrote {target}\n"
    text = target.read_text()
    assert tomllib.loads(text) == {
        "remote": {"endpoint": "grpcs://flytelike.example.com:8470", "token": "s3cret-Token_1"}
    }
    assert load_settings().remote == RemoteSettings(
        endpoint="grpcs://flytelike.example.com:8470", token="s3cret-Token_1"
    )
    assert mode(target) == 0o600
    assert "# token_file = " in text  # the rest of [remote], and every other table, stays commented out
    assert "# [serve]" in text
    assert text.startswith("# flytelike configuration. Set here: [remote] endpoint, token.")


def test_a_file_holding_a_token_is_0600_whatever_the_umask(tmp_path: Path) -> None:
    target = tmp_path / "flytelike.toml"
    old = os.umask(0)
    try:
        assert invoke(str(target), "--token", "abc").exit_code == 0
    finally:
        os.umask(old)
    assert mode(target) == 0o600


def test_overwriting_a_token_file_with_force_keeps_it_private(tmp_path: Path) -> None:
    (tmp_path / "project").mkdir()
    target = tmp_path / "project" / "flytelike.toml"
    target.write_text("")
    target.chmod(0o644)
    assert invoke(str(target), "--force", "--token", "abc").exit_code == 0
    assert mode(target) == 0o600
    assert tomllib.loads(target.read_text())["remote"]["token"] == "abc"
    assert [p.name for p in target.parent.iterdir()] == ["flytelike.toml"]  # no temporary file left


def test_without_a_token_the_file_keeps_the_usual_mode(isolated_config: Path) -> None:
    assert invoke("--endpoint", "127.0.0.1:8470").exit_code == 0
    target = isolated_config / "config.toml"
    assert tomllib.loads(target.read_text()) == {"remote": {"endpoint": "127.0.0.1:8470"}}
    plain = isolated_config / "plain.toml"
    assert invoke(str(plain)).exit_code == 0
    assert mode(target) == mode(plain)


def test_token_file_stores_the_absolute_path_not_the_token(isolated_config: Path) -> None:
    Path("remote.token").write_text("the-token\n")  # in the working directory, named relatively
    result = invoke("--endpoint", "grpc://serve.internal:8470", "--token-file", "remote.token")
    assert result.exit_code == 0, result.output
    target = isolated_config / "config.toml"
    text = target.read_text()
    assert "the-token" not in text
    assert tomllib.loads(text)["remote"] == {
        "endpoint": "grpc://serve.internal:8470",
        "token_file": str(Path("remote.token").absolute()),
    }
    assert load_settings().remote.token_file == str(Path("remote.token").absolute())


@pytest.mark.parametrize(
    ("endpoint", "problem"),
    [
        ("http://serve:8470", "the scheme 'http' is not grpc or grpcs"),
        ("serve.internal", "has no port"),
        ("grpcs://", "has no valid host"),
        ("serve:port", "the port 'port' is not a number from 0 to 65535"),
        ("serve:70000", "the port '70000' is not a number from 0 to 65535"),
        ("serve:0", "port 0 is not a port a server listens on"),
        ("::1:8470", "an IPv6 address needs brackets"),
    ],
)
def test_a_bad_endpoint_is_refused_naming_the_option(isolated_config: Path, endpoint: str, problem: str) -> None:
    result = invoke("--endpoint", endpoint)
    assert result.exit_code == 2
    assert f"Invalid value for '--endpoint': {endpoint!r}: {problem}; accepted: HOST:PORT, grpc://HOST:PORT" in (
        result.output
    )
    assert not (isolated_config / "config.toml").exists()


@pytest.mark.parametrize("endpoint", ["[::1]:8470", "grpc://10.0.0.5:8470/", "grpcs://serve.example.com:443"])
def test_the_endpoint_forms_the_client_reads_are_accepted(isolated_config: Path, endpoint: str) -> None:
    assert invoke("--endpoint", endpoint).exit_code == 0
    assert load_settings().remote.endpoint == endpoint


@pytest.mark.parametrize("token", ["", "two words", "line\nbreak"])
def test_a_token_that_cannot_be_a_header_value_is_refused(isolated_config: Path, token: str) -> None:
    result = invoke("--token", token)
    assert result.exit_code == 2
    assert "Invalid value for '--token': must be the token itself: not empty, no spaces or line breaks" in result.output
    assert not (isolated_config / "config.toml").exists()


def test_token_and_token_file_are_exclusive(isolated_config: Path) -> None:
    Path("t").write_text("x")
    result = invoke("--token", "abc", "--token-file", "t")
    assert result.exit_code == 2
    assert "--token and --token-file both set the server's token: give one of them" in result.output
    assert not (isolated_config / "config.toml").exists()


def test_a_missing_or_empty_token_file_is_refused(isolated_config: Path) -> None:
    missing = invoke("--token-file", "absent.token")
    assert missing.exit_code == 2
    assert "Invalid value for '--token-file'" in missing.output
    assert "absent.token" in missing.output
    Path("empty.token").write_text("\n")
    empty = invoke("--token-file", "empty.token")
    assert empty.exit_code == 2
    assert "Invalid value for '--token-file': empty.token: is empty" in empty.output


def test_a_token_written_outside_the_home_warns_about_version_control(isolated_config: Path) -> None:
    result = CliRunner().invoke(cli, ["config", "init", "flytelike.toml", "--token", "abc"], catch_exceptions=False)
    assert result.exit_code == 0
    assert "warning: flytelike.toml holds the server's token: keep it out of version control" in result.stderr
    home = CliRunner().invoke(cli, ["config", "init", "--token", "abc"], catch_exceptions=False)
    assert "warning" not in home.stderr


def test_template_refuses_a_key_or_table_the_settings_lack() -> None:
    with pytest.raises(ValueError, match=r"\[remote\] has no key 'tokens'; its keys: endpoint, token"):
        config_template(Settings, {"remote": {"tokens": "x"}})
    with pytest.raises(ValueError, match=r"the settings have no table \[remotes\]"):
        config_template(Settings, {"remotes": {"token": "x"}})
    assert config_template(Settings, {}) == config_template(Settings)
