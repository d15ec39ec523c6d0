"""Faults: the disk fills up while a dataset version is frozen or exported.

Three ways to fill it: an OSError(ENOSPC) injected part-way through a file, a real EFBIG from a child
process under ``RLIMIT_FSIZE`` (SIGXFSZ ignored), and a real ENOSPC on a small tmpfs (skipped where
mounting is not allowed). A full database is SQLite's own SQLITE_FULL (``max_page_count``). Each time:
a plain error, no version row, no half-written or temp file left, the database still consistent.
"""

from __future__ import annotations

import errno
import json
import subprocess
import sys
from pathlib import Path

import pytest

from store.chains import insert_chain
from store.errors import CoiError
from store.export import export_chains
from store.maintenance import check_db
from store.models import Chain, Step
from store.versions import SplitSpec, create_version, export_version_hf, export_version_jsonl, version_zip
from tests.support import ROOT
from tests.support.faults import fill_after

LONG = "lorem ipsum dolor sit amet " * 40  # about 1 KB per step output


def make_big_version(db, n: int = 60) -> int:
    """``n`` accepted 3-step chains with long texts (about 400 KB of records), frozen into a version."""
    for i in range(n):
        steps = [
            Step(
                position=k,
                instruction=f"Do thing {k} to text {i}",
                input=f"in {i}.{k} {LONG}",
                output=f"out {i}.{k} {LONG}",
            )
            for k in (1, 2, 3)
        ]
        insert_chain(db, Chain(steps=steps, status="accepted", source="test"))
    return create_version(db, SplitSpec(test_fraction=0.3), name="big")


def counts(db) -> tuple[int, int]:
    versions = db.execute("SELECT count(*) FROM dataset_versions").fetchone()[0]
    items = db.execute("SELECT count(*) FROM dataset_version_items").fetchone()[0]
    return versions, items


def listing(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*")) if folder.exists() else []


@pytest.fixture
def version(db) -> int:
    return make_big_version(db)


def test_injected_full_disk_mid_file_leaves_no_export_and_no_temp(db, version, tmp_path, monkeypatch):
    out = tmp_path / "export"
    fill_after(monkeypatch, 50_000)
    before = counts(db)
    with pytest.raises(CoiError) as err:
        export_version_jsonl(db, version, out)
    assert "disk is full" in err.value.message and "nothing was written" in err.value.message
    assert listing(out) == []  # neither split, nor a temp file
    assert counts(db) == before and check_db(db.execute("PRAGMA database_list").fetchone()[2]).ok


def test_a_failed_re_export_keeps_the_previous_complete_files(db, version, tmp_path, monkeypatch):
    out = tmp_path / "export"
    paths = export_version_jsonl(db, version, out)
    assert {p.stat().st_mode & 0o777 for p in paths.values()} == {0o644}  # not the temp file's 0600
    before = {p.name: p.read_bytes() for p in paths.values()}
    fill_after(monkeypatch, 10_000)
    with pytest.raises(CoiError, match="disk is full"):
        export_version_jsonl(db, version, out)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before  # same two files, byte for byte


def test_injected_full_disk_in_a_chain_export_keeps_the_old_file(db, version, tmp_path, monkeypatch):
    path = tmp_path / "chains.jsonl"
    path.write_text("previous export\n")
    fill_after(monkeypatch, 20_000)
    with pytest.raises(CoiError, match="disk is full"):
        export_chains(db, path, format="jsonl")
    assert path.read_text() == "previous export\n"
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".chains.jsonl.")]  # no temp left


def test_full_disk_while_saving_a_hf_dataset_leaves_no_folder(db, version, tmp_path, monkeypatch):
    import datasets

    real_save = datasets.DatasetDict.save_to_disk

    def save_then_fill(self, path, **kw):
        real_save(self, path, **kw)  # most files are written ...
        (Path(path) / "train" / "extra.arrow").write_bytes(b"half")
        raise OSError(errno.ENOSPC, "No space left on device")  # ... then the disk is full

    monkeypatch.setattr(datasets.DatasetDict, "save_to_disk", save_then_fill)
    with pytest.raises(CoiError, match="disk is full"):
        export_version_hf(db, version, tmp_path / "hf")
    assert not (tmp_path / "hf").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".hf.")]  # the temp folder went too
    with pytest.raises(CoiError, match="disk is full"):
        version_zip(db, version, "hf")


