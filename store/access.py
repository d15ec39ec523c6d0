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
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import tomllib

from store.endpoints import JOB_KEY_ENV
from store.errors import CoiError

LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "::1"})
ENV_PASSWORD = "COI_PASSWORD"
ENV_TOKEN = "COI_TOKEN"
ENV_ADMIN_PASSWORD = "COI_ADMIN_PASSWORD"
# Environment names that can hold a login secret: ours, and the top-level `password`/`token` that
# Streamlit copies from secrets.toml into the environment. Job processes never need them.
# The job key is handed to each job explicitly (store.endpoints), never inherited from the app.
LOGIN_SECRETS = frozenset({ENV_PASSWORD, ENV_TOKEN, "password", "token", JOB_KEY_ENV, ENV_ADMIN_PASSWORD})
PROJECT_ROOT = Path(__file__).resolve().parents[1]
TOKEN_REVIEWER = "token"  # the reviewer name of a token login that names nobody


@dataclass(frozen=True)
class Credentials:
    """The configured secrets. ``repr`` never shows them."""

    password: str = field(default="", repr=False, metadata={"help": "one shared password"})
    token: str = field(default="", repr=False, metadata={"help": "a token for ?token= or the login form"})
    users: Mapping[str, str] = field(default_factory=dict, repr=False, metadata={"help": "user -> password"})

    @property
    def configured(self) -> bool:
        """True when any secret is set (the app then asks for a login, whatever the address)."""
        return bool(self.password or self.token or self.users)


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
    return Credentials(
        password=environ.get(ENV_PASSWORD) or _text(secrets.get("password")),
        token=environ.get(ENV_TOKEN) or _text(secrets.get("token")),
        users={str(name): str(pw) for name, pw in users.items() if str(name).strip() and pw},
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


def verify_login(creds: Credentials, name: str, secret: str) -> str | None:
    """The reviewer name a login gives, or None when it is refused.

    A name from the ``[passwords]`` table must give that user's password. Any other name may log in
    with the shared password or the token; the typed name becomes the reviewer then.
    """
    name = name.strip()
    if not name or not secret:
        return None
    if name in creds.users:
        return name if same_secret(secret, creds.users[name]) else None
    shared = [same_secret(secret, s) for s in (creds.password, creds.token)]
    return name if any(shared) else None


def verify_token(creds: Credentials, token: str, name: str = "") -> str | None:
    """The reviewer name a URL token gives (``name`` or 'token'), or None when the token is wrong."""
    if not token or not same_secret(token, creds.token):
        return None
    return name.strip() or TOKEN_REVIEWER


def main(argv: list[str] | None = None) -> int:
    """``python -m store.access check --host HOST``: exit 0 if the host may be served, else 2."""
    parser = argparse.ArgumentParser(prog="python -m store.access", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    check = sub.add_parser("check", help="apply the serving policy to a host")
    check.add_argument("--host", required=True, help="the address the app will bind")
    args = parser.parse_args(argv)
    try:
        creds = credentials_from(os.environ, read_secrets(secrets_files()))
        check_serve(args.host, creds)
    except CoiError as exc:
        print(f"error: {exc.message}\n  {exc.hint}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
