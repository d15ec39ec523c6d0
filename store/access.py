"""Who may open the app: the serving policy and the login check, as plain functions (no Streamlit).

The model is small on purpose. On loopback (127.0.0.1, localhost, ::1) the app is open unless a secret is
configured. Any other address needs a secret, and both ``run_app.sh`` and the app itself refuse without one.
Secrets come from the environment (``COI_PASSWORD``, ``COI_TOKEN``) or Streamlit secrets
(``.streamlit/secrets.toml``: ``password = "..."``, ``token = "..."``, or a ``[passwords]`` table of
user -> password as in Streamlit's authentication docs). Secrets are compared with ``hmac.compare_digest``
and never printed.

Run ``python -m store.access check --host HOST`` to apply the serving policy from a shell script: it exits 0
when the host may be served and 2 with a plain message on stderr when it may not.
"""

from __future__ import annotations

import argparse
import hmac
import ipaddress
import os
import sys
import time
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import tomllib

from store import env
from store.endpoints import JOB_KEY_ENV
from store.errors import CoiError
from store.roles import ADMIN, ANNOTATOR, Actor, roles_from

LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "::1"})
ENV_PASSWORD = "COI_PASSWORD"
ENV_TOKEN = "COI_TOKEN"
ENV_ADMIN_PASSWORD = "COI_ADMIN_PASSWORD"
# Environment names that can hold a login secret: ours, and the top-level `password`/`token` that
# Streamlit copies from secrets.toml into the environment. Job processes never need them.
# The job key is handed to each job explicitly (store.endpoints), never inherited from the app.
LOGIN_SECRETS = frozenset(
    {ENV_PASSWORD, ENV_TOKEN, "password", "token", JOB_KEY_ENV, ENV_ADMIN_PASSWORD, "admin_password"}
)
PROJECT_ROOT = Path(__file__).resolve().parents[1]
TOKEN_REVIEWER = "token"  # the reviewer name of a token login that names nobody


@dataclass(frozen=True)
class Credentials:
    """The configured secrets. ``repr`` never shows them."""

    password: str = field(default="", repr=False, metadata={"help": "one shared password"})
    token: str = field(default="", repr=False, metadata={"help": "a token for ?token= or the login form"})
    users: Mapping[str, str] = field(default_factory=dict, repr=False, metadata={"help": "user -> password"})
    admin_password: str = field(
        default="", repr=False, metadata={"help": "$COI_ADMIN_PASSWORD: logs in as admin"}
    )
    roles: Mapping[str, str] = field(
        default_factory=dict, metadata={"help": "[roles]: user -> admin|annotator"}
    )

    @property
    def configured(self) -> bool:
        """True when any secret is set (the app then asks for a login, whatever the address)."""
        return bool(self.password or self.token or self.users or self.admin_password)

    def user(self, name: str) -> str | None:
        """The ``[passwords]`` user that ``name`` names (after ``normalize_name``), or None."""
        wanted = normalize_name(name)
        return next((u for u in self.users if normalize_name(u) == wanted), None)

    def role_of(self, user: str) -> str:
        """The role ``[roles]`` gives a ``[passwords]`` user (annotator by default)."""
        wanted = normalize_name(user)
        return next((r for n, r in self.roles.items() if normalize_name(n) == wanted), ANNOTATOR)


def normalize_name(name: str) -> str:
    """The one normalisation of user names, used everywhere names are compared: Unicode NFKC, surrounding
    spaces removed, case folded. So ``Alice``, `` alice `` and ``ALICE`` are the same user."""
    return unicodedata.normalize("NFKC", name).strip().casefold()


@dataclass(frozen=True)
class Gate:
    """What the app does before any page: ``open``, ``login`` or ``refuse`` (with the reason)."""

    action: str
    reason: str = ""


def is_loopback(host: str | None) -> bool:
    """True for addresses only this machine can reach. ``None``/empty means all interfaces: not loopback."""
    if not host:
        return False
    name = host.strip().strip("[]").lower()
    if name in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def secrets_files(project_root: Path = PROJECT_ROOT, home: Path | None = None) -> list[Path]:
    """Where Streamlit looks for secrets, in its order (a later file wins): the user's, then the project's."""
    home = home if home is not None else Path(os.path.expanduser("~"))
    return [home / ".streamlit" / "secrets.toml", project_root / ".streamlit" / "secrets.toml"]


def read_secrets(paths: list[Path]) -> dict:
    """Merge the TOML files that exist (a later file wins per key).

    Raises:
        CoiError: a file is not valid TOML (the message names the file, never its content).
    """
    merged: dict = {}
    for path in paths:
        if not path.is_file():
            continue
        try:
            merged.update(tomllib.loads(path.read_text(encoding="utf-8")))
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise CoiError(f"{path} is not valid TOML", "Fix the secrets file (see README, Access).") from exc
    return merged


def credentials_from(environ: Mapping[str, str], secrets: Mapping | None = None) -> Credentials:
    """The secrets in force: the environment wins over Streamlit secrets, key by key."""
    secrets = secrets or {}
    users = secrets.get("passwords") or {}
    if not isinstance(users, Mapping):
        raise CoiError(
            "[passwords] in secrets.toml must be a table", 'Write it as [passwords] then alice = "...".'
        )
    users = {str(name).strip(): str(pw) for name, pw in users.items() if str(name).strip() and pw}
    if len({normalize_name(n) for n in users}) != len(users):
        raise CoiError(
            "[passwords] names two users that differ only in case or spaces",
            "User names are compared case-insensitively; keep one of them.",
        )
    return Credentials(
        password=environ.get(ENV_PASSWORD) or _text(secrets.get("password")),
        token=environ.get(ENV_TOKEN) or _text(secrets.get("token")),
        users=users,
        admin_password=environ.get(ENV_ADMIN_PASSWORD) or _text(secrets.get("admin_password")),
        roles=roles_from(secrets),
    )


