"""A generation batch: summarize -> compose + check -> generate, as a resumable background job.

Run in the foreground with :func:`run_batch`, or as a job: :func:`launch_batch` stores the batch config
(without the API key) in a ``jobs`` row and starts ``python -m pipeline.run --job ID``; the key reaches
the child through its environment only. Killing the job and running it again finishes the work with no
duplicate chains (chains are keyed by composition + input) and no repeated LLM calls (the cache).
"""

from __future__ import annotations

import argparse
import random
import sys
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import sqlite_utils

from pipeline.compose import (
    PairVerdict,
    Proposal,
    candidate_pairs,
    check_pairs,
    extension_candidates,
    pair_proposal,
    path_proposal,
)
from pipeline.embedded import llm_endpoint
from pipeline.generate import chain_key, generate_chains, save_draft, store_composition
from pipeline.llm import LLMClient, LLMConfig
from pipeline.summarize import summarize_tasks
from store.config import from_plain, to_plain
from store.db import connect, database_file
from store.endpoints import job_env, job_key
from store.errors import CoiError
from store.jobs import get_job, heartbeat
from store.llm_calls import job_call_totals
from store.pipeline_queries import existing_chain_keys, select_tasks

Progress = Callable[[int, int, str], None]
MAX_ERRORS_KEPT = 200


@dataclass(frozen=True)
class BatchConfig:
    """What one generation batch does. Holds no secrets (it is stored in the job row)."""

    task_ids: tuple[int, ...] = field(default=(), metadata={"help": "Tasks to use (empty: all)"})
    categories: tuple[str, ...] = field(default=(), metadata={"help": "Task categories to use (empty: all)"})
    n_chains: int = field(default=20, metadata={"help": "How many chains to propose"})
    lengths: tuple[int, ...] = field(default=(2,), metadata={"help": "Chain lengths, 2 to 5"})
    seed: int = field(default=0, metadata={"help": "Seed for the pair sampling"})
    pair_factor: float = field(default=3.0, metadata={"help": "Pairs checked per wanted chain"})
    llm: dict = field(default_factory=dict, metadata={"help": "LLMConfig.to_dict() (no key)"})

    def __post_init__(self) -> None:
        bad = [n for n in self.lengths if not 2 <= int(n) <= 5]
        if bad or not self.lengths:
            raise CoiError(
                f"Chain lengths must be between 2 and 5 (got {list(self.lengths)})", "Pick from 2-5."
            )
        if self.n_chains < 1:
            raise CoiError("The number of chains must be at least 1", "Ask for 1 chain or more.")

    def to_dict(self) -> dict:
        return to_plain(self)

    @classmethod
    def from_dict(cls, data: dict) -> BatchConfig:
        return from_plain(cls, data, what="batch config")


@dataclass
class BatchReport:
    """What a batch did (also the job's result)."""

    tasks: int = 0
    summarized: int = 0
    pairs_checked: int = 0
    verdicts: dict = field(default_factory=dict)
    proposals: int = 0
    chains_added: int = 0
    chains_existing: int = 0
    errors: list = field(default_factory=list)
    usage: dict = field(default_factory=dict)
    total_items: int = 0  # LLM work items asked this run (summaries, checks, chains)
    failed_items: int = 0
    warnings: list = field(default_factory=list)
    endpoint: str = ""

    def item(self, name: str, error: str | None) -> None:
        """Count one work item; a failed one keeps its error (the first MAX_ERRORS_KEPT)."""
        self.total_items += 1
        if error:
            self.failed_items += 1
            if len(self.errors) < MAX_ERRORS_KEPT:
                self.errors.append({"item": name, "error": error})

    def as_dict(self) -> dict:
        return asdict(self)


class _Counter:
    """Turns per-result callbacks into (done, total, message) progress calls."""

    def __init__(self, progress: Progress | None, total: int) -> None:
        self.progress, self.done, self.total, self.phase = progress, 0, total, ""

    def start(self, phase: str, more: int = 0) -> None:
        self.phase = phase
        self.total += more
        self.tick(0)

    def tick(self, n: int = 1) -> None:
        self.done += n
        if self.progress:
            self.progress(self.done, max(self.total, self.done), self.phase)

    def on_result(self, _i: int, _res: object) -> None:
        self.tick()


