"""Settings: $FLYTELIKE_HOME/config.toml, ./flytelike.toml, FLYTELIKE_* variables and explicit overrides."""

from __future__ import annotations

from pathlib import Path

import pydantic
import pytest

from flytelike import DeviceClass, DeviceSpec, SpecError
from flytelike._config import load_settings
from flytelike.errors import ConfigError


def write_home(home: Path, text: str) -> None:
    (home / "config.toml").write_text(text)


def write_project(text: str) -> None:
    Path("flytelike.toml").write_text(text)  # the autouse fixture chdirs into a fresh directory


def test_defaults(isolated_config: Path) -> None:
    s = load_settings()
    assert s.local.resources == "check"
    assert s.local.workers is None
    assert s.accelerators == ()
    assert s.home == isolated_config
    assert s.db_path.parent == isolated_config
    assert s.store_path.parent == isolated_config


def test_reads_the_home_file(isolated_config: Path) -> None:
    write_home(isolated_config, '[local]\nresources = "ignore"\nworkers = 2\n')
    s = load_settings()
    assert (s.local.resources, s.local.workers) == ("ignore", 2)


def test_reads_the_project_file() -> None:
    write_project('[local]\nresources = "strict"\n')
    assert load_settings().local.resources == "strict"


def test_project_file_wins_key_by_key(isolated_config: Path) -> None:
    write_home(isolated_config, '[local]\nresources = "ignore"\nworkers = 2\n')
    write_project('[local]\nresources = "strict"\n')
    s = load_settings()
    assert s.local.resources == "strict"  # the project wins ...
    assert s.local.workers == 2  # ... without dropping what only the home file sets


def test_project_file_of_another_directory_is_not_read(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_project('[local]\nresources = "strict"\n')
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    assert load_settings().local.resources == "check"


def test_home_comes_from_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    other = tmp_path / "other-home"
    other.mkdir()
    write_home(other, "[local]\nworkers = 7\n")
    monkeypatch.setenv("FLYTELIKE_HOME", str(other))
    s = load_settings()
    assert s.home == other
    assert s.local.workers == 7


def test_environment_wins_over_files(isolated_config: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_home(isolated_config, '[local]\nresources = "ignore"\nworkers = 2\n')
    write_project('[local]\nresources = "check"\n')
    monkeypatch.setenv("FLYTELIKE_LOCAL__RESOURCES", "strict")
    s = load_settings()
    assert s.local.resources == "strict"
    assert s.local.workers == 2


def test_explicit_overrides_win_over_everything(monkeypatch: pytest.MonkeyPatch) -> None:
    write_project('[local]\nresources = "check"\n')
    monkeypatch.setenv("FLYTELIKE_LOCAL__RESOURCES", "strict")
    assert load_settings(local={"resources": "ignore"}).local.resources == "ignore"


@pytest.mark.parametrize(
    ("source", "where", "value"),
    [
        ("project", "local.resources", "bogus"),
        ("home", "local.resources", "bogus"),
        ("env", "local.resources", "bogus"),
        ("project", "local.workers", 0),
    ],
)
def test_invalid_values_name_the_setting(
    source: str, where: str, value: object, isolated_config: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    section, key = where.split(".")
    text = f"[{section}]\n{key} = {value!r}\n".replace("'", '"')
    if source == "project":
        write_project(text)
    elif source == "home":
        write_home(isolated_config, text)
    else:
        monkeypatch.setenv(f"FLYTELIKE_{section.upper()}__{key.upper()}", str(value))
    with pytest.raises(ConfigError) as info:
        load_settings()
    e = info.value
    assert isinstance(e, SpecError)
    assert isinstance(e, ValueError)
    assert where in e.field
    assert where in str(e)
    assert str(value) in str(e.value)
    assert e.accepted


@pytest.mark.parametrize(
    ("text", "where"),
    [
        ("bogus = 1\n", "bogus"),
        ('[local]\nresourcez = "strict"\n', "local.resourcez"),
        ('[remote]\nurl = "x"\n', "remote"),
        ('[[accelerators]]\nname = "X1"\nvendor = "acme"\n', "accelerators.0.vendor"),
    ],
)
def test_unknown_keys_rejected(text: str, where: str) -> None:
    write_project(text)
    with pytest.raises(ConfigError) as info:
        load_settings()
    assert where in info.value.field


def test_malformed_toml_names_the_file() -> None:
    write_project("local = [\n")
    with pytest.raises(ConfigError) as info:
        load_settings()
    assert "flytelike.toml" in info.value.field
    assert "TOML" in info.value.problem


def test_accelerator_entries(isolated_config: Path) -> None:
    write_project(
        '[[accelerators]]\nname = "RTX4090"\nmax_quantity = 4\n\n'
        '[[accelerators]]\nname = "Trn3"\ndevice_class = "amazon-neuron"\nmax_quantity = 16\naliases = ["trainium3"]\n'
    )
    specs = load_settings().accelerator_specs()
    assert specs == [
        DeviceSpec("RTX4090", DeviceClass.NVIDIA_GPU, 4, (), ()),
        DeviceSpec("Trn3", DeviceClass.AMAZON_NEURON, 16, (), ("trainium3",)),
    ]


@pytest.mark.parametrize(
    ("entry", "where"),
    [
        ('name = "X1"\ndevice_class = "fpga"\n', "accelerators.0.device_class"),
        ('name = "X1"\nmax_quantity = 0\n', "accelerators.0.max_quantity"),
        ("max_quantity = 2\n", "accelerators.0.name"),
    ],
)
def test_bad_accelerator_entries(entry: str, where: str) -> None:
    write_project("[[accelerators]]\n" + entry)
    with pytest.raises(ConfigError) as info:
        load_settings()
    assert where in info.value.field


def test_settings_are_frozen() -> None:
    s = load_settings()
    with pytest.raises(pydantic.ValidationError):
        s.local = s.local  # type: ignore[misc]
    with pytest.raises(pydantic.ValidationError):
        s.local.resources = "strict"  # type: ignore[misc]


def test_a_mistyped_flytelike_variable_is_an_error_naming_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLYTELIKE_LOCAL__RESOURCE", "strict")
    with pytest.raises(ConfigError) as e:
        load_settings()
    assert "FLYTELIKE_LOCAL__RESOURCE" in str(e.value)
    assert "FLYTELIKE_LOCAL__RESOURCES" in (e.value.accepted or "")
    monkeypatch.delenv("FLYTELIKE_LOCAL__RESOURCE")
    monkeypatch.setenv("FLYTELIKE_LOCAL__RESOURCES", "strict")
    assert load_settings().local.resources == "strict"
