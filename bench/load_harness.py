"""Concurrent reviewers saving step edits on one SQLite file, then an audit that counts lost edits.

Each reviewer session is its own process (``python -m bench.load_harness --worker CONFIG``), so the
sessions really write concurrently (SQLite WAL, one writer at a time, 30 s busy timeout). A session
loops for ``seconds``: pick a chain (random among all, or from a small hot set every session shares,
so optimistic-lock conflicts really happen), load it, save a new output for one step, and record
every save it was told succeeded. A conflict is what the Review page shows the user ("changed by
..."); the session reloads the chain and retries, as a reviewer would. Two session kinds:

* ``apptest``: the Review page itself through ``streamlit.testing.v1.AppTest``: search ``#id``, type
  into the step's editor, press Save, and read the page's "Saved step N." or conflict message.
  Latency is the Save click's whole page run (what the reviewer waits for).
* ``store``: the function the page calls (``store.review.save_step_output`` on a fresh connection,
  as the page's ``run_action`` does), without Streamlit, for a heavier load.

The audit (``audit``) then checks the database against the acknowledgements: every acknowledged save
has exactly one ``edits`` row (same chain, version, step and text); no two acknowledged saves of a
chain share a version (a lost update); each step's final text is its last acknowledged text; a
later step's input is the edited step's output. ``run_load`` ties it together for the bench and the
test.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import statistics
import subprocess
import sys
import time
from collections import defaultdict
from dataclasses import asdict, dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from store import review as rv  # noqa: E402
from store.chains import get_chain  # noqa: E402
from store.db import connect, open_db  # noqa: E402

PAGE = ROOT / "app" / "app_pages" / "review.py"
MAX_RETRIES = 5  # after this many conflicts in a row on one save, the reviewer gives up (reported, not lost)


@dataclass(frozen=True)
class SessionConfig:
    """One reviewer session."""

    db: str = field(metadata={"help": "SQLite file"})
    session: int = field(metadata={"help": "session number (the reviewer is load-<n>)"})
    mode: str = field(default="store", metadata={"help": "apptest (the Review page) or store"})
    seconds: float = field(default=60.0, metadata={"help": "how long to keep saving"})
    n_chains: int = field(default=100_000, metadata={"help": "chain ids are 1..n_chains"})
    hot: tuple[int, ...] = field(default=(), metadata={"help": "chain ids every session edits often"})
    p_hot: float = field(default=0.2, metadata={"help": "share of saves that go to the hot set"})
    think_ms: float = field(default=5.0, metadata={"help": "max pause between loading and saving"})
    seed: int = field(default=0, metadata={"help": "random seed (plus the session number)"})
    go_file: str = field(default="", metadata={"help": "wait for this file before starting"})
    out: str = field(default="", metadata={"help": "where to write the session's JSON result"})
    run: str = field(default="run", metadata={"help": "names this run in authors and texts"})

    @property
    def author(self) -> str:
        # Per run, so an audit never mistakes another run's rows (same seed, same picks) for its own.
        return f"load-{self.run}-{self.session}"


@dataclass
class SessionResult:
    """What one session saw: acknowledged saves, conflicts, retries and errors."""

    session: int
    mode: str
    acks: list[dict] = field(default_factory=list)  # chain, position, text, version, ms
    conflicts: int = 0
    retries: int = 0
    gave_up: int = 0
    errors: list[str] = field(default_factory=list)


# ------------------------------------------------------------------------------------------ sessions


def _pick(cfg: SessionConfig, rng: random.Random) -> int:
    if cfg.hot and rng.random() < cfg.p_hot:
        return rng.choice(cfg.hot)
    return rng.randint(1, cfg.n_chains)


def _text(cfg: SessionConfig, counter: int, attempt: int) -> str:
    # Unique per save, so "unchanged text" never short-circuits a save, and each ack is traceable.
    return f"{cfg.author} save {counter} try {attempt}: the corrected output"


class StoreSession:
    """Saves through store.review.save_step_output, a fresh connection per unit of work (like the page)."""

    def __init__(self, cfg: SessionConfig):
        self.cfg = cfg

    def load(self, chain_id: int) -> tuple[int, int]:
        """The chain's version and length."""
        with open_db(self.cfg.db) as db:
            chain = get_chain(db, chain_id)
        return chain.version, chain.length

    def save(self, chain_id: int, position: int, text: str, version: int) -> int | None:
        """The new version, or None on a conflict."""
        try:
            with open_db(self.cfg.db) as db:
                new = rv.save_step_output(
                    db, chain_id, position, text, author=self.cfg.author, expected_version=version
                )
        except rv.ConflictError:
            return None
        if new == version:  # texts are unique, so this would be a save that silently did nothing
            raise RuntimeError(f"save of chain {chain_id} step {position} changed nothing")
        return new