def _text(value) -> str:
    return value if isinstance(value, str) else ""


def gate(host: str | None, creds: Credentials) -> Gate:
    """The decision before any page: a secret means login; no secret is fine only on loopback."""
    if creds.configured:
        return Gate("login")
    if is_loopback(host):
        return Gate("open")
    return Gate(
        "refuse",
        f"The app is served on {host or 'all interfaces'}, beyond this machine, and no password or token "
        f"is set. Set ${ENV_PASSWORD} or ${ENV_TOKEN} (or password / token / [passwords] in "
        ".streamlit/secrets.toml), or serve on 127.0.0.1.",
    )


def check_serve(host: str | None, creds: Credentials) -> None:
    """Raise when ``host`` may not be served with these credentials (what ``run_app.sh`` checks first).

    Raises:
        CoiError: a non-loopback host without any password or token.
    """
    decision = gate(host, creds)
    if decision.action == "refuse":
        raise CoiError(
            f"Refusing to serve on {host or 'all interfaces'} without a password or token.",
            f'Set ${ENV_PASSWORD} or ${ENV_TOKEN} (or password = "..." in .streamlit/secrets.toml), '
            "or leave --host at 127.0.0.1.",
        )


def same_secret(given: str, expected: str) -> bool:
    """Constant-time comparison; an empty expected secret never matches."""
    if not expected:
        return False
    return hmac.compare_digest(given.encode("utf-8"), expected.encode("utf-8"))


def login(creds: Credentials, name: str, secret: str) -> Actor | None:
    """Who a login form gives (name and role), or None when it is refused.

    A name that is a ``[passwords]`` user (after ``normalize_name``) must give that user's password and
    gets the role ``[roles]`` gives it. The admin secret makes the typed name an admin. Any other name
    may log in with the shared password or the token, always as an annotator: nobody proved who it is.
    """
    name = name.strip()
    if not name or not secret:
        return None
    user = creds.user(name)
    if user is not None:
        return Actor(user, creds.role_of(user)) if same_secret(secret, creds.users[user]) else None
    if same_secret(secret, creds.admin_password):
        return Actor(name, ADMIN)
    shared = [same_secret(secret, s) for s in (creds.password, creds.token)]
    return Actor(name, ANNOTATOR) if any(shared) else None


def verify_login(creds: Credentials, name: str, secret: str) -> str | None:
    """The reviewer name a login gives, or None when it is refused (see ``login``)."""
    actor = login(creds, name, secret)
    return actor.name if actor else None


def token_login(creds: Credentials, token: str, name: str = "") -> Actor | None:
    """Who a URL token gives: an annotator named ``name`` (or 'token'); None for a wrong token.

    A token never names a ``[passwords]`` user: that user must log in with their own password.
    """
    if not token or not same_secret(token, creds.token):
        return None
    name = name.strip() or TOKEN_REVIEWER
    if creds.user(name) is not None:
        return None
    return Actor(name, ANNOTATOR)


def verify_token(creds: Credentials, token: str, name: str = "") -> str | None:
    """The reviewer name a URL token gives (``name`` or 'token'), or None (see ``token_login``)."""
    actor = token_login(creds, token, name)
    return actor.name if actor else None


# -- slowing down guessing, per user name, across every session and process (the DB holds the count)
FREE_ATTEMPTS = 3  # wrong attempts per name before waits start
MAX_WAIT_S = 300.0


def login_wait(db, name: str, now: float | None = None) -> float:
    """Seconds until ``name`` may try again (0 when it may now)."""
    row = db.execute(
        "SELECT failures, last_at FROM login_failures WHERE name = ?", [normalize_name(name)]
    ).fetchone()
    if not row or row[0] < FREE_ATTEMPTS:
        return 0.0
    wait = min(MAX_WAIT_S, 2.0 ** (row[0] - FREE_ATTEMPTS))
    now = time.time() if now is None else now
    return max(0.0, row[1] + wait - now)


def record_login(db, name: str, ok: bool, now: float | None = None) -> None:
    """Count a wrong attempt for ``name`` (or clear the count after a right one)."""
    key = normalize_name(name)
    if ok:
        db.execute("DELETE FROM login_failures WHERE name = ?", [key])
        return
    now = time.time() if now is None else now
    db.execute(
        "INSERT INTO login_failures (name, failures, last_at) VALUES (?, 1, ?) "
        "ON CONFLICT(name) DO UPDATE SET failures = failures + 1, last_at = excluded.last_at",
        [key, now],
    )


def main(argv: list[str] | None = None) -> int:
    """``python -m store.access check --host HOST``: exit 0 if the host may be served, else 2."""
    parser = argparse.ArgumentParser(prog="python -m store.access", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    check = sub.add_parser("check", help="apply the serving policy to a host")
    check.add_argument("--host", required=True, help="the address the app will bind")
    args = parser.parse_args(argv)
    try:
        creds = credentials_from(env.environ(), read_secrets(secrets_files()))
        check_serve(args.host, creds)
    except CoiError as exc:
        print(f"error: {exc.message}\n  {exc.hint}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
