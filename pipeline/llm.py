"""One client for any OpenAI-compatible endpoint: cache in ``llm_calls``, retries, bounded concurrency.

The ``openai`` SDK does the HTTP; its own retries are off (``max_retries=0``) because this client
retries itself: exponential backoff with full jitter on 429, 5xx, timeouts, dropped connections and
invalid or empty completions, honouring ``Retry-After``. Sleep, clock and randomness are injected so
tests are deterministic. Every call is recorded (tokens, latency, attempts, error); a successful call
is the cache: the same model + prompt + sampling parameters is answered from the database.

The API key lives only in memory (and in the child's environment for background jobs): it is excluded
from ``to_dict()``, from ``repr`` and from every stored request.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import sqlite_utils

from store import env
from store.config import coerce, form_fields, from_plain, option, show, to_plain
from store.db import open_db
from store.endpoints import operator_key
from store.errors import CoiError
from store.hashing import content_hash
from store.llm_calls import get_cached, record_call
from store.settings import get_setting

APIS = ("completions", "chat")
# Settings keys (non-secret) written by the Settings page.
SETTING_BASE_URL = "llm_base_url"
SETTING_MODEL = "llm_model"
SETTING_API = "llm_api"


@dataclass(frozen=True)
class LLMConfig:
    """Where and how to call the LLM. ``api_key`` is never persisted or printed."""

    base_url: str = option(
        "", "OpenAI-compatible base URL, e.g. http://127.0.0.1:8080/v1 ('' = embedded model)"
    )
    model: str = option("", "Model name the endpoint expects")
    api_key: str = field(default="", repr=False)  # memory/env only: no help, so no form field or flag
    api: str = option("completions", "'completions' (base models) or 'chat' (instruct models)", choices=APIS)
    temperature: float = option(0.0, "Sampling temperature (0: deterministic)")
    max_tokens: int = option(128, "Max new tokens per step (per call)")
    concurrency: int = option(8, "Requests in flight at once")
    timeout_s: float = option(120.0, "Per-request timeout in seconds")
    max_retries: int = option(4, "Retries after the first try (429, 5xx, timeouts, empty answers)")
    backoff_base_s: float = option(0.5, "First backoff delay in seconds")
    backoff_max_s: float = option(30.0, "Longest backoff delay in seconds")
    stop: tuple[str, ...] = option((), "Extra stop sequences, comma-separated (added to each prompt's own)")

    def __post_init__(self) -> None:
        if self.api not in APIS:
            raise CoiError(f"Unknown LLM api {self.api!r}", "Use 'completions' (base models) or 'chat'.")
        if self.concurrency < 1:
            raise CoiError("Concurrency must be at least 1", "Set concurrency to 1 or more.")
        checks = [
            (self.temperature >= 0, "temperature must be 0 or more"),
            (self.max_tokens >= 1, "max tokens per step must be at least 1"),
            (self.timeout_s > 0, "the timeout must be positive"),
            (self.max_retries >= 0, "retries must be 0 or more"),
        ]
        for ok, why in checks:
            if not ok:
                raise CoiError(f"Bad LLM setting: {why}", "Fix that field and save again.")

    def to_dict(self) -> dict:
        """Everything but the key (safe to store in a job config or show)."""
        return to_plain(self, exclude=("api_key",))

    @classmethod
    def from_dict(cls, data: dict, *, api_key: str = "") -> LLMConfig:
        return from_plain(cls, data, what="LLM config", api_key=api_key)

    @property
    def embedded(self) -> bool:
        """True when no endpoint is configured: the pipeline starts the local model."""
        return not self.base_url

    def describe(self) -> str:
        if self.embedded:
            return "embedded local model (Gemma 3 270M via transformers serve)"
        return f"{self.base_url} · model {self.model or '(default)'} · {self.api} API"

    @classmethod
    def resolve(cls, db: sqlite_utils.Database | None = None, **overrides) -> LLMConfig:
        """The config in effect: see :func:`resolve_with_sources` for the precedence."""
        return resolve_with_sources(db, **overrides)[0]


# Where each knob can come from. Precedence (highest first): a command-line flag or form value,
# the Settings page (DB, non-secret), the environment, the dataclass default.
SETTING_PREFIX = "llm_"
ENV_VARS = env.LLM_VARS  # the variables live in store.env, read there only
SOURCES = ("command line", "Settings", "environment", "default")


def resolve_with_sources(
    db: sqlite_utils.Database | None = None, **overrides
) -> tuple[LLMConfig, dict[str, str]]:
    """The LLM config in effect and, per field, where its value came from.

    Precedence: ``overrides`` (flags, form) > Settings page > environment > default. The API key
    comes from the environment only (:func:`choose_api_key`).

    Raises:
        CoiError: a value does not fit its field (the message names the field and where it came from).
    """
    values: dict = {}
    sources: dict[str, str] = {}
    settings = _llm_settings(db)
    for spec in form_fields(LLMConfig):
        env_name, env_value = env.llm_value(spec.name)
        candidates = [
            ("command line", overrides.get(spec.name)),
            ("Settings", settings.get(spec.name)),
            (f"environment (${env_name})", env_value),
        ]
        for source, value in candidates:
            if value not in (None, ""):
                values[spec.name] = coerce(LLMConfig, spec.name, value, what=f"LLM setting from {source}")
                sources[spec.name] = source
                break
        else:
            sources[spec.name] = "default"
    values["api_key"] = overrides.get("api_key") or choose_api_key(values.get("base_url", ""))
    return LLMConfig(**values), sources


def choose_api_key(base_url: str) -> str:
    """The API key sent to ``base_url`` (the one place a key is picked): the operator's key, and only
    for an endpoint the operator configured (``store.endpoints``); '' for any other URL."""
    return operator_key(base_url)


def _llm_settings(db: sqlite_utils.Database | None) -> dict[str, str]:
    if db is None:
        return {}
    out = {}
    for spec in form_fields(LLMConfig):
        value = get_setting(db, SETTING_PREFIX + spec.name)
        if value not in (None, ""):
            out[spec.name] = value
    return out


def save_settings(db: sqlite_utils.Database, values: dict) -> None:
    """Store the Settings page's LLM values ('' clears one, so the environment or default applies)."""
    from store.settings import set_setting

    for spec in form_fields(LLMConfig):
        if spec.name in values:
            value = values[spec.name]
            set_setting(db, SETTING_PREFIX + spec.name, show(value) if value is not None else "")