class AppTestSession:
    """Saves through the Review page in AppTest: the same widgets and messages a reviewer uses."""

    def __init__(self, cfg: SessionConfig):
        from streamlit.testing.v1 import AppTest

        from store.models import CHAIN_STATUSES

        self.cfg = cfg
        self.at = AppTest.from_file(str(PAGE), default_timeout=120)
        self.at.session_state["reviewer"] = cfg.author
        self.at.session_state["db_path"] = cfg.db
        self._run()
        status = next(m for m in self.at.sidebar.multiselect if m.label == "Status")
        status.set_value(list(CHAIN_STATUSES))  # any chain can be opened by #id
        self._run()

    def _run(self) -> None:
        self.at.run()
        if self.at.exception:
            raise RuntimeError(f"Review page raised: {self.at.exception[0].message}")

    def _editor_key(self, chain_id: int, position: int) -> tuple[str, int]:
        pattern = re.compile(rf"c{chain_id}v(\d+)_{position}_text")
        for area in self.at.text_area:
            match = pattern.fullmatch(area.key or "")
            if match:
                return area.key[: -len("_text")], int(match.group(1))
        raise RuntimeError(f"no editor for chain {chain_id} step {position} on the page")

    def load(self, chain_id: int) -> tuple[int, int]:
        if not any(t.key == "search" for t in self.at.sidebar.text_input):
            self._run()  # a save redrew only the page's fragments; AppTest shows the sidebar after a full run
        self.at.sidebar.text_input(key="search").set_value(f"#{chain_id}")
        self._run()
        if "review_conflict" in self.at.session_state:
            self.at.button(key="reload_conflict").click()
            self._run()
        _, seen = self._editor_key(chain_id, 1)
        length = sum(1 for a in self.at.text_area if (a.key or "").startswith(f"c{chain_id}v{seen}_"))
        return seen, length

    def save(self, chain_id: int, position: int, text: str, version: int) -> int | None:
        key, seen = self._editor_key(chain_id, position)
        if seen != version:
            raise RuntimeError(f"page shows version {seen}, session loaded {version}")
        self.at.text_area(key=f"{key}_text").set_value(text)
        self.at.button(key=f"{key}_save").click()
        self._run()
        if any(f"Saved step {position}." in s.value for s in self.at.success):
            return version + 1  # a save bumps the version by exactly one
        if any("since you opened it; your change was not saved" in e.value for e in self.at.error):
            self.at.button(key="reload_conflict").click()  # what the page offers after a conflict
            self._run()
            return None
        shown = [e.value for e in self.at.error] + [i.value for i in self.at.info]
        raise RuntimeError(
            f"save of chain {chain_id} step {position}: no success message; page shows {shown}"
        )


def run_session(cfg: SessionConfig) -> SessionResult:
    """Keep saving for ``cfg.seconds``; every acknowledged save and every conflict is recorded."""
    rng = random.Random(cfg.seed * 1000 + cfg.session)
    result = SessionResult(cfg.session, cfg.mode)
    client = AppTestSession(cfg) if cfg.mode == "apptest" else StoreSession(cfg)
    if cfg.out:  # set up (imports, the page's first runs): tell the runner, then wait for the others
        Path(cfg.out).with_suffix(".ready").touch()
    _wait_for(cfg.go_file)
    end = time.monotonic() + cfg.seconds
    counter = 0
    while time.monotonic() < end:
        counter += 1
        try:
            _one_save(cfg, client, _pick(cfg, rng), counter, rng, result)
        except Exception as exc:  # recorded and reported: the bench and the test fail on any
            result.errors.append(f"{type(exc).__name__}: {exc}")
            if len(result.errors) > 20:
                break
    return result


