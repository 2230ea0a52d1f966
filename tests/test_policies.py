"""Policies: Cache, ReusePolicy, RetryPolicy (backoff and out-of-memory escalation), Timeout, Secret, durations."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

import flytelike as fl
from flytelike import Quantity, SpecError
from flytelike._policies import parse_duration

# --- durations ---


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        ("1h", 3600),
        ("1h30m", 5400),
        ("90s", 90),
        ("15m", 900),
        ("1d", 86400),
        ("1w", 604800),
        ("1.5h", 5400),
        ("250ms", 0.25),
        ("1m30s", 90),
        ("2H", 7200),
        (" 2h ", 7200),
        ("90", 90),
        ("0.5", 0.5),
        (3600, 3600),
        (0.5, 0.5),
        (timedelta(hours=1), 3600),
        (0, 0),
    ],
)
def test_parse_duration(value: object, seconds: float) -> None:
    assert parse_duration(value, field="f") == timedelta(seconds=seconds)


@pytest.mark.parametrize(
    "value",
    ["", "1h 30m", "1m30", "1y", "h", "-5", -5, -0.5, "nan", float("nan"), float("inf"), "1e400", 10**30, True,
     None, [1], "1.h", timedelta(seconds=-1)],
)  # fmt: skip
def test_bad_durations(value: object) -> None:
    with pytest.raises(SpecError) as info:
        parse_duration(value, field="Cache.ttl")
    assert info.value.field == "Cache.ttl"
    assert info.value.value is value or info.value.value == value
    assert "'1h30m'" in str(info.value.accepted)


def test_longest_duration_does_not_overflow() -> None:
    # Regression: timedelta.max went through a float, rounded up, and raised OverflowError.
    assert parse_duration(timedelta.max, field="f") == timedelta.max
    with pytest.raises(SpecError, match="longer"):
        parse_duration(f"{int(timedelta.max.total_seconds()) + 10}", field="f")


_UNIT_SECONDS = {"ms": Decimal("0.001"), "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


@given(
    st.lists(
        st.tuples(
            st.integers(0, 999),
            st.one_of(st.none(), st.integers(0, 9)),
            st.sampled_from(sorted(_UNIT_SECONDS)),
            st.sampled_from([str.lower, str.upper]),
        ),
        min_size=1,
        max_size=5,
    )
)
def test_duration_is_the_sum_of_its_parts(parts: list[tuple[int, int | None, str, object]]) -> None:
    text = ""
    expected = Decimal(0)
    for whole, tenth, unit, case in parts:
        number = f"{whole}" if tenth is None else f"{whole}.{tenth}"
        text += number + case(unit)  # type: ignore[operator]
        expected += Decimal(number) * _UNIT_SECONDS[unit]
    assert parse_duration(text, field="f") == timedelta(microseconds=int(expected * 1_000_000))


@given(st.text(max_size=30))
def test_duration_parser_raises_only_spec_errors(text: str) -> None:
    try:
        result = parse_duration(text, field="f")
    except SpecError:
        return
    assert result >= timedelta(0)


@given(st.one_of(st.integers(), st.floats(), st.timedeltas(), st.text(st.sampled_from("0123456789.eE+-_smhdw"))))
def test_duration_any_value_raises_only_spec_errors(value: object) -> None:
    try:
        result = parse_duration(value, field="f")
    except SpecError:
        return
    assert result >= timedelta(0)


# --- Cache ---


@pytest.mark.parametrize("ttl", ["1h", 3600, timedelta(hours=1), "60m", 3600.0])
def test_cache_ttl_forms(ttl: object) -> None:
    assert fl.Cache(ttl=ttl).ttl == timedelta(hours=1)  # type: ignore[arg-type]


def test_cache_ttl_compound() -> None:
    assert fl.Cache(ttl="1h30m").ttl == timedelta(minutes=90)  # type: ignore[arg-type]


@pytest.mark.parametrize("ttl", [0, "0s", timedelta(0), "0"])
def test_cache_zero_ttl_rejected(ttl: object) -> None:
    with pytest.raises(SpecError, match="zero") as info:
        fl.Cache(ttl=ttl)  # type: ignore[arg-type]
    assert info.value.field == "Cache.ttl"
    assert "enabled=False" in str(info.value.accepted)


def test_cache_defaults_and_inputs() -> None:
    c = fl.Cache()
    assert (c.ttl, c.version, c.ignored_inputs, c.enabled) == (None, None, (), True)
    assert fl.Cache(ignored_inputs=["b", "a", "a"]).ignored_inputs == ("a", "b")
    assert fl.Cache(ignored_inputs="seed").ignored_inputs == ("seed",)  # type: ignore[arg-type]
    assert fl.Cache(version="v2").version == "v2"


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"version": ""}, "Cache.version"),
        ({"version": 2}, "Cache.version"),
        ({"ignored_inputs": ["1x"]}, "Cache.ignored_inputs"),
        ({"ignored_inputs": 5}, "Cache.ignored_inputs"),
        ({"enabled": 1}, "Cache.enabled"),
    ],
)
def test_cache_validation(kwargs: dict[str, object], field: str) -> None:
    with pytest.raises(SpecError) as info:
        fl.Cache(**kwargs)  # type: ignore[arg-type]
    assert info.value.field == field


@pytest.mark.parametrize(("value", "enabled"), [(True, True), ("auto", True), (False, False), ("disable", False)])
def test_cache_of(value: object, enabled: bool) -> None:
    c = fl.Cache.of(value)
    assert c is not None
    assert c.enabled is enabled
    assert c.ttl is None


def test_cache_of_passthrough_and_rejects() -> None:
    c = fl.Cache(ttl="1h")
    assert fl.Cache.of(c) is c
    assert fl.Cache.of(None) is None
    for bad in ("x", 1, 0, "yes"):
        with pytest.raises(SpecError) as info:
            fl.Cache.of(bad, field="train.cache")
        assert info.value.field == "train.cache"


# --- ReusePolicy ---


def test_reuse_policy_forms() -> None:
    r = fl.ReusePolicy(replicas=2, concurrency=3, idle_ttl=300)
    assert (r.replicas, r.concurrency, r.idle_ttl) == (2, 3, timedelta(seconds=300))
    assert (r.min_replicas, r.max_replicas) == (2, 2)
    r = fl.ReusePolicy(replicas=(1, 4), idle_ttl="5m")
    assert (r.min_replicas, r.max_replicas, r.idle_ttl) == (1, 4, timedelta(minutes=5))
    assert fl.ReusePolicy(replicas=[2, 2]).replicas == (2, 2)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"replicas": (2, 1)}, "ReusePolicy.replicas"),
        ({"replicas": (0, 2)}, "ReusePolicy.replicas"),
        ({"replicas": (1, 2, 3)}, "ReusePolicy.replicas"),
        ({"replicas": 0}, "ReusePolicy.replicas"),
        ({"replicas": True}, "ReusePolicy.replicas"),
        ({"replicas": 1.5}, "ReusePolicy.replicas"),
        ({"concurrency": 0}, "ReusePolicy.concurrency"),
        ({"idle_ttl": "forever"}, "ReusePolicy.idle_ttl"),
    ],
)
def test_reuse_policy_validation(kwargs: dict[str, object], field: str) -> None:
    with pytest.raises(SpecError) as info:
        fl.ReusePolicy(**kwargs)  # type: ignore[arg-type]
    assert info.value.field == field
    assert info.value.accepted


# --- RetryPolicy ---


def test_retry_delays_grow_and_cap() -> None:
    r = fl.RetryPolicy(5, backoff="10s", backoff_multiplier=3, max_backoff="2m")
    assert [r.delay(n).total_seconds() for n in range(6)] == [0, 10, 30, 90, 120, 120]
    assert fl.RetryPolicy(3, backoff=5, backoff_multiplier=1).delay(3) == timedelta(seconds=5)
    assert fl.RetryPolicy(3).delay(2) == timedelta(0)  # no backoff by default


@given(
    st.integers(1, 600),
    st.sampled_from([1, 1.5, 2, 3]),
    st.integers(1, 3600),
    st.integers(1, 12),
)
def test_retry_delay_formula(backoff: int, multiplier: float, cap: int, retry: int) -> None:
    r = fl.RetryPolicy(12, backoff=backoff, backoff_multiplier=multiplier, max_backoff=cap)
    expected = min(backoff * multiplier ** (retry - 1), cap)
    assert abs(r.delay(retry).total_seconds() - expected) < 1e-6


def test_oom_escalation_grows_memory_up_to_the_cap() -> None:
    r = fl.RetryPolicy(3, oom_memory_multiplier=1.5, oom_memory_limit="8Gi")
    steps = [Quantity.parse("4Gi")]
    for _ in range(3):
        steps.append(r.escalate(steps[-1]))
    assert [str(q) for q in steps] == ["4Gi", "6Gi", "8Gi", "8Gi"]


def test_oom_escalation_without_a_cap_and_exactness() -> None:
    assert str(fl.RetryPolicy(1, oom_memory_multiplier=2).escalate(Quantity.parse("1000Mi"))) == "2000Mi"
    assert str(fl.RetryPolicy(1, oom_memory_multiplier=1.1).escalate(Quantity.parse("1G"))) == "1100M"
    grown = fl.RetryPolicy(1, oom_memory_multiplier=1.5).escalate(Quantity.parse("3"))
    assert grown.value == 5  # rounded up to a whole byte
    assert fl.RetryPolicy(1).escalate(Quantity.parse("1G")) == Quantity.parse("1G")


def test_oom_escalation_never_shrinks_below_the_current_memory() -> None:
    r = fl.RetryPolicy(1, oom_memory_multiplier=2, oom_memory_limit="1Gi")
    assert r.escalate(Quantity.parse("2Gi")) == Quantity.parse("2Gi")


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"oom_memory_limit": "8Gi"}, "RetryPolicy.oom_memory_limit"),
        ({"oom_memory_multiplier": 2, "oom_memory_limit": "1.5"}, "RetryPolicy.oom_memory_limit"),
        ({"oom_memory_multiplier": 2, "oom_memory_limit": 5}, "RetryPolicy.oom_memory_limit"),
        ({"oom_memory_multiplier": 2, "oom_memory_limit": "8GB"}, "RetryPolicy.oom_memory_limit"),
        ({"oom_memory_multiplier": 1}, "RetryPolicy.oom_memory_multiplier"),
        ({"oom_memory_multiplier": float("inf")}, "RetryPolicy.oom_memory_multiplier"),
        ({"count": -1}, "RetryPolicy.count"),
        ({"count": True}, "RetryPolicy.count"),
        ({"backoff_multiplier": 0.5}, "RetryPolicy.backoff_multiplier"),
        ({"backoff": "soon"}, "RetryPolicy.backoff"),
    ],
)
def test_retry_policy_validation(kwargs: dict[str, object], field: str) -> None:
    with pytest.raises(SpecError) as info:
        fl.RetryPolicy(**kwargs)  # type: ignore[arg-type]
    assert info.value.field == field
    assert info.value.accepted


def test_oom_limit_without_multiplier_names_the_fix() -> None:
    with pytest.raises(SpecError, match="oom_memory_multiplier"):
        fl.RetryPolicy(2, oom_memory_limit="8Gi")


def test_retry_policy_of() -> None:
    assert fl.RetryPolicy.of(3) == fl.RetryPolicy(3)
    assert fl.RetryPolicy.of(0) == fl.RetryPolicy(0)
    assert fl.RetryPolicy.of(None) is None
    for bad in (-1, "3", True, 1.5):
        with pytest.raises(SpecError):
            fl.RetryPolicy.of(bad)


# --- Timeout ---


@pytest.mark.parametrize("value", ["2h", 7200, timedelta(hours=2), "120m", fl.Timeout("2h")])
def test_timeout_forms(value: object) -> None:
    t = fl.Timeout.of(value)
    assert t is not None
    assert t.max_runtime == timedelta(hours=2)
    assert t.max_queued_time is None


def test_timeout_queued_time() -> None:
    t = fl.Timeout("2h", max_queued_time="1h")  # type: ignore[arg-type]
    assert t.max_queued_time == timedelta(hours=1)


@pytest.mark.parametrize("value", [0, "0", "soon", -1, True])
def test_timeout_rejected(value: object) -> None:
    with pytest.raises(SpecError) as info:
        fl.Timeout.of(value, field="train.timeout")
    assert info.value.field == "train.timeout"
    assert info.value.accepted


# --- Secret ---


@pytest.mark.parametrize(
    ("key", "env_var"), [("hf-token", "HF_TOKEN"), ("a.b-c", "A_B_C"), ("API_KEY", "API_KEY"), ("x", "X")]
)
def test_secret_env_var_defaults_from_the_key(key: str, env_var: str) -> None:
    assert fl.Secret(key).env_var == env_var


def test_secret_as_file() -> None:
    s = fl.Secret("tls-cert", group="certs", mount_path="/etc/tls/cert.pem")
    assert (s.env_var, s.mount_path, s.group) == (None, "/etc/tls/cert.pem", "certs")
    assert fl.Secret("k", env_var="MY_VAR").env_var == "MY_VAR"


def test_secret_env_var_and_mount_path_rejected() -> None:
    with pytest.raises(SpecError) as info:
        fl.Secret("k", env_var="X", mount_path="/x")
    assert info.value.field == "Secret.env_var"
    assert info.value.accepted


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"key": ""}, "Secret.key"),
        ({"key": "bad key"}, "Secret.key"),
        ({"key": 5}, "Secret.key"),
        ({"key": "k", "group": "bad group"}, "Secret.group"),
        ({"key": "k", "mount_path": "relative"}, "Secret.mount_path"),
        ({"key": "k", "env_var": "1X"}, "Secret.env_var"),
        ({"key": "9key"}, "Secret.env_var"),
    ],
)
def test_secret_validation(kwargs: dict[str, object], field: str) -> None:
    with pytest.raises(SpecError) as info:
        fl.Secret(**kwargs)  # type: ignore[arg-type]
    assert info.value.field == field


def test_secret_of() -> None:
    assert fl.Secret.of("hf-token") == fl.Secret("hf-token")
    s = fl.Secret("x")
    assert fl.Secret.of(s) is s
    with pytest.raises(SpecError):
        fl.Secret.of(5)
