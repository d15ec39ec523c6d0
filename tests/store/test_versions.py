"""Dataset versions: split by composition, held-out lengths, immutability, JSONL and DatasetDict export."""

from __future__ import annotations

import io
import json
import zipfile

import pytest

from store.chains import get_chain, insert_chain, upsert_composition
from store.errors import CoiError
from store.models import Chain, Step
from store.review import decide, save_step_output
from store.versions import (
    SplitSpec,
    composition_overlap,
    create_version,
    export_version_hf,
    export_version_jsonl,
    list_versions,
    selectable_counts,
    version_records,
    version_summary,
    version_zip,
)


def add_chain(db, comp_key: str, n: int, tag: str, status: str = "accepted") -> int:
    outputs = [f"{tag} out {k}" for k in range(1, n + 1)]
    inputs = [f"{tag} in", *outputs[:-1]]
    steps = [Step(k, f"{comp_key} instr {k}", inputs[k - 1], outputs[k - 1]) for k in range(1, n + 1)]
    comp = upsert_composition(db, comp_key, length=n)
    return insert_chain(db, Chain(steps=steps, composition_id=comp, status=status))[0]


@pytest.fixture
def filled(db):
    for c in range(10):
        for n in (1, 2, 3, 4, 5):
            add_chain(db, f"comp{c}-len{n}", n, f"c{c}a")
            add_chain(db, f"comp{c}-len{n}", n, f"c{c}b")
    add_chain(db, "rejected-one", 2, "r", status="rejected")
    return db


def test_split_by_composition_with_held_out_lengths(filled):
    db = filled
    vid = create_version(db, SplitSpec(test_fraction=0.3, seed=1), name="v1", created_by="alice")
    train = version_records(db, vid, "train")
    test = version_records(db, vid, "test")
    assert {r["length"] for r in train} <= {1, 2, 3}
    assert {r["length"] for r in test} == {1, 2, 3, 4, 5}
    assert composition_overlap(db, vid) == 0
    assert not {r["composition_id"] for r in train} & {r["composition_id"] for r in test}
    info = list_versions(db)[0]
    assert info.split_sizes == {"train": len(train), "test": len(test)} and len(info.content_hash) == 64
    assert info.filter["train_lengths"] == [1, 2, 3]
    assert sum(row["records"] for row in version_summary(db, vid)) == len(train) + len(test)
    assert all(r["chain_id"] for r in train)  # rejected chains are not in it
    assert "r in" not in {r["input"] for r in train + test}


def test_version_is_immutable_and_later_edits_make_a_new_one(filled):
    db = filled
    vid = create_version(db, SplitSpec(seed=3))
    frozen = version_records(db, vid, "train") + version_records(db, vid, "test")
    assert create_version(db, SplitSpec(seed=3)) == vid  # same content -> same version
    target = frozen[0]["chain_id"]
    chain = get_chain(db, target)
    v = save_step_output(db, target, chain.length, "edited later", author="a", expected_version=chain.version)
    assert get_chain(db, target).status == "accepted"
    vid2 = create_version(db, SplitSpec(seed=3))
    assert vid2 != vid
    assert version_records(db, vid, "train") + version_records(db, vid, "test") == frozen
    new = {r["chain_id"]: r for r in version_records(db, vid2, "train") + version_records(db, vid2, "test")}
    assert new[target]["outputs"][-1] == "edited later"
    assert v == chain.version + 1


def test_stale_chains_block_a_version(db):
    cid = add_chain(db, "x", 3, "s")
    save_step_output(db, cid, 1, "changed", author="a", expected_version=1)
    assert selectable_counts(db, SplitSpec()) == {"chains": 1, "stale": 1}
    with pytest.raises(CoiError, match="stale"):
        create_version(db, SplitSpec())


def test_jsonl_export_is_the_papers_format(filled, tmp_path):
    db = filled
    vid = create_version(db, SplitSpec(seed=0))
    paths = export_version_jsonl(db, vid, tmp_path / "out")
    lines = [json.loads(x) for x in paths["train"].read_text("utf-8").splitlines()]
    assert lines and all(set(r) == {"instruction", "input", "output"} for r in lines)
    two = next(
        r for r in lines if " and then " in r["instruction"] and r["instruction"].count(" and then ") == 1
    )
    assert "Task 1 output and task 2 input: " in two["output"] and "Task 2 output: " in two["output"]
    assert len(lines) == len(version_records(db, vid, "train"))
    names = zipfile.ZipFile(io.BytesIO(version_zip(db, vid, "jsonl"))).namelist()
    assert sorted(names) == ["test.jsonl", "train.jsonl"]


@pytest.mark.slow
def test_hf_export_round_trips(filled, tmp_path):
    import datasets

    db = filled
    vid = create_version(db, SplitSpec(seed=0))
    path = export_version_hf(db, vid, tmp_path / "hf")
    loaded = datasets.load_from_disk(str(path))
    assert set(loaded) == {"train", "test"}
    records = version_records(db, vid, "test")
    assert loaded["test"].num_rows == len(records)
    assert loaded["test"][0]["outputs"] == records[0]["outputs"]
    assert loaded["test"][0]["output"] == records[0]["output"]


def test_decisions_feed_versions(db):
    cid = add_chain(db, "y", 2, "p", status="proposed")
    with pytest.raises(CoiError, match="No chains"):
        create_version(db, SplitSpec())
    decide(db, cid, "accept", reviewer="a", expected_version=1)
    vid = create_version(db, SplitSpec(test_fraction=0.0))
    assert [r["chain_id"] for r in version_records(db, vid, "train")] == [cid]


def test_datasets_page_freezes_a_version(filled):
    from pathlib import Path

    from streamlit.testing.v1 import AppTest

    page = str(Path(__file__).resolve().parents[2] / "app" / "app_pages" / "datasets.py")
    at = AppTest.from_file(page, default_timeout=30)
    at.session_state["reviewer"] = "alice"
    at.run()
    assert not at.exception, at.exception
    assert any("No versions yet" in i.value for i in at.info)
    at.text_input[0].set_value("first")
    at.button[0].click().run()
    assert not at.exception, at.exception
    assert any("Version #1 created" in s.value for s in at.success)
    assert [v.name for v in list_versions(filled)] == ["first"]
    assert any("Compositions in both train and test: 0" in c.value for c in at.caption)


@pytest.mark.slow
def test_hf_zip_holds_a_loadable_datasetdict(filled, tmp_path):
    import datasets

    vid = create_version(filled, SplitSpec(seed=0))
    zipfile.ZipFile(io.BytesIO(version_zip(filled, vid, "hf"))).extractall(tmp_path / "x")
    loaded = datasets.load_from_disk(str(tmp_path / "x"))
    assert loaded["train"].num_rows == len(version_records(filled, vid, "train"))


def test_get_chains_takes_more_ids_than_sqlite_allows_in_one_statement(db):
    """A freeze of a million-chain database asks for hundreds of thousands of chains at once."""
    from store.chains import get_chains

    first, second = add_chain(db, "a", 2, "x"), add_chain(db, "b", 3, "y")
    ids = [second, *range(10_000_000, 10_300_000), first]  # 300,002 ids: past the 250,000-variable cap
    chains = get_chains(db, ids)
    assert [c.id for c in chains] == [second, first]
    assert [len(c.steps) for c in chains] == [3, 2]