def _one_save(cfg, client, chain_id: int, counter: int, rng: random.Random, result: SessionResult) -> None:
    version, length = client.load(chain_id)
    position = rng.randint(1, length)
    for attempt in range(MAX_RETRIES + 1):
        if attempt:
            result.retries += 1
            version, _ = client.load(chain_id)  # reload, then redo the edit
        time.sleep(rng.uniform(0, cfg.think_ms) / 1000)
        text = _text(cfg, counter, attempt)
        t0 = time.perf_counter()
        new_version = client.save(chain_id, position, text, version)
        ms = (time.perf_counter() - t0) * 1000
        if new_version is not None:
            result.acks.append(dict(chain=chain_id, position=position, text=text, version=new_version, ms=ms))
            return
        result.conflicts += 1
    result.gave_up += 1


def _wait_for(path: str, timeout: float = 300) -> None:
    end = time.monotonic() + timeout
    while path and not Path(path).exists():
        if time.monotonic() > end:
            raise TimeoutError(f"no go signal at {path}")
        time.sleep(0.02)


# --------------------------------------------------------------------------------------------- audit


@dataclass
class Audit:
    """Acknowledged saves checked against the database."""

    acks: int = 0
    missing_rows: int = 0  # acknowledged, but no edits row with that chain/version/step/text
    duplicate_rows: int = 0  # more than one such row
    same_version: int = 0  # two acknowledged saves of one chain at one version (a lost update)
    overwritten: int = 0  # a step's final text is not its last acknowledged text
    broken_links: int = 0  # the next step's input is not the edited step's final output
    unacknowledged_rows: int = 0  # edits rows by the sessions that no session was told about

    @property
    def lost_edits(self) -> int:
        return self.missing_rows + self.duplicate_rows + self.same_version + self.overwritten


def audit(db_file: str | Path, acks: list[dict], authors: list[str]) -> Audit:
    """Count lost edits: check every acknowledged save against the ``edits`` rows and the final steps."""
    out = Audit(acks=len(acks))
    db = connect(db_file)
    try:
        rows = _output_edits(db, authors)
        for ack in acks:
            n = rows.get((ack["chain"], ack["version"], ack["position"], ack["text"]), 0)
            out.missing_rows += n == 0
            out.duplicate_rows += max(0, n - 1)
        out.unacknowledged_rows = max(0, sum(rows.values()) - len(acks) + out.missing_rows)
        versions = [(a["chain"], a["version"]) for a in acks]
        out.same_version = len(versions) - len(set(versions))
        _check_final_text(db, acks, out)
    finally:
        db.conn.close()
    return out


def _output_edits(db, authors: list[str]) -> dict[tuple, int]:
    marks = ",".join("?" * len(authors))
    counts: dict[tuple, int] = defaultdict(int)
    for row in db.execute(
        f"SELECT chain_id, version, position, new FROM edits WHERE field = 'output' AND author IN ({marks})",
        authors,
    ):
        counts[tuple(row)] += 1
    return counts


def _check_final_text(db, acks: list[dict], out: Audit) -> None:
    last: dict[tuple[int, int], dict] = {}
    for ack in sorted(acks, key=lambda a: a["version"]):
        last[(ack["chain"], ack["position"])] = ack
    for (chain_id, position), ack in last.items():
        steps = db.execute(
            "SELECT position, input, output FROM steps WHERE chain_id = ? AND position IN (?, ?)",
            [chain_id, position, position + 1],
        ).fetchall()
        by_pos = {p: (inp, outp) for p, inp, outp in steps}
        out.overwritten += by_pos[position][1] != ack["text"]
        if position + 1 in by_pos:
            out.broken_links += by_pos[position + 1][0] != by_pos[position][1]


# ---------------------------------------------------------------------------------------------- runner


