"""Per-run bearer tokens: what the server hands out and checks, and what the client sends.

Each call carries the metadata ``authorization: Bearer <token>``. A token is made for one run when the controller
registers it, and names that run only: the server looks the token up and compares the run it belongs to with the
run the request names.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Generic, TypeVar

__all__ = ["AUTHORIZATION", "Tokens", "bearer", "presented_token"]

AUTHORIZATION = "authorization"
_SCHEME = "bearer "
_TOKEN_BYTES = 32

H = TypeVar("H")


def bearer(token: str) -> tuple[tuple[str, str], ...]:
    """The call metadata that presents ``token``."""
    return ((AUTHORIZATION, f"Bearer {token}"),)


def presented_token(metadata: Iterable[tuple[str, str | bytes]] | None) -> str | None:
    """The bearer token in a call's metadata; None when there is none (or the header has another scheme)."""
    for key, value in metadata or ():
        if key.lower() != AUTHORIZATION or not isinstance(value, str):
            continue
        if value[: len(_SCHEME)].lower() == _SCHEME:
            token = value[len(_SCHEME) :].strip()
            return token or None
    return None


@dataclass(frozen=True, slots=True)
class Grant(Generic[H]):
    """What a token gives access to: one run, served by ``handler``."""

    run_id: str
    handler: H


class Tokens(Generic[H]):
    """The tokens of the registered runs, used from the server's event loop (registering and unregistering too).

    A reader can at worst see a token a moment before or after its run is registered: each step is one dict
    operation, so it needs no lock.
    """

    def __init__(self) -> None:
        self._by_token: dict[str, Grant[H]] = {}
        self._by_run: dict[str, str] = {}

    def issue(self, run_id: str, handler: H, token: str | None = None) -> str:
        """``token`` (default: a fresh random one) for ``run_id``; one issued for it before stops working."""
        self.revoke(run_id)
        token = token or secrets.token_urlsafe(_TOKEN_BYTES)
        self._by_token[token] = Grant(run_id, handler)
        self._by_run[run_id] = token
        return token

    def revoke(self, run_id: str) -> bool:
        """Make the run's token invalid; False when the run had none."""
        token = self._by_run.pop(run_id, None)
        if token is None:
            return False
        del self._by_token[token]
        return True

    def grant(self, token: str) -> Grant[H] | None:
        """What ``token`` gives access to; None for a token never issued or revoked.

        A dict lookup rather than a constant-time comparison: tokens carry 256 random bits, so timing what a
        lookup of a guess costs tells an attacker nothing usable.
        """
        return self._by_token.get(token)

    def __contains__(self, run_id: object) -> bool:
        return run_id in self._by_run
