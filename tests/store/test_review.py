"""store.review: edits with stale propagation, optimistic locking, decisions, undo, queue, agreement."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from store.agreement import agreement, cohens_kappa, percent_agreement
from store.chains import get_chain
from store.errors import CoiError
from store.regenerate import Proposal, apply_regeneration, propose_regeneration
from store.review import (
    ConflictError,
    QueueFilter,
    chain_history,
    confirm_step,
    decide,
    original_output,
    queue_count,
    queue_ids,
    queue_page,
    reject_chains,
    reject_composition,
    save_step_output,
    status_counts,
    undo_last,
)
from tests.support.chains import add_chain


def test_edit_marks_later_steps_stale_and_logs(db):
    cid = add_chain(db)
    v = save_step_output(db, cid, 1, "fixed", author="alice", expected_version=1, reason="typo")
    assert v == 2
    chain = get_chain(db, cid)
    assert [s.stale for s in chain.steps] == [False, True, True]
    assert chain.steps[0].origin == "human" and chain.steps[0].output == "fixed"
    assert chain.steps[1].input == "fixed"
    out_edit = [e for e in chain_history(db, cid) if e.field == "output"][0]
    assert (out_edit.old, out_edit.new, out_edit.author, out_edit.reason) == (
        "a-out1",
        "fixed",
        "alice",
        "typo",
    )
    assert original_output(db, cid, 1) == "a-out1"
    with pytest.raises(CoiError, match="stale"):
        decide(db, cid, "accept", reviewer="alice", expected_version=2)
    assert get_chain(db, cid).status == "proposed"


def test_conflict_carries_the_other_change_and_loses_nothing(db):
    cid = add_chain(db)
    save_step_output(db, cid, 2, "bob's text", author="bob", expected_version=1)
    with pytest.raises(ConflictError) as info:
        save_step_output(db, cid, 2, "carol's text", author="carol", expected_version=1)
    err = info.value
    assert err.current_version == 2 and isinstance(err, CoiError)
    assert any(e.new == "bob's text" and e.author == "bob" for e in err.changes)
    assert get_chain(db, cid).steps[1].output == "bob's text"
    save_step_output(db, cid, 2, "carol's text", author="carol", expected_version=2)
    news = [e.new for e in chain_history(db, cid) if e.field == "output"]
    assert news == ["bob's text", "carol's text"]


def test_undo_restores_text_origin_and_stale_exactly_and_is_a_stack(db):
    cid = add_chain(db)
    before = get_chain(db, cid)
    v = save_step_output(db, cid, 1, "one", author="a", expected_version=1)
    v = save_step_output(db, cid, 2, "two", author="a", expected_version=v)
    v = undo_last(db, cid, author="a", expected_version=v)
    mid = get_chain(db, cid)
    assert mid.steps[1].output == "a-out2" and mid.steps[1].stale and mid.steps[1].origin == "llm"
    assert mid.steps[0].output == "one"
    v = undo_last(db, cid, author="a", expected_version=v)
    after = get_chain(db, cid)
    assert after.steps == before.steps
    assert [e.undoes for e in chain_history(db, cid) if e.undoes] != []
    with pytest.raises(CoiError, match="no edit to undo"):
        undo_last(db, cid, author="a", expected_version=v)


def test_undo_of_a_decision_restores_status(db):
    cid = add_chain(db)
    v = decide(db, cid, "reject", reviewer="r", expected_version=1, reason="unsafe")
    assert get_chain(db, cid).status == "rejected"
    undo_last(db, cid, author="r", expected_version=v)
    assert get_chain(db, cid).status == "proposed"
    status_edit = [e for e in chain_history(db, cid) if e.field == "status"]
    assert status_edit[0].old == "proposed" and status_edit[0].new == "rejected"
    assert db.execute("SELECT decision, reason FROM reviews").fetchall() == [("reject", "unsafe")]


@dataclass
class FakeResult:
    output: str
    llm_call_id: int | None = None
    error: str | None = None


def test_regeneration_feeds_each_output_forward_and_clears_stale(db):
    cid = add_chain(db)
    v = save_step_output(db, cid, 1, "X", author="a", expected_version=1)
    calls = []

    def generate(instruction, input_text):
        calls.append(input_text)
        return FakeResult(f"gen({input_text})")

    proposals = propose_regeneration(get_chain(db, cid), generate)
    assert calls == ["X", "gen(X)"]
    assert [p.old_output for p in proposals] == ["a-out2", "a-out3"]
    v = apply_regeneration(db, cid, proposals, {2: True, 3: True}, author="a", expected_version=v)
    chain = get_chain(db, cid)
    assert not chain.has_stale
    assert chain.outputs == ["X", "gen(X)", "gen(gen(X))"] and chain.steps[2].input == "gen(X)"
    assert [s.origin for s in chain.steps] == ["human", "llm", "llm"]
    decide(db, cid, "accept", reviewer="a", expected_version=v)
    assert get_chain(db, cid).status == "accepted"


def test_discarding_a_proposal_keeps_old_output_and_later_kept_one_stays_stale(db):
    cid = add_chain(db)
    v = save_step_output(db, cid, 1, "X", author="a", expected_version=1)
    proposals = propose_regeneration(get_chain(db, cid), lambda i, t: FakeResult(f"g({t})"))
    v = apply_regeneration(db, cid, proposals, {2: False, 3: True}, author="a", expected_version=v)
    chain = get_chain(db, cid)
    assert chain.steps[1].output == "a-out2" and chain.steps[1].stale
    assert chain.steps[2].output == "g(g(X))" and chain.steps[2].stale  # made from a discarded input
    v = confirm_step(db, cid, 2, author="a", expected_version=v)
    v = save_step_output(db, cid, 3, "final", author="a", expected_version=v)
    assert not get_chain(db, cid).has_stale


def test_queue_filters_sorts_and_paginates(db):
    ids = [
        add_chain(db, n=1 + i % 3, tag=f"t{i}", category="c" + str(i % 2), confidence=i / 10)
        for i in range(9)
    ]
    assert [r.id for r in queue_page(db, QueueFilter(), limit=3)] == ids[::-1][:3]
    assert [r.id for r in queue_page(db, QueueFilter(), offset=3, limit=3)] == ids[::-1][3:6]
    assert {r.length for r in queue_page(db, QueueFilter(lengths=(2,)))} == {2}
    assert {r.category for r in queue_page(db, QueueFilter(category="c1"))} == {"c1"}
    low = queue_page(db, QueueFilter(sort="least_confident"), limit=1)[0]
    assert low.id == ids[0]
    assert [r.id for r in queue_page(db, QueueFilter(sort="most_confident"), limit=2)] == ids[::-1][:2]
    assert queue_count(db, QueueFilter(sort="most_confident")) == (9, False)
    r1 = queue_ids(db, QueueFilter(sort="random", seed=1))
    assert r1 == queue_ids(db, QueueFilter(sort="random", seed=1)) and sorted(r1) == sorted(ids)
    paged = [
        r.id
        for k in range(3)
        for r in queue_page(db, QueueFilter(sort="random", seed=1), offset=3 * k, limit=3)
    ]
    assert paged == r1
    assert r1 != queue_ids(db, QueueFilter(sort="random", seed=2))
    assert queue_count(db, QueueFilter()) == (9, False)
    assert queue_count(db, QueueFilter(), cap=5) == (5, True)


def test_queue_search_stale_status_and_pending_for(db):
    a = add_chain(db, tag="alpha", verdict="no")
    b = add_chain(db, tag="beta", verdict="yes")
    assert [r.id for r in queue_page(db, QueueFilter(verdict="no"))] == [a]
    assert queue_page(db, QueueFilter(verdict="yes"))[0].verdict == "yes"
    assert [r.id for r in queue_page(db, QueueFilter(search="beta"))] == [b]
    assert [r.id for r in queue_page(db, QueueFilter(search='alpha" OR "x'))] == []  # no query syntax
    save_step_output(db, a, 1, "zebra words", author="u", expected_version=1)
    assert [r.id for r in queue_page(db, QueueFilter(search="zebra"))] == [a]
    assert [r.id for r in queue_page(db, QueueFilter(stale=True))] == [a]
    assert queue_page(db, QueueFilter(stale=True))[0].n_stale == 2
    assert [r.id for r in queue_page(db, QueueFilter(stale=False))] == [b]
    decide(db, b, "reject", reviewer="u", expected_version=1)
    assert [r.id for r in queue_page(db, QueueFilter())] == [a]
    assert status_counts(db)["rejected"] == 1
    assert [r.id for r in queue_page(db, QueueFilter(statuses=("rejected",), reviewer="u"))] == [b]
    assert [r.id for r in queue_page(db, QueueFilter(statuses=(), pending_for="u"))] == [a]


def test_reject_composition_and_bulk(db):
    c1 = add_chain(db, n=1, tag="x", comp="same")
    c2 = add_chain(db, n=2, tag="y", comp="same")
    other = add_chain(db, n=2, tag="z")
    comp = get_chain(db, c1).composition_id
    assert reject_composition(db, comp, reviewer="r") == 2
    assert {get_chain(db, c).status for c in (c1, c2)} == {"rejected"}
    assert get_chain(db, other).status == "proposed"
    assert reject_chains(db, queue_ids(db, QueueFilter()), reviewer="r", reason="bulk") == 1
    assert status_counts(db)["rejected"] == 3
    assert db.execute("SELECT count(*) FROM edits WHERE field = 'status'").fetchone()[0] == 3


def test_double_review_needs_two_reviewers_and_reports_agreement(db):
    ids = [add_chain(db, n=1, tag=f"d{i}") for i in range(4)]
    plan = [("accept", "accept"), ("reject", "reject"), ("accept", "reject"), ("accept", None)]
    for cid, (first, second) in zip(ids, plan):
        v = decide(db, cid, first, reviewer="ann", expected_version=1, double=True)
        assert get_chain(db, cid).status == "proposed"
        if second:
            decide(db, cid, second, reviewer="ben", expected_version=v, double=True)
    assert [get_chain(db, c).status for c in ids] == ["accepted", "rejected", "needs_review", "proposed"]
    result = agreement(db)
    assert (result.n_pairs, result.pending) == (3, 1)
    assert result.percent == pytest.approx(2 / 3)
    # p_o = 2/3; ann: 2 accept 1 reject, ben: 1 accept 2 reject; p_e = (2*1 + 1*2)/9 = 4/9
    assert result.kappa == pytest.approx((2 / 3 - 4 / 9) / (1 - 4 / 9))


def test_kappa_against_hand_computed_values():
    # 50 items: both yes 20, A yes/B no 5, A no/B yes 10, both no 15.
    pairs = [("y", "y")] * 20 + [("y", "n")] * 5 + [("n", "y")] * 10 + [("n", "n")] * 15
    # p_o = 35/50 = 0.7; p_e = 0.5*0.6 + 0.5*0.4 = 0.5; kappa = 0.4
    assert cohens_kappa(pairs) == pytest.approx(0.4)
    assert percent_agreement(pairs) == pytest.approx(0.7)
    assert cohens_kappa([("y", "n"), ("n", "y")]) == pytest.approx(-1.0)
    assert cohens_kappa([("y", "y")]) is None and cohens_kappa([]) is None


def test_concurrent_saves_from_separate_connections_one_wins(db, db_path):
    import threading

    from store.db import connect

    cid = add_chain(db)
    barrier = threading.Barrier(6)
    outcomes: list[str] = []

    def reviewer(name: str) -> None:
        conn = connect(db_path)
        try:
            barrier.wait()
            save_step_output(conn, cid, 2, f"text by {name}", author=name, expected_version=1)
            outcomes.append("saved")
        except ConflictError:
            outcomes.append("conflict")
        finally:
            conn.conn.close()

    threads = [threading.Thread(target=reviewer, args=(f"r{i}",)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(outcomes) == ["conflict"] * 5 + ["saved"]
    saved = [e for e in chain_history(db, cid) if e.field == "output"]
    assert len(saved) == 1 and get_chain(db, cid).steps[1].output == saved[0].new
    assert get_chain(db, cid).version == 2


def test_a_confirmed_middle_step_goes_stale_again_when_its_input_is_regenerated(db):
    cid = add_chain(db, n=4)
    v = save_step_output(db, cid, 1, "X", author="a", expected_version=1)
    v = confirm_step(db, cid, 3, author="a", expected_version=v)
    proposals = propose_regeneration(get_chain(db, cid), lambda i, t: FakeResult(f"g({t})"))
    assert [p.position for p in proposals] == [2, 4]
    assert proposals[1].input == "a-out3"  # a fresh step's output carries on unchanged
    apply_regeneration(db, cid, proposals, {2: True, 4: True}, author="a", expected_version=v)
    chain = get_chain(db, cid)
    assert chain.steps[2].input == "g(X)" and chain.steps[2].stale  # its input changed under it
    assert [s.stale for s in chain.steps] == [False, False, True, False]


def test_saving_the_same_text_changes_nothing(db):
    cid = add_chain(db)
    assert save_step_output(db, cid, 3, "a-out3", author="a", expected_version=1) == 1
    assert get_chain(db, cid).version == 1 and chain_history(db, cid) == []


@pytest.mark.parametrize(
    "new, error, why",
    [
        ("A fresh answer.", None, None),
        ("", None, "the new output is empty"),
        ("  the INPUT text ", None, "the new output repeats its input"),
        ("old answer", None, "the new output is the old one"),
        ("", "HTTP 500", "the LLM call failed"),
    ],
)
def test_keep_is_not_preselected_for_an_empty_copied_or_unchanged_output(new, error, why):
    proposal = Proposal(2, "Do it.", "the input text", "Old answer", new, None, error)
    assert proposal.why_not_keep == why