def run_batch(
    db: sqlite_utils.Database, client: LLMClient, batch: BatchConfig, *, progress: Progress | None = None
) -> BatchReport:
    """Summarize, check pairs, extend, generate and store chains. Per-item failures never stop it."""
    report = BatchReport()
    rng = random.Random(batch.seed)
    tasks = select_tasks(db, task_ids=list(batch.task_ids) or None, categories=list(batch.categories) or None)
    report.tasks = len(tasks)
    if len(tasks) < 2:
        raise CoiError(
            "A batch needs at least 2 tasks", "Import tasks on the Data page or widen the filters."
        )
    counter = _Counter(progress, 0)
    _summarize(db, client, tasks, report, counter)
    proposals = _compose(db, client, tasks, batch, rng, report, counter)
    _generate(db, client, proposals, report, counter, job_id=client.job_id)
    report.usage = client.totals.as_dict()
    report.endpoint = client.config.base_url
    report.warnings += outcome_warnings(report, client.config)
    return report


def outcome_warnings(report: BatchReport, llm: LLMConfig) -> list[str]:
    """Plain warnings naming the likely cause when a batch made nothing useful."""
    out = []
    verdicts = report.verdicts
    if verdicts and set(verdicts) == {"unknown"} and report.failed_items < report.total_items:
        out.append(
            f"Every checker verdict was 'unknown': the model's answers could not be read as yes/no. "
            f"Likely cause: the API mode does not fit the model ('{llm.api}' mode; a base model needs "
            "'completions', an instruct model 'chat'), or max tokens per step is too low."
        )
    if report.chains_added == 0 and report.chains_existing == 0 and report.failed_items < report.total_items:
        if verdicts.get("yes", 0) == 0 and verdicts:
            cause = "the checker accepted no pair (see the verdicts)"
        else:
            cause = "the chain steps could not be generated"
        out.append(
            f"The batch made 0 chains: {cause}. With chat mode against a base model (or the reverse) "
            "answers come back empty or off-format; check the API setting and the model."
        )
    return out


def failure_message(report: BatchReport) -> str:
    """Why a batch whose every item failed failed: the first error and the URL, in plain words."""
    first = report.errors[0]["error"] if report.errors else "no reason recorded"
    return (
        f"All {report.total_items} LLM items failed against {report.endpoint or 'the embedded model'}. "
        f"First error: {first}"
    )


def _summarize(db, client, tasks, report, counter) -> None:
    todo = sum(1 for t in tasks if not (t.short_instruction or "").strip())
    counter.start("summarizing instructions", todo)
    for out in summarize_tasks(db, client, tasks, on_result=counter.on_result):
        report.summarized += out.short is not None
        report.item(f"summarize task {out.task_id}", out.error)


def _compose(db, client, tasks, batch, rng, report, counter) -> list[Proposal]:
    """Pairs first; then extend accepted chains one checked link at a time up to the longest length."""
    want = _per_length(batch)
    need_pairs = sum(want.values())  # every longer chain starts from an accepted pair
    pairs = candidate_pairs(tasks, max(need_pairs, int(need_pairs * batch.pair_factor)), rng)
    paths = [[pv] for pv in _check(db, client, pairs, "checking pairs", report, counter)]
    proposals = [pair_proposal(p[0]) for p in paths[: want.get(2, 0)]]
    for length in range(3, max(batch.lengths) + 1):
        need = sum(n for k, n in want.items() if k >= length)
        cands = extension_candidates(paths, tasks, max(need, int(need * batch.pair_factor)), rng)
        links = _check(
            db,
            client,
            [(p[-1].b, c) for p, c in cands],
            f"checking links for length {length}",
            report,
            counter,
        )
        accepted = {(pv.a.id, pv.b.id): pv for pv in links}
        paths = [[*p, accepted[(p[-1].b.id, c.id)]] for p, c in cands if (p[-1].b.id, c.id) in accepted]
        proposals += [path_proposal(p) for p in paths[: want.get(length, 0)]]
    return proposals


def _check(db, client, pairs, phase: str, report, counter) -> list[PairVerdict]:
    """Check pairs with the LLM, store every verdict on its composition, return the accepted ones."""
    counter.start(phase, len(pairs))
    verdicts = check_pairs(client, pairs, on_result=counter.on_result)
    report.pairs_checked += len(verdicts)
    for pv in verdicts:
        report.verdicts[pv.verdict.verdict] = report.verdicts.get(pv.verdict.verdict, 0) + 1
        store_composition(db, pair_proposal(pv))
        report.item(f"check tasks {pv.a.id}->{pv.b.id}", pv.error)
    return [pv for pv in verdicts if pv.verdict.verdict == "yes"]


