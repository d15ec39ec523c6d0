"""Why a chain needs review, shown on the chain: import problems, the eval run that reopened it,
the checker's doubt, the steps' flags; and what sending eval failures to Review would reopen."""

from __future__ import annotations

from store.chains import get_chain, insert_chain
from store.flags import encode_flags
from store.models import Chain, Step
from store.predictions import mark_chains_needs_review, reopen_counts
from store.reasons import review_reasons
from store.review import composition_info
from tests.support.chains import add_chain, chain_of


def test_eval_failure_is_recorded_on_the_chain_and_counts_as_risk(db):
    accepted = [insert_chain(db, chain_of(i, 2))[0] for i in range(3)]
    proposed = add_chain(db, 2, tag="p")
    assert reopen_counts(db, [*accepted, proposed, 999]) == {"accepted": 3, "proposed": 1}
    failure = {"eval_run": 7, "mode": "chain", "step": 2, "score": 0.125, "metric": "ROUGE-L"}
    n = mark_chains_needs_review(db, accepted[:2], author="ann", failures={accepted[0]: failure})
    assert n == 2
    chain = get_chain(db, accepted[0])
    assert chain.status == "needs_review" and chain.meta["eval_failure"] == failure
    assert review_reasons(chain) == ["eval run #7 (chain): step 2 scored 0.12 on ROUGE-L"]
    risks = dict(db.execute("SELECT id, risk FROM chains").fetchall())
    assert risks[accepted[0]] == 2 and risks[accepted[1]] == 0


def test_every_reason_in_plain_words(db):
    flags = encode_flags(
        [{"kind": "copied_input", "reason": "the output repeats its input (100% alike)", "severity": 3}]
    )
    steps = [Step(1, "a", "in", "x"), Step(2, "b", "x", "x", origin="llm", flag=flags)]
    chain = Chain(steps=steps, status="needs_review", meta={"issues": ["the output has 1 step(s), not 2"]})
    cid = insert_chain(db, chain)[0]
    doubted = add_chain(db, 2, tag="d", verdict="unknown", reason="the reply named no verdict")
    assert review_reasons(get_chain(db, cid)) == [
        "import: the output has 1 step(s), not 2",
        "step 2: the output repeats its input (100% alike)",
    ]
    other = get_chain(db, doubted)
    assert review_reasons(other, composition_info(db, other.composition_id)) == [
        "checker said unknown: the reply named no verdict"
    ]
    assert review_reasons(get_chain(db, add_chain(db, 2, tag="ok", verdict="yes"))) == []
