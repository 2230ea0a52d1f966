"""``flytelike config init [PATH]`` writes a commented file of every setting and its default (changing nothing until
a line is uncommented) and refuses to overwrite without --force; ``flytelike config show`` prints each setting's
value and where it came from: default, a file's path, or an environment variable's name."""

from __future__ import annotations

import dataclasses
import json
import tomllib
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from flytelike._cli import cli
from flytelike._config import Settings, explain_settings, load_settings
from flytelike._config._template import DESCRIPTIONS, EXAMPLES, config_template


def invoke(*args: str) -> Result:
    return CliRunner().invoke(cli, ["config", *args], catch_exceptions=False)


def leaf_settings() -> list[str]:
    names = []
    for f in dataclasses.fields(Settings):
        if not f.init:
            continue
        default = f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default
        if dataclasses.is_dataclass(default) and f.name != "accelerators":
            names += [f"{f.name}.{sub.name}" for sub in dataclasses.fields(default)]
        else:
            names.append(f.name)
    return names


def uncommented(text: str) -> str:
    return "\n".join(line[2:] for line in text.splitlines() if line.startswith("# ") and _is_toml(line[2:]))


def _is_toml(line: str) -> bool:
    header = line.strip("[]")
    return (line in (f"[{header}]", f"[[{header}]]") and header.isidentifier()) or (
        " = " in line and line.split(" = ")[0].isidentifier()
    )


def test_init_writes_every_setting_commented_out_to_the_home_config(isolated_config: Path) -> None:
    result = invoke("init")
    target = isolated_config / "config.toml"
    assert result.exit_code == 0, result.output
    assert result.output == f"wrote {target}\n"
    text = target.read_text()
    assert tomllib.loads(text) == {}  # as written, it sets nothing
    assert load_settings() == Settings(home=isolated_config)
    for name in leaf_settings():
        key = name.rpartition(".")[2]
        assert f"# {key} = " in text or name == "accelerators", name  # that one is an example table
        assert DESCRIPTIONS.get(name), f"{name} has no description in the template"
    for table in ("[local]", "[store]", "[controller]", "[kubernetes]", "[[accelerators]]"):
        assert f"# {table}" in text


def test_uncommenting_the_file_gives_the_defaults(tmp_path: Path, isolated_config: Path) -> None:
    data = tomllib.loads(uncommented(config_template(Settings)))
    # Keys whose default is "not set" show an example value instead; the rest are the defaults themselves.
    for name, example in EXAMPLES.items():
        table, _, key = name.partition(".")
        assert data[table].pop(key) == example
    data.pop("accelerators")  # an example device, not a default
    assert load_settings(**data) == Settings()  # the built-in defaults, home included


def test_init_refuses_to_overwrite_without_force(tmp_path: Path) -> None:
    (tmp_path / "project").mkdir()
    target = tmp_path / "project" / "flytelike.toml"
    target.write_text('[local]\nresources = "strict"\n')
    refused = invoke("init", str(target))
    assert refused.exit_code == 1
    assert f"{target} exists; pass --force to overwrite it" in refused.output
    assert target.read_text() == '[local]\nresources = "strict"\n'
    forced = invoke("init", str(target), "--force")
    assert forced.exit_code == 0
    assert "# resources = " in target.read_text()
    assert [p.name for p in target.parent.iterdir()] == ["flytelike.toml"]  # no temporary file left


def test_init_into_a_folder_that_cannot_be_made_names_it(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    result = invoke("init", str(blocker / "config.toml"))
    assert result.exit_code == 1
    assert f"cannot write {blocker / 'config.toml'}" in result.output


def sources() -> dict[str, tuple[str, str]]:
    result = invoke("show", "-o", "json")
    assert result.exit_code == 0, result.output
    return {row["name"]: (json.dumps(row["value"]), row["source"]) for row in json.loads(result.output)}


def test_show_names_each_settings_source(isolated_config: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert {name: source for name, (_, source) in sources().items()} == {
        name: "FLYTELIKE_HOME" if name == "home" else "default"  # the test fixture sets FLYTELIKE_HOME
        for name in leaf_settings()
    }
    home_file = isolated_config / "config.toml"
    home_file.write_text('[local]\nworkers = 3\n[store]\nurl = "s3://b/p"\n')
    Path("flytelike.toml").write_text('[local]\nresources = "strict"\n[[accelerators]]\nname = "RTX6000"\n')
    monkeypatch.setenv("FLYTELIKE_STORE__ENDPOINT_URL", "http://127.0.0.1:9000")
    shown = sources()
    assert shown["local.workers"] == ("3", str(home_file))
    assert shown["local.resources"] == ('"strict"', "./flytelike.toml")
    assert shown["store.url"] == ('"s3://b/p"', str(home_file))
    assert shown["store.endpoint_url"] == ('"http://127.0.0.1:9000"', "FLYTELIKE_STORE__ENDPOINT_URL")
    assert shown["accelerators"][1] == "./flytelike.toml"
    assert json.loads(shown["accelerators"][0])[0]["name"] == "RTX6000"

    text = invoke("show").output
    lines = {line.split()[0]: line.split() for line in text.splitlines() if line and not line.startswith("files")}
    assert lines["local.workers"] == ["local.workers", "3", str(home_file)]
    assert lines["local.resources"][1:] == ["strict", "./flytelike.toml"]
    assert f"files read: {home_file}, flytelike.toml" in text


def test_explain_settings_takes_arguments_last() -> None:
    (entry,) = [s for s in explain_settings(local={"resources": "ignore"}) if s.name == "local.resources"]
    assert (entry.value, entry.source) == ("ignore", "argument")


def test_show_hides_a_token(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLYTELIKE_CONTROLLER__TOKEN", "s3cret")
    assert sources()["controller.token"] == ('"(set, not shown)"', "FLYTELIKE_CONTROLLER__TOKEN")
    assert "s3cret" not in invoke("show").output


def test_show_reports_a_bad_setting_as_an_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLYTELIKE_LOCAL__WORKERS", "0")
    result = invoke("show")
    assert result.exit_code == 1
    assert "local.workers='0': must be at least 1 (from environment variable FLYTELIKE_LOCAL__WORKERS)" in result.output


def test_show_hides_tokens_and_database_passwords(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLYTELIKE_SERVE__DATABASE", "postgresql://bob:s3cret@db.internal:5432/flytelike")
    monkeypatch.setenv("FLYTELIKE_SERVE__TOKEN", "abc123")
    for args in (["config", "show"], ["config", "show", "-o", "json"]):
        out = CliRunner().invoke(cli, args).output
        assert "s3cret" not in out
        assert "abc123" not in out
        assert "postgresql://bob:***@db.internal:5432/flytelike" in out
