"""The Review page through AppTest: edit -> stale -> refused accept, regenerate, undo, two sessions."""

from __future__ import annotations

from streamlit.testing.v1 import AppTest

from store.chains import get_chain, insert_chain, upsert_composition
from store.models import Chain, Step
from store.review import chain_history
from tests.support.chains import add_chain
from tests.support.llm_server import ScriptedLLMServer
from tests.support.pages import open_page
from tests.support.probes import wait


def make_chain(db, outputs=("out one", "out two", "out three")) -> int:
    """A proposed chain with a checker verdict, as the pipeline leaves it."""
    return add_chain(
        db,
        outputs=outputs,
        first_input="the input",
        comp="comp-1",
        verdict="yes",
        reason="they chain",
        confidence=0.9,
        category="c",
        source="s",
    )


def edit_step(at: AppTest, chain_id: int, position: int, text: str, version: int = 1) -> AppTest:
    key = f"c{chain_id}v{version}_{position}"
    at.text_area(key=f"{key}_text").set_value(text)
    at.button(key=f"{key}_save").click()
    at.run()
    assert not at.exception, at.exception
    return at


def texts(at: AppTest) -> list[str]:
    return [c.value for c in at.code]


def test_edit_marks_stale_refuses_accept_then_undo_restores(db):
    cid = make_chain(db)
    at = open_page("review")
    assert "out two" in texts(at)
    edit_step(at, cid, 1, "corrected one")
    chain = get_chain(db, cid)
    assert [s.stale for s in chain.steps] == [False, True, True]
    assert [(e.field, e.old, e.new, e.author) for e in chain_history(db, cid) if e.field == "output"] == [
        ("output", "out one", "corrected one", "alice")
    ]
    at.button(key="accept").click().run()
    assert any("stale" in e.value for e in at.error)
    assert get_chain(db, cid).status == "proposed"
    at.button(key="undo").click().run()
    restored = get_chain(db, cid)
    assert restored.steps[0].output == "out one" and restored.steps[0].origin == "llm"
    assert not restored.has_stale
    assert "out one" in texts(at)


def scripted_endpoint(db, server) -> None:
    from pipeline.llm import SETTING_BASE_URL, SETTING_MODEL
    from store.settings import set_setting

    set_setting(db, SETTING_BASE_URL, server.base_url)
    set_setting(db, SETTING_MODEL, "scripted")


def regen_job(db, cid: int):
    from store.regenerate import latest_regeneration

    return latest_regeneration(db, cid)


def wait_regen(db, cid: int, at: AppTest):
    """Wait for the chain's regenerate job (a real subprocess) to end, then redraw the page."""
    job = wait(lambda: (j := regen_job(db, cid)) and not j.active and j, timeout=120, what="regeneration")
    at.run()
    assert not at.exception, at.exception
    return job


def regenerate_after_editing_step_1(db, cid: int, *replies: str) -> tuple[AppTest, int]:
    """Edit step 1, press Regenerate against a scripted LLM, wait for the job; returns the page and
    the requests the LLM got."""
    with ScriptedLLMServer(latency=0) as server:
        server.enqueue(*replies)
        scripted_endpoint(db, server)
        at = open_page("review")
        edit_step(at, cid, 1, "corrected one")
        at.button(key="regen").click().run()
        assert any("in the background" in i.value for i in at.info)
        job = wait_regen(db, cid, at)
        assert job.kind == "regenerate" and job.status == "succeeded", job.error
        return at, len(server.requests)


def test_regenerate_runs_as_a_job_then_apply_and_accept(db):
    cid = make_chain(db)
    at, requests = regenerate_after_editing_step_1(db, cid, "regenerated two", "regenerated three")
    assert requests == 2
    assert "[-out-]{+regenerated+} two" in texts(at)  # the word diff of step 2
    at.button(key="apply_regen").click().run()
    chain = get_chain(db, cid)
    assert not chain.has_stale
    assert chain.outputs == ["corrected one", "regenerated two", "regenerated three"]
    assert chain.steps[2].input == "regenerated two"
    assert "closed" in regen_job_any(db, cid).result and regen_job(db, cid) is None
    assert not at.get("checkbox") or not any(c.key.startswith("keep_") for c in at.checkbox)
    at.button(key="accept").click().run()
    assert not at.exception
    assert get_chain(db, cid).status == "accepted"


def regen_job_any(db, cid: int):
    from store.jobs import list_jobs

    return next(j for j in list_jobs(db, kind="regenerate") if j.config["chain_id"] == cid)


