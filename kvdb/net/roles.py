"""The roles a kvdb certificate carries, weakest first: the one list ``kvdb.net.certs`` issues from,
``kvdb certs create-client --role`` offers and ``kvdb.net.auth`` enforces (no gRPC here, so the
certificate tools do not load it).

Each role allows everything a weaker one does: ``readonly < readwrite < admin < node``; ``node``
is the cluster itself (stores and PD members) and is never given to a client.
"""

from __future__ import annotations

import enum


class Role(enum.IntEnum):
    READONLY = 1
    READWRITE = 2
    ADMIN = 3
    NODE = 4

    @classmethod
    def parse(cls, text: str) -> Role:
        """``"readonly"`` -> ``Role.READONLY``; ValueError for anything else, ``"Admin"`` too: a
        certificate's OU must spell the role exactly."""
        for role in cls:
            if role.label == text:
                return role
        names = ", ".join(r.label for r in cls)
        raise ValueError(f"unknown role {text!r}; one of {names}")

    @property
    def label(self) -> str:
        """The role as certificates and messages spell it."""
        return self.name.lower()


KVDB_ORGANIZATION = "kvdb"
"""The organization (O) of every certificate ``kvdb certs`` issues; a role counts only under it
(``kvdb.net.auth``), so an OU that merely reads "admin" in another organization's certificate
grants nothing."""

CLIENT_ROLES: tuple[Role, ...] = tuple(r for r in Role if r is not Role.NODE)
"""The roles a client certificate may carry."""
