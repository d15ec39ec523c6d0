"""Plain helpers behind the Generate page (tested directly; the page only draws what they return)."""

from __future__ import annotations

from dataclasses import dataclass, field

import sqlite_utils

from pipeline.embedded import llm_endpoint
from pipeline.llm import LLMClient, LLMConfig
from store.errors import CoiError
from store.jobs import Job, list_jobs

WEAK_MODEL_NOTE = (
    "With no endpoint configured, the pipeline runs the embedded Gemma 3 270M base model on this machine. "
    "It is small: expect weak proposals (odd verdicts, shallow outputs) that need careful review. "
    "A stronger OpenAI-compatible endpoint (set it in Settings, or $OPENAI_BASE_URL) gives better ones."
)


def page_config(db: sqlite_utils.Database, session_key: str = "") -> LLMConfig:
    """The endpoint in use: Settings, then environment; a key typed this session wins over $OPENAI_API_KEY."""
    config = LLMConfig.resolve(db)
    if session_key:
        from dataclasses import replace

        config = replace(config, api_key=session_key)
    return config


def test_connection(config: LLMConfig, db_path: str) -> str:
    """Send one tiny request (starting the embedded model if needed); a plain sentence either way.

    Raises:
        CoiError: when the endpoint does not answer, with the reason.
    """
    with llm_endpoint(config, log=lambda m: None) as live:
        reply = LLMClient(live, db_path).check_connection()
    return f"Connected to {config.describe()}. It answered: {reply.strip()[:80]!r}"


@dataclass
class JobView:
    """What the page shows about a generate job."""

    job: Job
    fraction: float
    label: str
    verdicts: dict = field(default_factory=dict)
    errors: list = field(default_factory=list)
    totals: str = ""
    failed_line: str = ""  # "N of M items failed" when some did
    warnings: list = field(default_factory=list)
    resumable: bool = False


def latest_job(db: sqlite_utils.Database) -> Job | None:
    jobs = list_jobs(db, kind="generate", limit=1)
    return jobs[0] if jobs else None


def job_view(job: Job, wait: str = "") -> JobView:
    """Progress, verdict counts, per-item errors, warnings and usage totals of a job, ready to draw.

    ``wait`` is where a queued job stands (``jobs.runtime.describe_wait``).
    """
    fraction = 1.0 if job.status == "succeeded" else min(1.0, max(0.0, job.progress))
    label = (
        f"generate #{job.id} · {job.status} · {wait or job.message or 'starting'} ({job.done}/{job.total})"
    )
    result = job.result or {}
    failed, total = result.get("failed_items", 0), result.get("total_items", 0)
    usage = result.get("usage") or {}
    totals = ""
    if usage:
        totals = (
            f"{usage.get('requests', 0)} requests, {usage.get('cache_hits', 0)} cache hits, "
            f"{usage.get('prompt_tokens', 0)} prompt + {usage.get('completion_tokens', 0)} completion tokens, "
            f"{usage.get('latency_ms', 0) / 1000:.1f} s of LLM time; "
            f"{result.get('chains_added', 0)} chains added, {result.get('chains_existing', 0)} already there."
        )
    return JobView(
        job,
        fraction,
        label,
        result.get("verdicts") or {},
        result.get("errors") or [],
        totals,
        f"{failed} of {total} items failed" if failed else "",
        result.get("warnings") or [],
        job.status in ("failed", "cancelled") or (job.status == "succeeded" and failed > 0),
    )


def parse_task_ids(text: str) -> tuple[int, ...]:
    """'1, 2 5-7' -> (1, 2, 5, 6, 7). Raises CoiError on anything else."""
    ids: list[int] = []
    for part in text.replace(",", " ").split():
        try:
            if "-" in part:
                lo, hi = (int(x) for x in part.split("-", 1))
                ids += range(lo, hi + 1)
            else:
                ids.append(int(part))
        except ValueError as exc:
            raise CoiError(f"Not a task id or range: {part!r}", "Write ids like 1, 2, 5-9.") from exc
    return tuple(ids)


SAMPLING_FIELDS = ("temperature", "max_tokens", "timeout_s", "max_retries", "concurrency", "stop")


def source_lines(db: sqlite_utils.Database) -> list[str]:
    """'field = value (from Settings)' for every LLM knob, in the order of the dataclass."""
    from pipeline.llm import resolve_with_sources
    from store.config import show

    config, sources = resolve_with_sources(db)
    return [f"{name} = {show(getattr(config, name))!s}  (from {src})" for name, src in sources.items()]


def save_sampling(db: sqlite_utils.Database, values: dict) -> list[str]:
    """Store the sampling knobs the user changed (others keep their source); returns the changed names.

    Raises:
        CoiError: a value does not fit its field (nothing is saved then).
    """
    from pipeline.llm import resolve_with_sources, save_settings
    from store.config import show

    current, _ = resolve_with_sources(db)
    merged, _ = resolve_with_sources(db, **values)  # validates every value before anything is saved
    changed = [n for n in SAMPLING_FIELDS if show(getattr(merged, n)) != show(getattr(current, n))]
    save_settings(db, {n: getattr(merged, n) for n in changed})
    return changed


def reset_sampling(db: sqlite_utils.Database) -> None:
    """Forget the Settings values of the sampling knobs: the environment or the defaults apply again."""
    from pipeline.llm import save_settings

    save_settings(db, {n: None for n in SAMPLING_FIELDS})


def save_endpoint(db: sqlite_utils.Database, base_url: str, model: str, api: str) -> bool:
    """Persist the non-secret endpoint settings ('' base URL = the embedded model). The key is never stored.

    Raises:
        CoiError: for a base URL that is not http(s) or carries credentials, or an unknown api.
    """
    from pipeline.llm import APIS, SETTING_API, SETTING_BASE_URL, SETTING_MODEL
    from store.endpoints import check_base_url
    from store.settings import set_setting

    base_url = check_base_url(base_url)  # refuses user:key@ URLs without repeating them
    if api not in APIS:
        raise CoiError(f"Unknown API {api!r}", "Use 'completions' (base models) or 'chat'.")
    set_setting(db, SETTING_BASE_URL, base_url)
    set_setting(db, SETTING_MODEL, model.strip())
    set_setting(db, SETTING_API, api)
    return True
