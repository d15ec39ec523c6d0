"""The operator's environment variables, read here and nowhere else (the job runtime, the LLM client,
the database and data paths, the model cache, the endpoint list).

The operator configures CoI Studio through these (and the Settings page); a web user never can.
Reading them in one module keeps the list, the defaults and the precedence in one place.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

API_KEY = "OPENAI_API_KEY"
# LLMConfig field -> variable. Precedence (pipeline.llm.resolve_with_sources): flag > Settings > these > default.
LLM_VARS = {
    "base_url": "OPENAI_BASE_URL",
    "model": "COI_LLM_MODEL",
    "api": "COI_LLM_API",
    "temperature": "COI_LLM_TEMPERATURE",
    "max_tokens": "COI_LLM_MAX_TOKENS",
    "concurrency": "COI_LLM_CONCURRENCY",
    "timeout_s": "COI_LLM_TIMEOUT_S",
    "max_retries": "COI_LLM_MAX_RETRIES",
    "stop": "COI_LLM_STOP",
}
DEVICE_SLOTS = "COI_DEVICE_SLOTS"  # local-model jobs at once (default 1: one GPU)
REMOTE_SLOTS = "COI_MAX_REMOTE_JOBS"  # remote-endpoint jobs at once (default 4)
LOG_DIR = "COI_LOG_DIR"
IMPORT_MAX_MB = "COI_IMPORT_MAX_MB"  # the import size limit in MiB, a safety stop (default 4096: 4 GiB)
DEFAULT_IMPORT_MAX_MB = 4096.0


def environ() -> Mapping[str, str]:
    """The whole environment, for code that reads several variables at once (login, endpoints)."""
    return os.environ


def get(name: str, default: str = "") -> str:
    """The variable's value, or ``default`` when unset or empty."""
    return os.environ.get(name) or default


def api_key() -> str:
    """The operator's API key for the LLM endpoint ('' if none)."""
    return get(API_KEY)


def llm_value(field: str) -> tuple[str, str]:
    """(variable name, value) for an LLMConfig field ('' and '' when no variable sets it)."""
    name = LLM_VARS.get(field, "")
    return name, get(name) if name else ""


def _positive_int(name: str, default: int) -> int:
    try:
        return max(1, int(get(name, str(default))))
    except ValueError:
        return default


def device_slots() -> int:
    return _positive_int(DEVICE_SLOTS, 1)


def remote_slots() -> int:
    return _positive_int(REMOTE_SLOTS, 4)


def import_max_bytes() -> int:
    """The largest file an import reads, in bytes: ``$COI_IMPORT_MAX_MB`` MiB, else 4 GiB.

    Imports stream in bounded memory, so this is only a safety stop against a wrong file.
    """
    try:
        mb = float(get(IMPORT_MAX_MB, str(DEFAULT_IMPORT_MAX_MB)))
    except ValueError:
        mb = DEFAULT_IMPORT_MAX_MB
    return int((mb if mb > 0 else DEFAULT_IMPORT_MAX_MB) * 1024 * 1024)
