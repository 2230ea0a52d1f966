"""Settings: $FLYTELIKE_HOME/config.toml, ./flytelike.toml, FLYTELIKE_* variables and explicit overrides."""

from __future__ import annotations

import dataclasses
import doctest
import pickle
from pathlib import Path

import pytest

from flytelike import DeviceClass, DeviceSpec, SpecError, _config
from flytelike._config import AcceleratorEntry, LocalSettings, Settings, default_settings, load_settings
from flytelike._config._schema import Sources, at_least, resolve, variable_names
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
    with pytest.raises(dataclasses.FrozenInstanceError):
        s.local = s.local  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        s.local.resources = "strict"  # type: ignore[misc]
    with pytest.raises(AttributeError):
        s.catalog._specs = ()  # type: ignore[misc]


def test_a_mistyped_flytelike_variable_is_an_error_naming_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLYTELIKE_LOCAL__RESOURCE", "strict")
    with pytest.raises(ConfigError) as e:
        load_settings()
    assert "FLYTELIKE_LOCAL__RESOURCE" in str(e.value)
    assert "FLYTELIKE_LOCAL__RESOURCES" in (e.value.accepted or "")
    monkeypatch.delenv("FLYTELIKE_LOCAL__RESOURCE")
    monkeypatch.setenv("FLYTELIKE_LOCAL__RESOURCES", "strict")
    assert load_settings().local.resources == "strict"


