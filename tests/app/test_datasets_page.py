"""The Datasets page freezes a version with a fixed test source, as `coi version create --test-source` does."""

from __future__ import annotations

import json

from store.importers import ImportOptions, import_file
from store.versions import get_version, list_versions, version_records
from tests.support.pages import open_page, page_text


def _file(tmp_path, name: str, records: list[dict]):
    path = tmp_path / name
    path.write_text(json.dumps(records), "utf-8")
    return path


def _rec(i: int, first: str) -> dict:
    return {
        "instruction": f"{first} and then Shout it.",
        "input": f"in {i}",
        "output": f"Task 1 output and task 2 input: a{i}\nTask 2 output: A{i}",
    }


def test_fixed_test_source_from_the_page(db, tmp_path):
    train = [_rec(i, f"Say {i % 3}.") for i in range(9)]  # 3 compositions; "Say 0." also in test
    test = [_rec(50, "Say 0."), _rec(51, "Whisper.")]
    import_file(
        db, _file(tmp_path, "train.json", train), ImportOptions(source="paper-train", status="accepted")
    )
    import_file(db, _file(tmp_path, "test.json", test), ImportOptions(source="coi2_test", status="accepted"))
    at = open_page("datasets")
    box = next(s for s in at.selectbox if s.label.startswith("Fixed test set"))
    assert "coi2_test" in box.options[2]  # the page lists each source with its chain count
    box.set_value("coi2_test")
    next(m for m in at.multiselect if m.label.startswith("Train on")).set_value(["paper-train"])
    at.button[0].click().run()
    assert not at.exception, at.exception
    assert "Version #1 created." in [s.value for s in at.success], page_text(at)
    version = list_versions(db)[0]
    assert get_version(db, version.id).split_sizes == {"train": 6, "test": 2}
    assert [r["input"] for r in version_records(db, version.id, "test")] == ["in 50", "in 51"]


def test_a_version_is_browsed_with_search_and_its_filter_is_in_words(db, tmp_path):
    rows = [_rec(i, f"Say {i}.") for i in range(150)]  # 150 compositions: 120 train, 30 test
    rows[42]["input"] = "the NEEDLE here"
    import_file(db, _file(tmp_path, "train.json", rows), ImportOptions(source="src", status="accepted"))
    at = open_page("datasets")
    at.button[0].click().run()
    assert not at.exception, at.exception
    text = [t.value for t in at.text]
    assert any(
        t.startswith(
            "Chains with status accepted.\nChains split by composition: 20% of compositions held out"
        )
        and "Train keeps lengths 1-3; test keeps 1-5." in t
        for t in text
    ), text
    assert not at.json  # no raw {...} dump
    frames = [f for f in at.dataframe if "instruction" in f.value.columns]
    train = frames[0].value
    assert len(train) == 50 and list(train["position"])[:3] == [0, 1, 2]  # the first page, in file order
    at.number_input(key="browse_page").set_value(3).run()
    last = next(f for f in at.dataframe if "instruction" in f.value.columns).value
    assert list(last["position"]) == list(range(100, 120))
    assert any(c.value == "120 train rows · page 3 of 3" for c in at.caption)
    at.text_input(key="browse_search").set_value("needle").run()
    found = {}
    for split in ("train", "test"):
        at.radio(key="browse_split").set_value(split).run()
        frames = [f.value for f in at.dataframe if "instruction" in f.value.columns]
        found[split] = [r for frame in frames for r in frame["input"]]
    assert sorted(found.values()) == [[], ["the NEEDLE here"]]  # in exactly one split, by any case
    assert any(c.value.endswith("matching 'needle' · page 1 of 1") for c in at.caption)