def test_keep_is_not_ticked_for_a_copy_of_the_input(db):
    cid = make_chain(db)
    # Step 2's new input is "corrected one": a reply repeating it is not a new output.
    at, _ = regenerate_after_editing_step_1(db, cid, "corrected one", "a real three")
    job = regen_job(db, cid)
    assert at.checkbox(key=f"keep_{job.id}_2").value is False
    assert at.checkbox(key=f"keep_{job.id}_3").value is True
    assert any("repeats its input" in c.value for c in at.caption)


def test_regeneration_can_be_cancelled_and_the_reviewer_keeps_working(db):
    cid = make_chain(db)
    other = add_simple(db, "other")
    with ScriptedLLMServer(latency=60) as server:  # the LLM never answers in time
        scripted_endpoint(db, server)
        at = open_page("review")
        at.selectbox(key="review_pick").set_value(cid).run()
        edit_step(at, cid, 1, "corrected one")
        at.button(key="regen").click().run()
        wait(lambda: server.requests, timeout=60, what="the job's first LLM call")
        at.run()
        job = regen_job(db, cid)
        assert job.status == "running" and job.total == 2
        assert any("0 of 2 steps" in p.text for p in at.get("progress"))
        # Meanwhile the reviewer decides another chain.
        at.selectbox(key="review_pick").set_value(other).run()
        at.button(key="accept").click().run()
        assert get_chain(db, other).status == "accepted"
        at.selectbox(key="review_pick").set_value(cid).run()
        at.button(key=f"regen_cancel_{job.id}").click().run()
        ended = wait_regen(db, cid, at)
    assert ended.status == "cancelled"
    assert get_chain(db, cid).outputs == ["corrected one", "out two", "out three"]  # nothing applied
    assert any("cancelled" in w.value for w in at.warning)
    at.button(key="discard_regen").click().run()
    assert regen_job(db, cid) is None


def test_two_sessions_saving_the_same_chain_one_conflict_no_lost_update(db):
    cid = make_chain(db)
    alice, bob = open_page("review", reviewer="alice"), open_page("review", reviewer="bob")
    edit_step(alice, cid, 2, "alice's two")
    edit_step(bob, cid, 2, "bob's two")
    assert any("changed by alice" in e.value for e in bob.error)
    assert "alice's two" in texts(bob)  # bob sees the other change
    assert get_chain(db, cid).steps[1].output == "alice's two"
    assert get_chain(db, cid).version == 2
    bob.button(key="reload_conflict").click().run()
    edit_step(bob, cid, 2, "bob's two", version=2)
    news = [e.new for e in chain_history(db, cid) if e.field == "output"]
    assert news == ["alice's two", "bob's two"]  # both saved, in order; nothing lost


def test_user_text_is_shown_literally(db):
    cid = make_chain(db, outputs=("<script>alert(1)</script>", "**bold**"))
    at = open_page("review")
    assert "<script>alert(1)</script>" in texts(at) and "**bold**" in texts(at)
    assert not any("bold" in m.value for m in at.markdown)
    assert cid


def add_simple(db, tag: str, comp: str | None = None) -> int:
    steps = [Step(1, f"instr {tag}", f"in {tag}", f"out {tag}", origin="llm")]
    comp_id = upsert_composition(db, comp or f"comp-{tag}", length=1)
    return insert_chain(db, Chain(steps=steps, composition_id=comp_id))[0]


def current_id(at: AppTest) -> int:
    heading = next(h.value for h in at.subheader if h.value.startswith("Chain #"))
    return int(heading.split("#")[1].split()[0])


def test_decisions_move_the_queue_and_undo_brings_a_decision_back(db):
    first, second, third = (add_simple(db, t) for t in ("a", "b", "c"))
    at = open_page("review")
    assert current_id(at) == third  # newest first
    at.button(key="accept").click().run()
    assert get_chain(db, third).status == "accepted" and current_id(at) == second
    at.button(key="undo").click().run()
    assert get_chain(db, third).status == "proposed" and current_id(at) == third
    at.button(key="skip").click().run()
    assert current_id(at) == second and get_chain(db, third).status == "proposed"
    at.selectbox(key="reject_tag").set_value("unsafe")
    at.button(key="reject").click().run()
    assert get_chain(db, second).status == "rejected" and current_id(at) == first
    assert db.execute("SELECT decision, reason FROM reviews ORDER BY id").fetchall() == [
        ("accept", ""),
        ("skip", ""),
        ("reject", "unsafe"),
    ]
    statuses = [(e.field, e.old, e.new) for e in chain_history(db, second) if e.field == "status"]
    assert statuses == [("status", "proposed", "rejected")]