# --- sources named in errors --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("source", "where"),
    [
        ("home", "config.toml"),
        ("project", "./flytelike.toml"),
        ("env", "environment variable FLYTELIKE_LOCAL__WORKERS"),
        ("override", "given explicitly"),
    ],
)
def test_errors_name_the_source_of_the_value(
    source: str, where: str, isolated_config: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    kwargs = {}
    if source == "home":
        write_home(isolated_config, "[local]\nworkers = -2\n")
    elif source == "project":
        write_project("[local]\nworkers = -2\n")
    elif source == "env":
        monkeypatch.setenv("FLYTELIKE_LOCAL__WORKERS", "-2")
    else:
        kwargs = {"local": {"workers": -2}}
    if source != "project":
        write_project('[local]\nresources = "strict"\n')  # another key of the table, from another source
    with pytest.raises(ConfigError) as info:
        load_settings(**kwargs)
    e = info.value
    assert e.field == "local.workers"
    assert e.value in (-2, "-2")
    assert where in e.problem
    assert e.accepted == "a whole number >= 1, e.g. 2"
    assert str(e).startswith("local.workers=")


def test_the_source_of_a_value_is_the_one_that_set_it_last(monkeypatch: pytest.MonkeyPatch) -> None:
    write_project('[local]\nresources = "bogus"\nworkers = 2\n')
    monkeypatch.setenv("FLYTELIKE_LOCAL__WORKERS", "3")
    with pytest.raises(ConfigError) as info:
        load_settings()
    assert info.value.field == "local.resources"
    assert "./flytelike.toml" in info.value.problem
    monkeypatch.setenv("FLYTELIKE_LOCAL__RESOURCES", "also-bogus")
    with pytest.raises(ConfigError, match="FLYTELIKE_LOCAL__RESOURCES"):
        load_settings()


def test_unknown_keys_list_what_is_accepted() -> None:
    write_project('[local]\nresourcez = "strict"\n')
    with pytest.raises(ConfigError) as info:
        load_settings()
    assert info.value.accepted == "resources, workers"
    assert "./flytelike.toml" in info.value.problem


def test_a_missing_required_key_is_named() -> None:
    write_project('[[accelerators]]\nname = "X1"\n\n[[accelerators]]\nmax_quantity = 2\n')
    with pytest.raises(ConfigError) as info:
        load_settings()
    assert info.value.field == "accelerators.1.name"
    assert "required" in info.value.problem


@pytest.mark.parametrize(
    ("entry", "where"),
    [
        ('name = "bad!"\n', "accelerators.0.name"),
        ('name = "X1"\npartitions = ["a b"]\n', "accelerators.0.partitions"),
        ('name = "X1"\npartitions = "1g.5gb"\n', "accelerators.0.partitions"),
        ('name = "X1"\nmax_quantity = 1.5\n', "accelerators.0.max_quantity"),
        ("name = 3\n", "accelerators.0.name"),
    ],
)
def test_accelerator_entries_are_checked_like_register_device(entry: str, where: str) -> None:
    write_project("[[accelerators]]\n" + entry)
    with pytest.raises(ConfigError) as info:
        load_settings()
    assert info.value.field == where


def test_a_table_that_is_not_a_table() -> None:
    write_project("local = 3\n")
    with pytest.raises(ConfigError) as info:
        load_settings()
    assert (info.value.field, info.value.value) == ("local", 3)
    assert info.value.accepted == "a table with the keys resources, workers"


# --- environment variables ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("text", "workers"), [("2", 2), (" 7 ", 7), ("+3", 3)])
def test_numbers_from_variables(text: str, workers: int, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLYTELIKE_LOCAL__WORKERS", text)
    assert load_settings().local.workers == workers


@pytest.mark.parametrize("text", ["two", "2.5", "0x2", "1e3"])
def test_bad_numbers_from_variables(text: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLYTELIKE_LOCAL__WORKERS", text)
    with pytest.raises(ConfigError) as info:
        load_settings()
    assert (info.value.field, info.value.value) == ("local.workers", text)
    assert "FLYTELIKE_LOCAL__WORKERS" in info.value.problem


def test_strings_for_numbers_in_files_too() -> None:
    write_project('[local]\nworkers = "4"\n')
    assert load_settings().local.workers == 4


def test_a_table_variable_is_json_and_its_keys_win(monkeypatch: pytest.MonkeyPatch) -> None:
    write_project("[local]\nworkers = 9\n")
    monkeypatch.setenv("FLYTELIKE_LOCAL", '{"resources": "strict", "workers": 2}')
    monkeypatch.setenv("FLYTELIKE_LOCAL__WORKERS", "5")
    assert load_settings().local == LocalSettings(resources="strict", workers=5)


def test_a_list_variable_is_json(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLYTELIKE_ACCELERATORS", '[{"name": "RTX6000", "max_quantity": 4, "aliases": ["RTX 6000"]}]')
    s = load_settings()
    assert s.accelerators == (AcceleratorEntry("RTX6000", max_quantity=4, aliases=("RTX 6000",)),)
    assert s.catalog.get("rtx 6000") == DeviceSpec("RTX6000", DeviceClass.NVIDIA_GPU, 4, (), ("RTX 6000",))


def test_json_that_does_not_parse_names_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLYTELIKE_ACCELERATORS", "[{")
    with pytest.raises(ConfigError) as info:
        load_settings()
    assert info.value.field == "environment variable FLYTELIKE_ACCELERATORS"
    assert "JSON" in info.value.problem


def test_an_empty_variable_is_not_set(isolated_config: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_project("[local]\nworkers = 3\n")
    monkeypatch.setenv("FLYTELIKE_LOCAL__WORKERS", "")
    assert load_settings().local.workers == 3


def test_home_expands_the_user_directory(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("FLYTELIKE_HOME", "~/elsewhere")
    assert load_settings().home == tmp_path / "elsewhere"
    monkeypatch.delenv("FLYTELIKE_HOME")
    assert load_settings().home == tmp_path / ".flytelike"


def test_home_set_in_a_file_moves_the_records(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("FLYTELIKE_HOME")
    write_project(f'home = "{tmp_path / "records"}"\n')
    s = load_settings()
    assert s.home == tmp_path / "records"
    assert s.db_path == tmp_path / "records" / "runs.sqlite3"
    monkeypatch.setenv("FLYTELIKE_HOME", str(tmp_path / "env"))  # the variable wins over the file
    assert load_settings().home == tmp_path / "env"


def test_lowercase_variables_are_read_and_checked_too(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("flytelike_local__resources", "strict")
    assert load_settings().local.resources == "strict"
    monkeypatch.setenv("flytelike_local__resourcez", "strict")
    with pytest.raises(ConfigError, match="flytelike_local__resourcez"):
        load_settings()


def test_variable_names_follow_the_schema() -> None:
    names = variable_names(Settings, "FLYTELIKE_")
    assert {
        "FLYTELIKE_HOME",
        "FLYTELIKE_LOCAL",
        "FLYTELIKE_LOCAL__RESOURCES",
        "FLYTELIKE_LOCAL__WORKERS",
        "FLYTELIKE_ACCELERATORS",
        "FLYTELIKE_STORE",
        "FLYTELIKE_STORE__URL",
        "FLYTELIKE_STORE__ENDPOINT_URL",
        "FLYTELIKE_CONTROLLER__BIND",
        "FLYTELIKE_CONTROLLER__ADDRESS",
        "FLYTELIKE_CONTROLLER__TOKEN",
        "FLYTELIKE_KUBERNETES__KUBECONFIG",
        "FLYTELIKE_KUBERNETES__ENTRYPOINT",
        "FLYTELIKE_KUBERNETES__PENDING_TIMEOUT",
    } <= names
    # Every section is one variable (a JSON table) and one per key; nothing else.
    expected = set()
    for f in dataclasses.fields(Settings):
        if not f.init:
            continue
        name = f"FLYTELIKE_{f.name.upper()}"
        expected.add(name)
        section = f.default_factory() if f.default_factory is not dataclasses.MISSING else None
        if dataclasses.is_dataclass(section):
            expected |= {f"{name}__{k.name.upper()}" for k in dataclasses.fields(section)}
    assert names == expected


# --- overrides --------------------------------------------------------------------------------------------------


def test_overrides_merge_key_by_key_and_accept_section_values() -> None:
    write_project('[local]\nresources = "strict"\nworkers = 2\n')
    assert load_settings(local={"workers": 4}).local == LocalSettings("strict", 4)
    assert load_settings(local=LocalSettings(workers=3)).local == LocalSettings("check", 3)  # a whole value
    entry = AcceleratorEntry("X1", DeviceClass.AMD_GPU)
    assert load_settings(accelerators=[entry]).accelerators == (entry,)


def test_overrides_are_not_changed() -> None:
    write_project("[local]\nworkers = 2\n")
    local = {"resources": "strict"}
    load_settings(local=local)
    assert local == {"resources": "strict"}


def test_unknown_override() -> None:
    with pytest.raises(ConfigError) as info:
        load_settings(lokal={})
    assert info.value.field == "lokal"
    assert "given explicitly" in info.value.problem


# --- the settings value ---------------------------------------------------------------------------------------


def test_settings_are_values() -> None:
    write_project('[local]\nworkers = 2\n\n[[accelerators]]\nname = "X1"\n')
    a, b = load_settings(), load_settings()
    assert a == b
    assert hash(a) == hash(b)
    assert pickle.loads(pickle.dumps(a)) == a
    assert pickle.loads(pickle.dumps(a)).catalog == a.catalog
    assert "X1" in a.catalog
    assert Settings().catalog == Settings(accelerators=()).catalog  # built without the loader, too


def test_default_settings_are_resolved_once_and_rechecked_on_request(monkeypatch: pytest.MonkeyPatch) -> None:
    first = default_settings()
    assert default_settings() is first
    assert default_settings(recheck=True) is first  # nothing changed
    write_project("[local]\nworkers = 2\n")
    assert default_settings() is first  # not looked at again ...
    second = default_settings(recheck=True)  # ... unless asked
    assert second.local.workers == 2
    monkeypatch.setenv("FLYTELIKE_LOCAL__WORKERS", "3")
    assert default_settings(recheck=True).local.workers == 3


def test_the_settings_module_examples_run() -> None:
    result = doctest.testmod(_config)
    assert result.attempted > 0
    assert result.failed == 0


# --- the loader is generic: a new section is a dataclass ------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class _Store:
    url: str | None = None
    verify: bool = True
    timeout: float = dataclasses.field(default=30.0, metadata=at_least(0))
    cache_dir: Path | None = None
    labels: dict[str, str] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(frozen=True)
class _Future:
    store: _Store = dataclasses.field(default_factory=_Store)


def _resolve_future(files: list[Path], env: dict[str, str], **overrides: object) -> _Future:
    sources = Sources()
    for f in files:
        sources.add_toml_file(f)
    sources.add_environment(_Future, env, "FLYTELIKE_")
    sources.add_overrides(overrides)
    return resolve(_Future, sources)


def test_a_new_section_gets_keys_variables_and_coercion(tmp_path: Path) -> None:
    toml = tmp_path / "c.toml"
    toml.write_text('[store]\nurl = "s3://b/p"\ntimeout = 5\n[store.labels]\nteam = "ml"\n')
    assert variable_names(_Future, "FLYTELIKE_") >= {"FLYTELIKE_STORE", "FLYTELIKE_STORE__VERIFY"}
    env = {"FLYTELIKE_STORE__VERIFY": "off", "FLYTELIKE_STORE__CACHE_DIR": "~/c", "FLYTELIKE_STORE__TIMEOUT": "2.5"}
    s = _resolve_future([toml], env).store
    assert (s.url, s.verify, s.timeout) == ("s3://b/p", False, 2.5)
    assert s.cache_dir == Path("~/c").expanduser()
    assert s.labels == {"team": "ml"}
    with pytest.raises(TypeError):
        s.labels["x"] = "y"  # type: ignore[index]
    assert _resolve_future([], {"FLYTELIKE_STORE__LABELS": '{"a": "b"}'}).store.labels == {"a": "b"}


@pytest.mark.parametrize(
    ("store", "field", "accepted"),
    [
        ({"verify": "maybe"}, "store.verify", "true or false"),
        ({"timeout": -1}, "store.timeout", "a number >= 0"),
        ({"timeout": "soon"}, "store.timeout", "a number >= 0"),
        ({"labels": {"a": 1}}, "store.labels.a", "a string"),
        ({"url": 3}, "store.url", "a string"),
    ],
)
def test_a_new_sections_errors(store: dict[str, object], field: str, accepted: str) -> None:
    with pytest.raises(ConfigError) as info:
        _resolve_future([], {}, store=store)
    assert info.value.field == field
    assert info.value.accepted == accepted
