"""The Review page through AppTest: edit -> stale -> refused accept, regenerate, undo, two sessions."""

from __future__ import annotations

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from store.chains import get_chain, insert_chain, upsert_composition
from store.models import Chain, Step
from store.review import chain_history

PAGE = str(Path(__file__).resolve().parents[1] / "app" / "app_pages" / "review.py")


def make_chain(db, outputs=("out one", "out two", "out three")) -> int:
    n = len(outputs)
    inputs = ["the input", *outputs[:-1]]
    steps = [
        Step(k, f"instruction {k}", inputs[k - 1], outputs[k - 1], origin="llm") for k in range(1, n + 1)
    ]
    comp = upsert_composition(db, "comp-1", length=n, verdict="yes", reason="they chain", confidence=0.9)
    return insert_chain(db, Chain(steps=steps, composition_id=comp, category="c", source="s"))[0]


def open_page(reviewer: str = "alice") -> AppTest:
    at = AppTest.from_file(PAGE, default_timeout=30)
    at.session_state["reviewer"] = reviewer
    at.run()
    assert not at.exception, at.exception
    return at


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
    at = open_page()
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


def test_regenerate_with_scripted_llm_then_accept(db):
    pytest.importorskip("pipeline.generate")
    from pipeline.llm import SETTING_BASE_URL, SETTING_MODEL
    from store.settings import set_setting
    from tests.fake_llm_server import ScriptedLLMServer

    cid = make_chain(db)
    with ScriptedLLMServer(latency=0) as server:
        server.enqueue("regenerated two", "regenerated three")
        set_setting(db, SETTING_BASE_URL, server.base_url)
        set_setting(db, SETTING_MODEL, "scripted")
        at = open_page()
        edit_step(at, cid, 1, "corrected one")
        at.button(key="regen").click().run()
        assert not at.exception, at.exception
        assert len(server.requests) == 2
    assert "regenerated two" in texts(at)
    at.button(key="apply_regen").click().run()
    chain = get_chain(db, cid)
    assert not chain.has_stale
    assert chain.outputs == ["corrected one", "regenerated two", "regenerated three"]
    assert chain.steps[2].input == "regenerated two"
    at.button(key="accept").click().run()
    assert not at.exception
    assert get_chain(db, cid).status == "accepted"


def test_two_sessions_saving_the_same_chain_one_conflict_no_lost_update(db):
    cid = make_chain(db)
    alice, bob = open_page("alice"), open_page("bob")
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
    at = open_page()
    assert "<script>alert(1)</script>" in texts(at) and "**bold**" in texts(at)
    assert not any("bold" in m.value for m in at.markdown)
    assert cid
