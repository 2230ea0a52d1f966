"""Image references as the emulator's kubelet checks them (the distribution reference grammar)."""

from __future__ import annotations

import pytest

from flytelike.testing.kubernetes._images import image_problem


@pytest.mark.parametrize(
    "image",
    [
        "python:3.11",
        "ghcr.io/acme/train:1.4",
        "localhost:5000/a/b",
        "registry.example.com/team/app@sha256:" + "a" * 64,
        "a__b/c-d.e:tag_1",
    ],
)
def test_valid_references(image: str) -> None:
    assert image_problem(image) is None


@pytest.mark.parametrize(
    ("image", "ending"),
    [
        ("bad image", "invalid reference format"),
        ("a::b", "invalid reference format"),
        ("x:-tag", "invalid reference format"),
        ("Foo", "invalid reference format: repository name (library/Foo) must be lowercase"),
        ("ghcr.io/Acme/x:1", "invalid reference format: repository name (Acme/x) must be lowercase"),
    ],
)
def test_invalid_references_get_the_runtimes_message(image: str, ending: str) -> None:
    problem = image_problem(image)
    assert problem == f'Failed to apply default image tag "{image}": couldn\'t parse image name "{image}": {ending}'