@dataclass
class LoadReport:
    """Everything the bench prints and the test asserts."""

    sessions: list[SessionResult]
    audit: Audit
    seconds: float

    @property
    def saves(self) -> int:
        return sum(len(s.acks) for s in self.sessions)

    def total(self, name: str) -> int:
        return sum(getattr(s, name) for s in self.sessions)

    def errors(self) -> list[str]:
        return [f"session {s.session}: {e}" for s in self.sessions for e in s.errors]

    def latency(self, mode: str | None = None) -> dict[str, float]:
        ms = sorted(a["ms"] for s in self.sessions if mode in (None, s.mode) for a in s.acks)
        if not ms:
            return {"p50": float("nan"), "p95": float("nan"), "max": float("nan"), "n": 0}
        p95 = ms[min(len(ms) - 1, int(round(0.95 * (len(ms) - 1))))]
        return {"p50": statistics.median(ms), "p95": p95, "max": ms[-1], "n": len(ms)}


def hot_set(n_chains: int, size: int, seed: int = 0) -> tuple[int, ...]:
    """A few chain ids every session edits often (conflicts happen there)."""
    return tuple(random.Random(seed).sample(range(1, n_chains + 1), size))


def run_load(
    db_file: str | Path,
    modes: list[str],
    *,
    seconds: float,
    n_chains: int,
    hot: tuple[int, ...],
    p_hot: float = 0.2,
    think_ms: float = 5.0,
    seed: int = 0,
    workdir: str | Path,
    run: str = "run",
) -> LoadReport:
    """Start one process per mode in ``modes``, let them save for ``seconds`` together, then audit."""
    workdir = Path(workdir)
    go = workdir / f"{run}.go"
    go.unlink(missing_ok=True)
    procs = []
    for i, mode in enumerate(modes, 1):
        cfg = SessionConfig(
            db=str(db_file),
            session=i,
            mode=mode,
            seconds=seconds,
            n_chains=n_chains,
            hot=hot,
            p_hot=p_hot,
            think_ms=think_ms,
            seed=seed,
            go_file=str(go),
            out=str(workdir / f"{run}-s{i}.json"),
            run=run,
        )
        Path(cfg.out).unlink(missing_ok=True)
        procs.append((cfg, _spawn(cfg)))
    _wait_ready(procs)
    go.touch()
    results = [_collect(cfg, proc, seconds) for cfg, proc in procs]
    acks = [a for r in results for a in r.acks]
    report = audit(db_file, acks, [cfg.author for cfg, _ in procs])
    return LoadReport(results, report, seconds)


def _spawn(cfg: SessionConfig) -> subprocess.Popen:
    env = {**os.environ, "COI_DB": cfg.db, "PYTHONPATH": str(ROOT)}
    with open(Path(cfg.out).with_suffix(".log"), "wb") as log:  # the child keeps its own copy of the fd
        return subprocess.Popen(
            [sys.executable, "-m", "bench.load_harness", "--worker", json.dumps(asdict(cfg))],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )


def _wait_ready(procs, timeout: float = 300) -> None:
    end = time.monotonic() + timeout
    while not all(Path(cfg.out).with_suffix(".ready").exists() for cfg, _ in procs):
        dead = [cfg.session for cfg, p in procs if p.poll() is not None]
        if dead or time.monotonic() > end:
            for _, p in procs:
                p.kill()
            raise RuntimeError(f"sessions {dead or 'all'} did not get ready; see {procs[0][0].out}'s folder")
        time.sleep(0.05)


def _collect(cfg: SessionConfig, proc: subprocess.Popen, seconds: float) -> SessionResult:
    try:
        proc.wait(timeout=seconds + 300)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    out = Path(cfg.out)
    if not out.exists():
        log = Path(cfg.out).with_suffix(".log").read_text(errors="replace")[-2000:]
        return SessionResult(cfg.session, cfg.mode, errors=[f"session died (rc {proc.returncode}): {log}"])
    return SessionResult(**json.loads(out.read_text()))


def _worker_main(raw: str) -> int:
    data = json.loads(raw)
    data["hot"] = tuple(data["hot"])
    cfg = SessionConfig(**data)
    result = run_session(cfg)
    tmp = Path(cfg.out + ".tmp")
    tmp.write_text(json.dumps(asdict(result)))
    tmp.replace(cfg.out)
    return 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--worker", required=True, help="a SessionConfig as JSON")
    sys.exit(_worker_main(parser.parse_args().worker))