def _per_length(batch: BatchConfig) -> dict[int, int]:
    """The wanted number of chains spread over the lengths asked for (round robin)."""
    per_length = {n: batch.n_chains // len(batch.lengths) for n in batch.lengths}
    for n in sorted(batch.lengths)[: batch.n_chains % len(batch.lengths)]:
        per_length[n] += 1
    return per_length


def _generate(db, client, proposals, report, counter, *, job_id) -> None:
    report.proposals = len(proposals)
    done = existing_chain_keys(db, [chain_key(p) for p in proposals])
    todo = [p for p in proposals if chain_key(p) not in done]
    report.chains_existing = len(proposals) - len(todo)
    counter.start("generating steps", sum(len(p.tasks) - 1 for p in todo))
    for draft in generate_chains(client, todo, on_result=counter.on_result):
        report.item(f"chain tasks {draft.proposal.task_ids}", draft.error)
        if draft.error:
            continue
        _, added = save_draft(db, draft, meta={"job_id": job_id, "model": client.config.model})
        report.chains_added += added


# -- background job -------------------------------------------------------------------------------
def launch_batch(db: sqlite_utils.Database, batch: BatchConfig, llm: LLMConfig, *, name: str = "") -> int:
    """Queue the generate job (config without key) and start it when there is room; returns the job id.

    Against a configured endpoint it only needs a remote slot; with the embedded LLM it claims the
    device (it loads a local model). The key reaches the child's environment only.
    """
    from jobs import runtime

    config = {**batch.to_dict(), "llm": llm.to_dict()}
    return runtime.submit(
        db,
        "generate",
        config,
        name=name or f"generate {batch.n_chains} chains",
        resource="device" if llm.embedded else "remote",
        # The key (already checked by store.endpoints) reaches the child's environment only.
        secret_env=job_env(llm.api_key) or None,
    )


def resume_batch(db: sqlite_utils.Database, job_id: int, api_key: str = "") -> int:
    """Queue a failed, cancelled or partly failed generate job again; returns its id.

    Saved chains are skipped and answered calls come from the cache, so only the failed items and
    what a crash cut short are asked again. The key travels in the child's environment only.

    Raises:
        CoiError: no such generate job, or it is still running or fully succeeded.
    """
    from jobs import runtime

    return runtime.resume(db, job_id, "generate", secret_env=job_env(api_key) or None).id


def run_job(
    job_id: int,
    *,
    db_path: str | Path | None = None,
    progress: Progress | None = None,
    api_key: str | None = None,
) -> dict:
    """The job body: read the config, bring up the endpoint, run, return the result with usage totals.

    ``api_key`` is a key the caller already checked (a foreground ``coi generate``); without it the
    key rule of store.endpoints picks one.
    """
    db = connect(db_path)
    job = get_job(db, job_id)
    if job is None:
        raise CoiError(f"No job {job_id}", "Check the job id.")
    batch = BatchConfig.from_dict(job.config)
    llm = LLMConfig.from_dict(
        batch.llm, api_key=api_key if api_key is not None else job_key(batch.llm.get("base_url", ""))
    )

    def beat(done: int, total: int, message: str) -> None:
        heartbeat(db, job_id, done=done, total=total, message=message)
        if progress:
            progress(done, total, message)

    with llm_endpoint(llm) as live:
        client = LLMClient(live, db_path or database_file(db), job_id=job_id)
        beat(0, 0, f"checking the endpoint {live.base_url}")
        warnings = client.preflight()  # raises CoiError (a plain reason with the URL) when it is down
        for w in warnings:
            print(f"warning: {w}", flush=True)
        report = run_batch(db, client, batch, progress=beat)
    report.warnings[:0] = warnings
    for w in report.warnings[len(warnings) :]:
        print(f"warning: {w}", flush=True)
    result = report.as_dict()
    result["job_usage"] = job_call_totals(db, job_id)
    db.conn.close()
    if report.total_items and report.failed_items == report.total_items:
        from jobs.process import JobFailed

        raise JobFailed(failure_message(report), result)
    return result


def tqdm_progress() -> Progress:
    """A progress callback drawing a tqdm bar (for the CLI)."""
    from tqdm import tqdm

    bar = tqdm(total=0, unit="call", dynamic_ncols=True)

    def update(done: int, total: int, message: str) -> None:
        bar.total = total
        bar.set_description(message, refresh=False)
        bar.n = done
        bar.refresh()

    return update


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Run a generation job (started by the app or `coi generate`)."
    )
    parser.add_argument("--job", type=int, required=True)
    args = parser.parse_args(argv)
    from jobs.process import run_as_job

    return run_as_job(args.job, lambda job_id: run_job(job_id, progress=_log_progress()))


def _log_progress() -> Progress:
    last = [-1]

    def log(done: int, total: int, message: str) -> None:
        pct = int(100 * done / total) if total else 0
        if pct // 10 != last[0]:
            last[0] = pct // 10
            print(f"{message}: {done}/{total}", flush=True)

    return log


if __name__ == "__main__":
    sys.exit(main())
