"""Shared fixtures: a fresh SQLite file per test, and a tiny model built once per session."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from store.db import connect
from tests.support import REFERENCE_DATA

# Never touch a hub, whatever a test does.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


@pytest.fixture(autouse=True)
def db_path(tmp_path, monkeypatch) -> Path:
    """Every test gets its own database file through $COI_DB (like simonw/llm's fixture)."""
    path = tmp_path / "coi.db"
    monkeypatch.setenv("COI_DB", str(path))
    return path


@pytest.fixture(autouse=True)
def path_roots(tmp_path_factory, monkeypatch) -> Path:
    """User-typed paths must stay inside the data/model roots (store.paths): pytest's temp dirs
    and the paper's data are the roots here, so the policy stays on (no COI_ALLOW_ANY_PATH)."""
    base = tmp_path_factory.getbasetemp()
    monkeypatch.setenv("COI_DATA_ROOT", os.pathsep.join([str(base), str(REFERENCE_DATA)]))
    monkeypatch.setenv("COI_IMPORT_ROOT", os.pathsep.join([str(base), str(REFERENCE_DATA)]))
    monkeypatch.setenv("COI_MODEL_ROOT", str(base))
    monkeypatch.delenv("COI_ALLOW_ANY_PATH", raising=False)
    return base


@pytest.fixture
def db(db_path):
    database = connect(db_path)
    yield database
    database.conn.close()


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> Path:
    from tests.support.tiny_model import build_tiny_model

    return build_tiny_model(tmp_path_factory.mktemp("tiny_model"))


@pytest.fixture(scope="session")
def reference_data() -> Path:
    if not REFERENCE_DATA.exists():
        pytest.fail(f"The paper's data is missing at {REFERENCE_DATA} (it lives in ../shared/reference).")
    return REFERENCE_DATA