def test_a_full_database_registers_no_version(db, version):
    insert_chain(
        db, Chain(steps=[Step(position=1, instruction="new", input="x", output="y")], status="accepted")
    )
    before = counts(db)
    pages = db.execute("PRAGMA page_count").fetchone()[0]
    db.execute(f"PRAGMA max_page_count = {pages + 3}")  # SQLite answers SQLITE_FULL past this
    with pytest.raises(CoiError) as err:
        create_version(db, SplitSpec(test_fraction=0.3, seed=7), name="too big")
    assert "disk is full" in err.value.message and "no version was registered" in err.value.message
    assert counts(db) == before
    db.execute(f"PRAGMA max_page_count = {2**31}")
    assert check_db(db.execute("PRAGMA database_list").fetchone()[2]).ok


CHILD = r"""
import json, resource, signal, sys
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails with EFBIG instead
limit = int(sys.argv[2])
resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
from store.db import connect
from store.errors import CoiError
from store.export import export_chains
from store.versions import SplitSpec, create_version, export_version_hf, export_version_jsonl
out, vid = sys.argv[1], int(sys.argv[3])
db = connect()
results = {}
attempts = {
    "jsonl": lambda: export_version_jsonl(db, vid, out + "/jsonl"),
    "hf": lambda: export_version_hf(db, vid, out + "/hf"),
    "chains": lambda: export_chains(db, out + "/chains.json", format="coi"),
    "version": lambda: create_version(db, SplitSpec(test_fraction=0.3, seed=11), name="efbig"),
}
for name, attempt in attempts.items():
    try:
        attempt()
        results[name] = "no error"
    except CoiError as exc:
        results[name] = exc.message
print(json.dumps(results))
"""


def test_real_efbig_from_a_file_size_limit(db, db_path, version, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    before = counts(db)
    db.conn.close()  # the child must find a checkpointed file (its WAL is small)
    limit = 120_000  # below one split's JSONL, above SQLite's 32 KB shared-memory file
    proc = subprocess.run(
        [sys.executable, "-c", CHILD, str(out), str(limit), str(version)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = json.loads(proc.stdout.strip().splitlines()[-1])
    for name in ("jsonl", "hf", "chains"):
        assert "disk is full (or a file size limit was reached)" in results[name], results
    assert "no version was registered" in results["version"], results
    # No half file, no temp file, no temp folder (only the empty folder the JSONL export made).
    assert listing(out) == ["jsonl"] and listing(out / "jsonl") == []
    from store.db import connect

    db2 = connect(db_path)
    assert counts(db2) == before
    db2.conn.close()
    assert check_db(db_path).ok


@pytest.fixture
def small_tmpfs(tmp_path):
    """A 256 KB tmpfs (needs root with CAP_SYS_ADMIN; skipped elsewhere)."""
    mnt = tmp_path / "small"
    mnt.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(mnt)], capture_output=True, text=True
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.strip()}")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", str(mnt)], check=False)


def test_real_enospc_on_a_small_tmpfs(db, version, small_tmpfs):
    (small_tmpfs / "filler").write_bytes(b"x" * 100_000)
    before = counts(db)
    with pytest.raises(CoiError, match="disk is full"):
        export_version_jsonl(db, version, small_tmpfs / "export")
    with pytest.raises(CoiError, match="disk is full"):
        export_version_hf(db, version, small_tmpfs / "hf")
    assert listing(small_tmpfs) == ["export", "filler"] and listing(small_tmpfs / "export") == []
    assert counts(db) == before


def test_real_enospc_during_a_db_backup(db, db_path, version, small_tmpfs):
    from store.maintenance import backup_db

    (small_tmpfs / "filler").write_bytes(b"x" * 100_000)
    db.conn.commit()
    with pytest.raises(CoiError, match="disk is full") as err:
        backup_db(db_path, small_tmpfs / "backup.db")
    assert "was left as it was" in err.value.message
    assert listing(small_tmpfs) == ["filler"]  # no backup, no temp file