def test_reject_composition_and_bulk_reject_filtered_set(db):
    a = add_simple(db, "a", comp="shared")
    b = add_simple(db, "b", comp="shared")
    others = [add_simple(db, t) for t in ("c", "d")]
    at = open_page("review")
    at.selectbox(key="review_pick").set_value(b).run()
    at.button(key="reject_composition").click().run()
    assert {get_chain(db, c).status for c in (a, b)} == {"rejected"}
    assert {get_chain(db, c).status for c in others} == {"proposed"}
    at.run()  # the decision redrew only the fragments; AppTest's tree holds the sidebar after a full run
    at.sidebar.radio(key="bulk_decision").set_value("reject").run()
    at.sidebar.checkbox(key="bulk_sure").check().run()
    at.sidebar.button(key="bulk_go").click().run()
    assert {get_chain(db, c).status for c in others} == {"rejected"}


def test_bulk_accept_states_the_count_skips_stale_chains_and_undoes_as_one_step(db):
    from store.review import save_step_output

    ids = [make_chain(db), add_simple(db, "b"), add_simple(db, "c")]
    save_step_output(db, ids[0], 1, "edited", author="bob", expected_version=1)  # its later steps go stale
    at = open_page("review")
    assert at.sidebar.checkbox(key="bulk_sure").label == "Yes, accept all 3 chains that match the filters"
    assert at.sidebar.button(key="bulk_go").disabled  # nothing happens before the yes
    at.sidebar.checkbox(key="bulk_sure").check().run()
    at.sidebar.button(key="bulk_go").click().run()
    assert not at.exception, at.exception
    assert [get_chain(db, c).status for c in ids] == ["proposed", "accepted", "accepted"]
    assert "Accepted 2 chains (left: 1 stale steps)." in [m.value for m in at.success]
    at.button(key="undo").click().run()
    assert [get_chain(db, c).status for c in ids] == ["proposed", "proposed", "proposed"]
    assert "Undid the last change on 2 chains." in [m.value for m in at.success]


def test_bulk_refuses_when_the_filtered_set_changed_since_the_confirmation(db):
    ids = [add_simple(db, t) for t in ("a", "b", "c")]
    at = open_page("review")
    at.sidebar.checkbox(key="bulk_sure").check().run()
    assert at.sidebar.button(key="bulk_go").label == "Accept 3 chains"
    # Another reviewer (or this one, in the chain view: a fragment redraw) decides a chain meanwhile.
    other = open_page("review", reviewer="bob")
    other.button(key="reject").click().run()
    rejected = [c for c in ids if get_chain(db, c).status == "rejected"]
    at.sidebar.button(key="bulk_go").click().run()
    assert [get_chain(db, c).status for c in rejected] == ["rejected"]  # not re-accepted
    assert any("changed from 3 to 2 chains" in e.value for e in at.warning)
    at.sidebar.checkbox(key="bulk_sure").check().run()
    at.sidebar.button(key="bulk_go").click().run()
    assert sorted(get_chain(db, c).status for c in ids) == ["accepted", "accepted", "rejected"]


def test_double_review_shows_agreement(db):
    ids = [add_simple(db, t) for t in ("a", "b")]
    ann = open_page("review", reviewer="ann")
    ann.sidebar.toggle(key="double_review").set_value(True).run()
    ann.button(key="accept").click().run()
    ann.button(key="accept").click().run()
    assert not any(h.value.startswith("Chain #") for h in ann.subheader)  # nothing left for ann
    assert {get_chain(db, c).status for c in ids} == {"proposed"}
    ben = open_page("review", reviewer="ben")
    ben.button(key="accept").click().run()
    ben.button(key="reject").click().run()
    assert sorted(get_chain(db, c).status for c in ids) == ["accepted", "needs_review"]
    metrics = {m.label: m.value for m in ben.sidebar.metric}
    assert metrics["Agreement"] == "50%"
    assert metrics["Cohen's kappa"] == "0.00"


def test_filters_search_and_pages(db):
    ids = [add_simple(db, f"w{i}") for i in range(25)]
    at = open_page("review")
    assert queue_label(at) == "Queue: 1-20 of 25"
    at.button(key="next_page").click().run()
    assert queue_label(at) == "Queue: 21-25 of 25"
    at.run()  # paging redrew only the queue and the chain; AppTest holds the sidebar after a full run
    at.sidebar.text_input(key="search").set_value("w7").run()
    assert current_id(at) == ids[7]
    assert queue_label(at) == "Queue: 1-1 of 1"


