"""Parsing ``--with NAME:key=value,...`` into platform objects."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

import flytelike as fl
from flytelike import SpecError, parse_platform_spec


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("batch:cpu=8,memory=32768,gpu=1,queue=q", fl.Batch(cpu=8, memory=32768, gpu=1, queue="q")),
        ("batch:cpu=8,memory=32768,gpu=1", fl.Batch(cpu=8, memory=32768, gpu=1)),
        ("kubernetes", fl.Kubernetes()),
        ("KUBERNETES", fl.Kubernetes()),
        (" batch ", fl.Batch()),
        ("batch:", fl.Batch()),
        ("local", fl.Local()),
        ("local:process=true", fl.Local(process=True)),
        ('batch:tags={"a":"b","c":"d"}', fl.Batch(tags={"a": "b", "c": "d"})),
        ('batch:tags={"a":"b","c":"d"},queue=q', fl.Batch(tags={"a": "b", "c": "d"}, queue="q")),
        ('batch:log_driver=awslogs,log_options=["a:b"]', fl.Batch(log_driver="awslogs", log_options=["a:b"])),
        (
            'batch:log_options=["a:b","c:d"],log_driver=awslogs',
            fl.Batch(log_driver="awslogs", log_options=["a:b", "c:d"]),
        ),
        ('batch:queue="my queue"', fl.Batch(queue="my queue")),
        ('batch:queue="a,b"', fl.Batch(queue="a,b")),
        ("batch:queue='a,b'", fl.Batch(queue="a,b")),
        ("batch:cpu=0.5", fl.Batch(cpu=0.5)),
        ("batch:cpu=1.5,memory=16Gi", fl.Batch(cpu=1.5, memory="16Gi")),
        ('batch:memory="16Gi"', fl.Batch(memory="16Gi")),
        ("batch:cpu=500m", fl.Batch(cpu="500m")),
        ("batch:use_tmpfs=true,tmpfs_path=/scratch", fl.Batch(use_tmpfs=True, tmpfs_path="/scratch")),
        (
            "kubernetes:namespace=ml,node_selector=pool=gpu",
            fl.Kubernetes(namespace="ml", node_selector={"pool": "gpu"}),
        ),
        (
            'kubernetes:tolerations=[{"key":"k","operator":"Exists"}]',
            fl.Kubernetes(tolerations=[{"key": "k", "operator": "Exists"}]),
        ),
        ('kubernetes:labels={"team":"ml"},memory=16000', fl.Kubernetes(labels={"team": "ml"}, memory=16000)),
    ],
)
def test_parse(spec: str, expected: fl.Platform) -> None:
    assert parse_platform_spec(spec) == expected


def test_parsed_batch_resources_count_mib() -> None:
    r = parse_platform_spec("batch:cpu=8,memory=32768,gpu=1,queue=q").resources()
    assert repr(r) == "Resources(cpu='8', memory='32Gi', gpu=1)"


def test_float_values_stay_numbers() -> None:
    p = parse_platform_spec("batch:cpu=0.25")
    assert isinstance(p, fl.Batch)
    assert p.cpu == 0.25
    r = p.resources()
    assert r.cpu is not None
    assert str(r.cpu.request) == "250m"


def test_unknown_attribute_lists_accepted_ones() -> None:
    with pytest.raises(SpecError) as info:
        parse_platform_spec("batch:cpu=1,bogus=2")
    e = info.value
    assert e.field == "--with"
    assert "'bogus'" in e.problem
    assert e.accepted is not None
    assert set(e.accepted.split(", ")) == set(fl.Batch.field_names())
    with pytest.raises(SpecError) as info:
        parse_platform_spec("kubernetes:queue=q")
    assert "namespace" in str(info.value.accepted)


@pytest.mark.parametrize("spec", ["slurm", "slurm:cpu=1", ":", ":cpu=1", "", "   ", "batchx:cpu=1"])
def test_unknown_platform_lists_platforms(spec: str) -> None:
    with pytest.raises(SpecError) as info:
        parse_platform_spec(spec)
    assert info.value.accepted == "batch, kubernetes, local"


@pytest.mark.parametrize(
    ("spec", "problem"),
    [
        ("batch:cpu", "not key=value"),
        ("batch:=1", "not key=value"),
        ("batch:cpu=1,,queue=q", "not key=value"),
        ("batch:cpu=1,", "not key=value"),
        ("batch:cpu=1,cpu=2", "given twice"),
        ("batch:tags={", "unclosed"),
        ("batch:tags=}", "unbalanced"),
        ("batch:tags={]", "unbalanced"),
        ('batch:queue="unterminated', "unclosed"),
        ("batch:log_options=5", "not iterable"),
    ],
)
def test_malformed_specs(spec: str, problem: str) -> None:
    with pytest.raises(SpecError, match=problem) as info:
        parse_platform_spec(spec)
    assert info.value.field == "--with"
    assert info.value.accepted


@pytest.mark.parametrize(
    ("spec", "field"),
    [
        ("batch:cpu=-1", "--with Batch.cpu"),
        ("batch:swappiness=101", "--with Batch.swappiness"),
        ("batch:queue=", "--with Batch.queue"),
        ("batch:tags=[1]", "--with Batch.tags"),
        ("batch:cpu=NaN", "--with Batch.cpu"),
        ('kubernetes:labels={"a":[1]}', "--with Kubernetes.labels['a']"),
        ("kubernetes:namespace=Bad_NS", "--with Kubernetes.namespace"),
        ('kubernetes:tolerations=[{"key": [1]}]', "--with Toleration.key"),
    ],
)
def test_platform_errors_are_prefixed_with_the_option(spec: str, field: str) -> None:
    with pytest.raises(SpecError) as info:
        parse_platform_spec(spec)
    assert info.value.field == field


def test_deeply_nested_value_is_a_spec_error() -> None:
    # Regression: json.loads raised RecursionError straight through the parser.
    with pytest.raises(SpecError):
        parse_platform_spec("batch:tags=" + "[" * 5000 + "]" * 5000)


def test_very_long_number_is_a_spec_error_or_value() -> None:
    # Regression: json refuses ints over 4300 digits and the string then reached an inexact Decimal modulo.
    # Such a cpu is larger than any machine (Kubernetes and the run records count millicores in int64).
    with pytest.raises(SpecError, match="larger than any machine"):
        parse_platform_spec("batch:cpu=" + "9" * 5000)
    assert isinstance(parse_platform_spec("batch:cpu=" + "9" * 15), fl.Batch)
    with pytest.raises(SpecError):
        parse_platform_spec("batch:cpu=" + "9" * 5000 + ".0001")


def test_non_string_spec() -> None:
    with pytest.raises(SpecError):
        parse_platform_spec(None)  # type: ignore[arg-type]


_SPEC_ALPHABET = st.sampled_from(list("0123456789.:,=[]{}\"'\\ abcdegiklmnopqrstuwxyzAGKMT-+_/"))
_KEYS = st.sampled_from([*fl.Batch.field_names(), *fl.Kubernetes.field_names(), "process", "bogus", ""])
_VALUES = st.one_of(
    st.text(_SPEC_ALPHABET, max_size=12),
    st.integers(-5, 100_000).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.sampled_from(['{"a":"b","c":"d"}', '["a:b"]', "true", "null", '"x,y"', "16Gi", "[[1]]", '{"k": {}}']),
)


@given(st.text(max_size=60))
def test_fuzz_arbitrary_text(text: str) -> None:
    try:
        result = parse_platform_spec(text)
    except SpecError:
        return
    assert isinstance(result, fl.Platform)


@given(
    st.sampled_from(["batch", "kubernetes", "local", "Batch"]),
    st.lists(st.tuples(_KEYS, _VALUES), max_size=4),
)
def test_fuzz_structured_specs(platform: str, pairs: list[tuple[str, str]]) -> None:
    spec = f"{platform}:" + ",".join(f"{k}={v}" for k, v in pairs)
    try:
        result = parse_platform_spec(spec)
    except SpecError:
        return
    assert isinstance(result, fl.Platform)
    assert result.name == platform.lower()
