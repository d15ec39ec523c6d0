"""Overview counts for `coi stats` and the Data page (each an index scan, cheap on large tables)."""

from __future__ import annotations

import sqlite_utils

from store.chains import count_chains, length_counts, status_counts
from store.jobs import job_counts
from store.tasks import category_counts, count_tasks, source_counts


def collect_stats(db: sqlite_utils.Database) -> dict:
    """Counts of tasks (total, by category, by source), chains (by status, length) and jobs (kind/status)."""
    return {
        "tasks": count_tasks(db),
        "tasks_by_category": category_counts(db),
        "tasks_by_source": source_counts(db),
        "chains": count_chains(db),
        "chains_by_status": status_counts(db),
        "chains_by_length": {str(k): v for k, v in length_counts(db).items()},
        "chains_by_source": dict(
            db.execute("SELECT source, count(*) FROM chains GROUP BY source").fetchall()
        ),
        "jobs": job_counts(db),
    }
