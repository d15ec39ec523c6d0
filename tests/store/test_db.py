from store.db import applied_migrations, connect


def test_schema_is_migrated_with_wal_and_foreign_keys(db_path):
    db = connect(db_path)
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert db.execute("PRAGMA foreign_keys").fetchone()[0] == 1
    assert applied_migrations(db)[0] == "m001_initial"
    for table in [
        "tasks",
        "compositions",
        "chains",
        "steps",
        "edits",
        "llm_calls",
        "dataset_versions",
        "jobs",
        "metrics",
        "predictions",
    ]:
        assert db[table].exists(), table


def test_reconnecting_applies_nothing_twice(db_path):
    first = applied_migrations(connect(db_path))
    assert applied_migrations(connect(db_path)) == first
