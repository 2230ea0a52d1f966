"""``host:port`` addresses, as the controller binds them and tasks are told to reach them."""

from __future__ import annotations

from flytelike.errors import SpecError

__all__ = ["split_address"]

_ACCEPTED = "host:port, e.g. 127.0.0.1:0, 0.0.0.0:4170, [::]:4170, controller.svc:4170"


def split_address(address: str, *, field: str) -> tuple[str, int]:
    """``host:port`` (``[v6]:port`` for IPv6) as ``(host, port)``.

    Raises:
        SpecError: naming ``field``, when ``address`` is not such an address.

    Example:
        >>> split_address("[::1]:4170", field="bind")
        ('[::1]', 4170)
    """
    host, sep, port = address.rpartition(":")
    if not sep or not host or not port.isdigit() or int(port) > 65535:
        raise SpecError(field, address, "is not host:port with a port from 0 to 65535", accepted=_ACCEPTED)
    if ":" in host and not (host.startswith("[") and host.endswith("]")):
        raise SpecError(field, address, "an IPv6 host must be written in brackets", accepted=_ACCEPTED)
    return host, int(port)