@dataclass(frozen=True)
class LLMRequest:
    """One prompt (sent as a user message when the api is 'chat')."""

    prompt: str
    stop: tuple[str, ...] = ()
    max_tokens: int | None = None


@dataclass
class LLMResult:
    """What one request gave: text, or an error after the retries. Never raised."""

    text: str = ""
    error: str | None = None
    llm_call_id: int | None = None
    cached: bool = False
    attempts: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    latency_ms: float = 0.0

    @property
    def ok(self) -> bool:
        return self.error is None


@dataclass
class _Outcome:
    text: str | None = None
    error: str | None = None
    attempts: int = 0
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    latency_ms: float = 0.0


class _Retryable(Exception):
    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class _Final(Exception):
    """A failure a resend cannot fix (an empty answer at temperature 0 comes back the same)."""


@dataclass
class UsageTotals:
    """Running totals of a client (requests actually sent, cache hits, tokens, latency)."""

    requests: int = 0
    calls: int = 0
    cache_hits: int = 0
    errors: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    latency_ms: float = 0.0

    def as_dict(self) -> dict:
        return asdict(self)


class LLMClient:
    """Cached, retrying, concurrent completions against an OpenAI-compatible endpoint."""

    def __init__(
        self,
        config: LLMConfig,
        db_path: str | Path | None = None,
        *,
        job_id: int | None = None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
        rng: random.Random | None = None,
    ) -> None:
        if config.embedded:
            raise CoiError(
                "No LLM endpoint: start the embedded model first",
                "Use pipeline.embedded.llm_endpoint(config) or set a base URL in Settings.",
            )
        import openai  # the SDK is only needed where calls are made

        self.config = config
        self.db_path = db_path
        self.job_id = job_id
        self.totals = UsageTotals()
        self._sleep, self._clock = sleep, clock
        self._rng = rng or random.Random()
        self._lock = threading.Lock()
        self._openai = openai
        self._sdk = openai.OpenAI(
            base_url=config.base_url,
            api_key=config.api_key or "not-needed",
            max_retries=0,
            timeout=config.timeout_s,
        )

    def __repr__(self) -> str:
        return f"LLMClient({self.config!r})"

    # -- public ------------------------------------------------------------------------------------
    def complete(self, request: LLMRequest | str) -> LLMResult:
        """One completion (cached, retried). Never raises for an endpoint failure."""
        return self.complete_many([request])[0]

    def complete_many(
        self, requests: list[LLMRequest | str], *, on_result: Callable[[int, LLMResult], None] | None = None
    ) -> list[LLMResult]:
        """Answer a batch: cache hits first, then the misses with bounded concurrency.

        Identical requests in a batch are sent once. A failure is an ``LLMResult`` with ``error``;
        it never stops the batch. DB writes happen on the calling thread only.
        """
        reqs = [LLMRequest(r) if isinstance(r, str) else r for r in requests]
        keys = [self.cache_key(r) for r in reqs]
        results: list[LLMResult | None] = [None] * len(reqs)
        with open_db(self.db_path) as db:
            cached = get_cached(db, list(set(keys)))
            pending: dict[str, list[int]] = {}
            for i, key in enumerate(keys):
                hit = cached.get(key)
                if hit is not None:
                    results[i] = LLMResult(
                        hit.response,
                        None,
                        hit.id,
                        True,
                        0,
                        hit.prompt_tokens or 0,
                        hit.completion_tokens or 0,
                    )
                    self.totals.cache_hits += 1
                    if on_result:
                        on_result(i, results[i])
                else:
                    pending.setdefault(key, []).append(i)
            self._send_pending(db, reqs, pending, results, on_result)
        return results  # type: ignore[return-value]

    def cache_key(self, request: LLMRequest) -> str:
        return content_hash(self._request_body(request))

    def check_connection(self) -> str:
        """One tiny uncached request; returns the reply or raises CoiError with a plain reason."""
        outcome = self._call(LLMRequest("Say OK.\nAnswer:", stop=("\n",), max_tokens=4), retries=0)
        if outcome.error:
            raise CoiError(
                f"The LLM endpoint did not answer: {outcome.error}", "Check the base URL, model and key."
            )
        return outcome.text or ""

    def preflight(self) -> list[str]:
        """Before a batch: one tiny request, and ``/models`` where the server has it.

        Returns:
            Warnings in plain words (e.g. the model name is not one the server lists).

        Raises:
            CoiError: the endpoint does not answer the tiny request (the reason names the URL).
        """
        outcome = self._call(LLMRequest("Say OK.\nAnswer:", stop=("\n",), max_tokens=4), retries=1)
        if outcome.error and "empty completion" not in outcome.error:  # an empty reply still proves it is up
            raise CoiError(f"The LLM endpoint did not answer: {outcome.error}", _hint_for(outcome.error))
        names = self.listed_models()
        if names is not None and self.config.model and self.config.model not in names:
            shown = ", ".join(names[:10]) or "none"
            return [
                f"The model name {self.config.model!r} is not among the models {self.config.base_url} lists "
                f"({shown}); the server may answer with another model, and the chains record the wrong name."
            ]
        return []

    def listed_models(self) -> list[str] | None:
        """The model ids ``GET /models`` lists (None when the server has no such route or it fails)."""
        try:
            return [m.id for m in self._sdk.models.list().data]
        except Exception:  # noqa: BLE001 - many servers have no /models; that is no error
            return None

    # -- internals ---------------------------------------------------------------------------------
    def _send_pending(self, db, reqs, pending, results, on_result) -> None:
        if not pending:
            return
        workers = min(self.config.concurrency, len(pending))
        pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="llm")
        try:
            futures = {pool.submit(self._call, reqs[idxs[0]]): key for key, idxs in pending.items()}
            for fut in as_completed(futures):
                key = futures[fut]
                outcome = fut.result()
                result = self._store(db, key, reqs[pending[key][0]], outcome)
                for i in pending[key]:
                    results[i] = result
                    if on_result:
                        on_result(i, result)
        finally:
            # On cancel (SIGTERM -> exception here) drop the queued calls instead of sending them all.
            pool.shutdown(wait=False, cancel_futures=True)

    def _store(self, db, key: str, request: LLMRequest, outcome: _Outcome) -> LLMResult:
        call_id = record_call(
            db,
            key=key,
            model=self.config.model,
            request=self._request_body(request),
            response=outcome.text if outcome.error is None else None,
            prompt_tokens=outcome.prompt_tokens,
            completion_tokens=outcome.completion_tokens,
            latency_ms=outcome.latency_ms,
            attempts=outcome.attempts,
            error=outcome.error,
            job_id=self.job_id,
        )
        t = self.totals
        t.calls += 1
        t.errors += outcome.error is not None
        t.prompt_tokens += outcome.prompt_tokens or 0
        t.completion_tokens += outcome.completion_tokens or 0
        t.latency_ms += outcome.latency_ms
        return LLMResult(
            outcome.text or "",
            outcome.error,
            call_id,
            False,
            outcome.attempts,
            outcome.prompt_tokens or 0,
            outcome.completion_tokens or 0,
            outcome.latency_ms,
        )

    def _request_body(self, request: LLMRequest) -> dict:
        """The request as sent (minus the key): also what the cache key hashes."""
        body: dict = {
            "model": self.config.model,
            "temperature": self.config.temperature,
            "max_tokens": request.max_tokens or self.config.max_tokens,
        }
        stop = list(dict.fromkeys([*request.stop, *self.config.stop]))
        if stop:
            body["stop"] = stop
        if self.config.api == "chat":
            body["messages"] = [{"role": "user", "content": request.prompt}]
        else:
            body["prompt"] = request.prompt
        return body

    def _call(self, request: LLMRequest, *, retries: int | None = None) -> _Outcome:
        """Send with retries; returns the text or the last error (never raises)."""
        retries = self.config.max_retries if retries is None else retries
        started = self._clock()
        outcome = _Outcome()
        for attempt in range(1, retries + 2):
            outcome.attempts = attempt
            try:
                outcome.text, outcome.prompt_tokens, outcome.completion_tokens = self._send_once(request)
                outcome.error = None
                break
            except _Retryable as exc:
                outcome.error = str(exc)
                if attempt <= retries:
                    self._sleep(self._backoff(attempt, exc.retry_after))
            except _Final as exc:  # resending would give the same answer
                outcome.error = str(exc)
                break
            except Exception as exc:  # noqa: BLE001 - a 4xx or an unexpected failure: no retry
                outcome.error = self._explain(exc)
                break
        outcome.latency_ms = (self._clock() - started) * 1000
        if outcome.error and self.config.api_key:  # some servers echo the key they refused
            outcome.error = outcome.error.replace(self.config.api_key, "[API key]")
        return outcome

    def _backoff(self, attempt: int, retry_after: float | None) -> float:
        cap = min(self.config.backoff_max_s, self.config.backoff_base_s * 2 ** (attempt - 1))
        with self._lock:
            delay = self._rng.uniform(cap / 2, cap)  # jitter keeps parallel retries from syncing up
        if retry_after is not None:
            delay = max(delay, min(retry_after, 300.0))
        return delay

    def _explain(self, exc: Exception) -> str:
        """A non-retryable failure in plain words, naming the URL (a 404 hints at /v1)."""
        if isinstance(exc, self._openai.APIStatusError):
            text = f"HTTP {exc.status_code} from {self.config.base_url}: {_short(exc)}"
            if exc.status_code == 404:
                text += " (is the path right? OpenAI-compatible servers usually serve under /v1)"
            return text
        return f"{type(exc).__name__} from {self.config.base_url}: {exc}"

    def _send_once(self, request: LLMRequest) -> tuple[str, int | None, int | None]:
        body = self._request_body(request)
        with self._lock:
            self.totals.requests += 1
        try:
            if self.config.api == "chat":
                resp = self._sdk.chat.completions.create(**body)
                text = resp.choices[0].message.content if resp.choices else None
            else:
                resp = self._sdk.completions.create(**body)
                text = resp.choices[0].text if resp.choices else None
        except self._openai.APIStatusError as exc:
            if exc.status_code == 429 or exc.status_code >= 500 or exc.status_code == 408:
                raise _Retryable(
                    f"HTTP {exc.status_code} from {self.config.base_url}: {_short(exc)}",
                    _retry_after(exc.response),
                ) from exc
            raise
        except self._openai.APITimeoutError as exc:
            raise _Retryable(
                f"no answer from {self.config.base_url} within {self.config.timeout_s:g} s (timeout)"
            ) from exc
        except self._openai.APIConnectionError as exc:
            raise _Retryable(f"could not connect to {self.config.base_url} ({_short(exc)})") from exc
        except (ValueError, TypeError, AttributeError) as exc:  # JSON decode or schema errors
            raise _Retryable(f"invalid response from {self.config.base_url}: {type(exc).__name__}") from exc
        if not isinstance(text, str) or not text.strip():
            if self.config.temperature == 0:
                raise _Final(
                    f"empty completion from {self.config.base_url} (not resent: at temperature 0 "
                    "the same request gives the same answer)"
                )
            raise _Retryable("empty completion")
        usage = getattr(resp, "usage", None)
        return text, getattr(usage, "prompt_tokens", None), getattr(usage, "completion_tokens", None)


def _hint_for(error: str) -> str:
    """What to do about an endpoint error, in plain words."""
    if "HTTP 404" in error:
        return "Check the base URL: OpenAI-compatible servers usually serve under /v1 (e.g. http://127.0.0.1:8080/v1)."
    if "could not connect" in error:
        return "Is the server running, and are the host and port right?"
    if "HTTP 401" in error or "HTTP 403" in error:
        return "Check the API key ($OPENAI_API_KEY, or the key field in Settings)."
    return "Check the base URL, model and key in Settings."


def _short(exc: Exception) -> str:
    return str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__


def _retry_after(response) -> float | None:
    """Seconds from a ``Retry-After`` (or ``retry-after-ms``) header, if present and numeric."""
    if response is None:
        return None
    headers = response.headers
    try:
        if headers.get("retry-after-ms"):
            return float(headers["retry-after-ms"]) / 1000
        if headers.get("retry-after"):
            return float(headers["retry-after"])
    except ValueError:
        return None
    return None


def with_overrides(config: LLMConfig, **changes) -> LLMConfig:
    """A copy of ``config`` with some fields changed (keeps the key)."""
    return replace(config, **changes)
