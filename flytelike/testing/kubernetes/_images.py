"""Image references as container runtimes parse them (``github.com/distribution/reference``'s grammar)."""

from __future__ import annotations

import re
from typing import Final

__all__ = ["image_problem"]

_ALNUM: Final = "[a-z0-9]+"
_SEPARATOR: Final = "(?:[._]|__|[-]+)"
_COMPONENT: Final = f"{_ALNUM}(?:{_SEPARATOR}{_ALNUM})*"
_DOMAIN_COMPONENT: Final = "(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_DOMAIN: Final = rf"(?:{_DOMAIN_COMPONENT}(?:\.{_DOMAIN_COMPONENT})*|\[[a-fA-F0-9:]+\])(?::[0-9]+)?"
_TAG: Final = r"[\w][\w.-]{0,127}"
_DIGEST: Final = "[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}"
_REFERENCE: Final = re.compile(
    rf"(?P<name>(?:{_DOMAIN}/)?{_COMPONENT}(?:/{_COMPONENT})*)(?::(?P<tag>{_TAG}))?(?:@(?P<digest>{_DIGEST}))?"
)
_NAME_MAX: Final = 255


def image_problem(image: str) -> str | None:
    """The kubelet's InvalidImageName message for ``image``, or None when it is a valid reference."""
    prefix = f'Failed to apply default image tag "{image}": couldn\'t parse image name "{image}": '
    m = _REFERENCE.fullmatch(image)
    if m is None:
        lowered = _REFERENCE.fullmatch(image.lower())
        if lowered is not None:
            # Valid but for upper case: the runtime names the repository, as normalised for Docker Hub.
            first, _, rest = image[: len(lowered["name"])].partition("/")
            if rest and ("." in first or ":" in first or first == "localhost"):
                remote = rest  # the path after a registry's domain
            else:
                remote = f"{first}/{rest}" if rest else f"library/{first}"
            return prefix + f"invalid reference format: repository name ({remote}) must be lowercase"
        return prefix + "invalid reference format"
    if len(m["name"]) > _NAME_MAX:
        return prefix + "repository name must not be more than 255 characters"
    return None
