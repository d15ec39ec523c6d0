"""Two roles, checked by the functions behind the pages (the pages only hide what a role may not do).

- ``annotator``: review, edit, decide, regenerate steps, freeze dataset versions.
- ``admin``: also Settings, start/cancel/resume train, eval and generate jobs, import from a typed
  path, send eval failures to Review.

A role is given only to an identity that was proven (see store.access.login): a ``[passwords]`` user
(role from ``[roles]`` in secrets, default annotator) or the admin secret ``$COI_ADMIN_PASSWORD``.
A name typed with the shared password or token is always an annotator. Local use with no secret on
loopback is one admin.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from store.errors import CoiError

ADMIN, ANNOTATOR = "admin", "annotator"
ROLES = (ADMIN, ANNOTATOR)
_RANK = {ANNOTATOR: 0, ADMIN: 1}


@dataclass(frozen=True)
class Actor:
    """Who is acting: the reviewer name and the role it was given at login."""

    name: str
    role: str = ANNOTATOR

    def __post_init__(self) -> None:
        if self.role not in ROLES:
            raise CoiError(f"Unknown role {self.role!r}", f"Use one of: {', '.join(ROLES)}.")

    @property
    def is_admin(self) -> bool:
        return self.role == ADMIN


def allows(actor: Actor, role: str) -> bool:
    """True when ``actor`` has ``role`` or a higher one."""
    return _RANK[actor.role] >= _RANK[role]


def require(actor: Actor, role: str, what: str = "this") -> None:
    """Raise unless ``actor`` may act with ``role``.

    Raises:
        CoiError: the actor's role is too low (the message says who and what).
    """
    if not allows(actor, role):
        raise CoiError(
            f"{actor.name or 'This user'} is an {actor.role} and may not do {what}; it needs the {role} role.",
            "Ask an admin, or log in as one.",
        )


def roles_from(secrets: Mapping | None) -> dict[str, str]:
    """The ``[roles]`` table of secrets (user -> role).

    Raises:
        CoiError: the table is not a table, or names an unknown role.
    """
    table = (secrets or {}).get("roles") or {}
    if not isinstance(table, Mapping):
        raise CoiError("[roles] in secrets.toml must be a table", 'Write it as [roles] then alice = "admin".')
    out = {}
    for name, role in table.items():
        if role not in ROLES:
            raise CoiError(
                f"[roles] gives {name!r} the unknown role {role!r}", f"Use one of: {', '.join(ROLES)}."
            )
        out[str(name)] = role
    return out
