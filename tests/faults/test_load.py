"""Reviewer load in small: concurrent sessions (processes) saving edits lose none; conflicts are handled.

The same harness as bench/load.py (bench/load_harness.py) on 2,000 chains for a few seconds: two
sessions through the Review page in AppTest and two through the store function the page calls, all
editing a hot set of 3 chains often, so optimistic-lock conflicts happen. No timing asserts.
"""

from __future__ import annotations

import random

import pytest

from bench.chains_db import fill
from bench.load_harness import Audit, audit, hot_set, run_load
from store.db import connect

N_CHAINS = 2_000


@pytest.fixture()
def load_db(tmp_path):
    path = tmp_path / "load.db"
    db = connect(path)
    fill(db, N_CHAINS, random.Random(3))
    db.conn.close()
    return path


@pytest.mark.slow
def test_four_concurrent_sessions_lose_no_edit_and_resolve_conflicts(load_db, tmp_path):
    report = run_load(
        load_db,
        ["apptest", "apptest", "store", "store"],
        seconds=5,
        n_chains=N_CHAINS,
        hot=hot_set(N_CHAINS, 3),
        p_hot=0.5,
        workdir=tmp_path,
    )
    assert report.errors() == []
    assert {s.mode for s in report.sessions if s.acks} == {"apptest", "store"}  # both paths saved
    assert report.saves > 20
    assert report.audit.lost_edits == 0, report.audit
    assert report.audit.broken_links == 0 and report.audit.unacknowledged_rows == 0
    # Conflicts happened and each was retried after a reload (none silently dropped).
    assert report.total("conflicts") > 0
    assert report.total("retries") == report.total("conflicts") - report.total("gave_up")


def test_audit_counts_a_lost_update_and_an_overwrite(load_db):
    """The audit is not vacuous: fake acknowledgements that the database does not back are counted."""
    from store.review import save_step_output

    db = connect(load_db)
    v = save_step_output(db, 5, 1, "kept text", author="load-1", expected_version=1)
    db.conn.close()
    good = dict(chain=5, position=1, text="kept text", version=v, ms=1.0)
    assert audit(load_db, [good], ["load-1"]) == Audit(acks=1)
    lost = dict(chain=5, position=1, text="never saved", version=v + 1, ms=1.0)
    found = audit(load_db, [good, lost], ["load-1"])
    assert found.missing_rows == 1 and found.overwritten == 1 and found.lost_edits == 2
    twin = dict(good, text="same version twice")
    assert audit(load_db, [good, twin], ["load-1"]).same_version == 1