def queue_label(at: AppTest) -> str:
    return next(e.label for e in at.expander if e.label.startswith("Queue:"))


def test_confirming_stale_steps_as_is_allows_accept(db):
    cid = make_chain(db)
    at = open_page("review")
    edit_step(at, cid, 1, "corrected one")
    at.button(key=f"c{cid}v2_2_confirm").click().run()
    at.button(key=f"c{cid}v3_3_confirm").click().run()
    assert not get_chain(db, cid).has_stale
    at.button(key="accept").click().run()
    assert get_chain(db, cid).status == "accepted"
    fields = [(e.position, e.field, e.new) for e in chain_history(db, cid) if e.reason == "confirmed as is"]
    assert fields == [(2, "stale", "0"), (3, "stale", "0")]


def test_regenerate_discard_keeps_old_output_stale(db):
    cid = make_chain(db)
    at, _ = regenerate_after_editing_step_1(db, cid, "new two", "new three")
    at.checkbox(key=f"keep_{regen_job(db, cid).id}_2").uncheck()
    at.button(key="apply_regen").click().run()
    chain = get_chain(db, cid)
    assert chain.outputs == ["corrected one", "out two", "new three"]
    assert [s.stale for s in chain.steps] == [False, True, True]  # step 3 was made from the discarded input
    at.button(key="accept").click().run()
    assert any("stale" in e.value for e in at.error)


def test_reviewer_name_is_per_session(db):
    cid = add_simple(db, "n")
    at = open_page("review", reviewer="alice")
    at.sidebar.text_input(key="review_name").set_value("zoe").run()
    at.button(key="accept").click().run()
    assert db.execute("SELECT reviewer FROM reviews").fetchall() == [("zoe",)]
    assert get_chain(db, cid).reviewer == "zoe"


def _flagged_chain(db) -> int:
    from store.flags import encode_flags

    flag = {
        "kind": "copied_input",
        "reason": "the output repeats its input (100% alike) <b>x</b>",
        "severity": 3,
    }
    steps = [
        Step(1, "Summarize.", "the input", "a summary", origin="gold"),
        Step(2, "Translate.", "a summary", "a summary", origin="llm", flag=encode_flags([flag])),
    ]
    return insert_chain(db, Chain(steps=steps, status="proposed", source="gen"))[0]


def test_risk_first_shows_the_flagged_chain_with_why_and_its_flag(db):
    quiet = make_chain(db)
    flagged = _flagged_chain(db)
    at = open_page("review")
    at.sidebar.selectbox[[s.label for s in at.sidebar.selectbox].index("Sort")].set_value("risk").run()
    assert not at.exception, [e.stack_trace for e in at.exception]
    assert (
        at.selectbox(key="review_pick").value == flagged
    )  # risk first, though it is not the newest... both new
    shown = [t.value for t in at.text]
    assert any("step 2: the output repeats its input (100% alike) <b>x</b>" in t for t in shown)  # as text
    assert any(t.startswith("🚩 copied input:") for t in shown)
    assert "Steps 1-1 (no flags)" in [e.label for e in at.expander]  # the view opens at the first flag
    at.selectbox(key="flag_kind").set_value("copied_input").run()
    assert at.selectbox(key="review_pick").options == [f"#{flagged} · 2 steps · proposed"]
    assert quiet != flagged


def test_short_instruction_proposals_are_reviewed_on_the_page(db):
    from store.models import Task
    from store.tasks import get_tasks, insert_tasks, propose_short_instruction

    task = Task(instruction="Rewrite the paragraph in simpler words for a child.", input="x", output="y")
    insert_tasks(db, [task])
    propose_short_instruction(db, task.id, "Write a child's paragraph.", None)
    make_chain(db)
    at = open_page("review")
    assert any(e.label.startswith("Short instructions to review (1") for e in at.expander)
    at.text_input(key=f"short_{task.id}").set_value("Simplify the paragraph for a child.")
    at.button(key=f"short_accept_{task.id}").click().run()
    assert not at.exception, at.exception
    stored = get_tasks(db, [task.id])[0]
    assert (stored.short_status, stored.short_instruction) == (
        "accepted",
        "Simplify the paragraph for a child.",
    )
