"""Where the operator's API key may go: only to endpoints the operator configured.

The operator (shell environment, ``.streamlit/secrets.toml``) is trusted; a logged-in web user is not.
A web user can save any base URL on Settings, so the key from ``$OPENAI_API_KEY`` (or secrets) is sent
only when the base URL is on the operator's list:

- ``$OPENAI_BASE_URL``;
- ``$COI_LLM_ENDPOINTS``: base URLs separated by commas or whitespace;
- in secrets: ``OPENAI_BASE_URL`` and ``llm_endpoints`` (a list or a string like the variable).

Any other base URL gets only a key typed in that browser session (the page passes it explicitly).
Background jobs get a key only through ``$COI_JOB_API_KEY``, set by the launcher from a key that
already passed this rule; the job otherwise applies the rule itself to the inherited environment.

URLs are compared after one normalisation: scheme and host lower-cased, default port dropped, trailing
slash dropped. A URL carrying credentials (``http://user:key@host``) is refused, and the error never
repeats any part of it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from urllib.parse import urlsplit

from store import env
from store.errors import CoiError

ENV_KEY = "OPENAI_API_KEY"
ENV_BASE_URL = "OPENAI_BASE_URL"
ENV_ENDPOINTS = "COI_LLM_ENDPOINTS"
SECRET_ENDPOINTS = "llm_endpoints"
# The key a launcher hands to one job process (never inherited: jobs.process strips it, see store.access).
JOB_KEY_ENV = "COI_JOB_API_KEY"
_DEFAULT_PORTS = {"http": 80, "https": 443}
NOT_OPERATOR_NOTE = (
    "This base URL is not one the operator configured, so the server's API key is never sent to it. "
    "Only a key you type here (kept in this browser session) is used for it."
)


def has_credentials(url: str) -> bool:
    """True when ``url`` carries a user name or password (``scheme://user:key@host``)."""
    try:
        parts = urlsplit(url.strip())
    except ValueError:
        return "@" in url
    return "@" in parts.netloc


def check_base_url(url: str) -> str:
    """The base URL stripped of spaces and a trailing slash; '' stays '' (the embedded model).

    Raises:
        CoiError: the URL has credentials in it (nothing of it is repeated), or is not http(s).
    """
    url = url.strip().rstrip("/")
    if not url:
        return ""
    if has_credentials(url):
        raise CoiError(
            "A base URL must not contain a user name or key (user:key@host); it was not saved.",
            "Type the URL without credentials and put the key in the API key field.",
        )
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError for a bad port
    except ValueError as exc:
        raise CoiError("The base URL is not a valid URL", "e.g. http://127.0.0.1:8000/v1") from exc
    if parts.scheme.lower() not in _DEFAULT_PORTS or not parts.hostname:
        raise CoiError(
            "The base URL must start with http:// or https:// and name a host",
            "e.g. http://127.0.0.1:8000/v1 or https://api.openai.com/v1",
        )
    return url


def normalize_url(url: str) -> str:
    """The form URLs are compared in: lower-case scheme and host, no default port, no trailing slash."""
    parts = urlsplit(url.strip())
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").lower()
    if ":" in host:
        host = f"[{host}]"
    port = parts.port
    netloc = host if port in (None, _DEFAULT_PORTS.get(scheme)) else f"{host}:{port}"
    return f"{scheme}://{netloc}{parts.path.rstrip('/')}"


def _split(value: object) -> list[str]:
    if isinstance(value, str):
        return [p for p in re.split(r"[\s,]+", value) if p]
    if isinstance(value, Iterable):
        return [str(v).strip() for v in value if str(v).strip()]
    return []


def operator_endpoints(environ: Mapping[str, str] | None = None, secrets: Mapping | None = None) -> set[str]:
    """The normalised base URLs the operator configured (see the module docstring).

    Raises:
        CoiError: an operator URL carries credentials (the message does not repeat it).
    """
    environ = env.environ() if environ is None else environ
    secrets = _file_secrets() if secrets is None else secrets
    urls = [environ.get(ENV_BASE_URL, ""), *_split(environ.get(ENV_ENDPOINTS, ""))]
    urls += [_text(secrets.get(ENV_BASE_URL)), *_split(secrets.get(SECRET_ENDPOINTS))]
    return {normalize_url(check_base_url(u)) for u in urls if u and u.strip()}


def _text(value: object) -> str:
    return value if isinstance(value, str) else ""


def _file_secrets() -> dict:
    from store.access import read_secrets, secrets_files  # same files Streamlit reads

    try:
        return read_secrets(secrets_files())
    except CoiError:
        return {}  # a broken file gives no endpoints; the app itself locks on it


def is_operator_endpoint(base_url: str, environ: Mapping[str, str] | None = None, secrets=None) -> bool:
    """True when ``base_url`` is one the operator configured (so the operator's key may go there)."""
    url = check_base_url(base_url)
    return bool(url) and normalize_url(url) in operator_endpoints(environ, secrets)


def operator_key(base_url: str, environ: Mapping[str, str] | None = None, secrets=None) -> str:
    """The operator's key for ``base_url``: ``$OPENAI_API_KEY`` (or secrets) on a listed endpoint, else ''.

    Raises:
        CoiError: ``base_url`` carries credentials.
    """
    environ = env.environ() if environ is None else environ
    secrets = _file_secrets() if secrets is None else secrets
    key = environ.get(ENV_KEY) or _text(secrets.get(ENV_KEY))
    if not key or not is_operator_endpoint(base_url, environ, secrets):
        return ""
    return key


def job_key(base_url: str, environ: Mapping[str, str] | None = None) -> str:
    """The key a job process uses: the one its launcher handed over, else the operator rule.

    Raises:
        CoiError: ``base_url`` carries credentials.
    """
    environ = env.environ() if environ is None else environ
    check_base_url(base_url)
    return environ.get(JOB_KEY_ENV) or operator_key(base_url, environ)


def job_env(api_key: str) -> dict[str, str]:
    """The environment entry that hands ``api_key`` (already checked) to one job process."""
    return {JOB_KEY_ENV: api_key} if api_key else {}


def key_note(base_url: str) -> str:
    """A plain sentence for Settings when ``base_url`` is not on the operator's list, else ''."""
    try:
        return "" if not base_url.strip() or is_operator_endpoint(base_url) else NOT_OPERATOR_NOTE
    except CoiError as exc:
        return exc.message
