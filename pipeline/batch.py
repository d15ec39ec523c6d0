"""Batch-file generation: the pipeline's LLM calls as OpenAI Batch JSONL, one step depth at a time.

A chain's step k+1 needs step k's answer, so a provider's batch API (or ``vllm run-batch``) can only
take one depth at a time. ``write_requests`` runs the ordinary seeded pipeline with a client that
answers from ``llm_calls`` and, at the first call it cannot answer, stops: the requests of that
round (summaries, then pair checks, then step-2 outputs, then extension checks, then step-3
outputs, ...) go to a JSONL file, and wait in ``llm_calls`` as unanswered rows. ``read_results``
stores the provider's answers there as if they had come online; the next ``write_requests`` then
runs one depth further, and the last one stores the chains.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import sqlite_utils

from pipeline.llm import LLMClient, LLMConfig, with_overrides
from pipeline.run import BatchConfig, BatchReport, run_batch
from store.errors import CoiError
from store.llm_calls import call_states, record_call

WAITING = "waiting for a batch result"
PLACEHOLDER_URL = "http://batch-file.invalid/v1"  # never called: the file goes to the provider instead


class RoundPending(Exception):
    """The pipeline reached calls that nothing has answered yet."""

    def __init__(self, lines: list[dict]) -> None:
        super().__init__(f"{len(lines)} requests wait for a batch result")
        self.lines = lines


class _DeferringClient(LLMClient):
    """Answers from the cache; the first cache miss ends the run with that round's requests."""

    def _send_pending(self, db, reqs, pending, results, on_result) -> None:
        if not pending:
            return
        url = "/v1/chat/completions" if self.config.api == "chat" else "/v1/completions"
        lines = []
        for key, idxs in pending.items():
            body = self._request_body(reqs[idxs[0]])
            record_call(
                db, key=key, model=self.config.model, request=body, response=None, prompt_tokens=None,
                completion_tokens=None, latency_ms=0.0, attempts=0, error=WAITING, job_id=self.job_id,
            )  # fmt: skip
            lines.append({"custom_id": key, "method": "POST", "url": url, "body": body})
        raise RoundPending(lines)


@dataclass
class RoundOut:
    """What ``write_requests`` did: a request file for the next depth, or the finished batch."""

    path: Path | None
    requests: int
    report: BatchReport | None = None  # set when nothing was pending: the chains are stored


def batch_llm_config(model: str, api: str = "completions", **sampling) -> LLMConfig:
    return LLMConfig(base_url=PLACEHOLDER_URL, model=model, api=api, **sampling)


def write_requests(
    db: sqlite_utils.Database, db_path: str | Path, llm: LLMConfig, batch: BatchConfig, out_dir: str | Path
) -> RoundOut:
    """Run the pipeline as far as answers allow; write the next depth's requests as Batch JSONL.

    Only ``llm``'s model, api and sampling matter: nothing is sent anywhere, so its URL and key are dropped.
    """
    client = _DeferringClient(with_overrides(llm, base_url=PLACEHOLDER_URL, api_key=""), db_path)
    try:
        report = run_batch(db, client, batch)
    except RoundPending as pending:
        text = "".join(json.dumps(line, ensure_ascii=False) + "\n" for line in pending.lines)
        return RoundOut(_write_round(Path(out_dir), text), len(pending.lines))
    return RoundOut(None, 0, report)


def _write_round(out: Path, text: str) -> Path:
    """``requests-N.jsonl``, numbered on from the files there; the same round again reuses its file."""
    out.mkdir(parents=True, exist_ok=True)
    written = sorted(out.glob("requests-*.jsonl"), key=lambda p: int(p.stem.split("-")[-1]))
    if written and written[-1].read_text(encoding="utf-8") == text:
        return written[-1]
    path = out / f"requests-{len(written) + 1}.jsonl"
    tmp = path.with_suffix(".tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)
    return path


@dataclass
class ResultsIn:
    answered: int
    failed: int
    already: int  # lines whose answer was stored before (a re-sent file)


def read_results(db: sqlite_utils.Database, path: str | Path) -> ResultsIn:
    """Store a provider's batch output file in ``llm_calls``; all of it, or nothing.

    Raises:
        CoiError: naming the line, for a line that is not JSON, has no ``custom_id``, answers a request
            this database never wrote, or has a response without text.
    """
    lines = _lines(path)
    parsed = [_parse_line(path, n, line) for n, line in lines]
    known = call_states(db, [p[0] for p in parsed])
    counts = ResultsIn(0, 0, 0)
    with db.atomic():
        for (key, text, error, usage), (n, _) in zip(parsed, lines):
            if key not in known:
                raise CoiError(f"{path}, line {n}: custom_id {key[:16]}… is not a request of this database",
                               "Read the output file into the database that wrote the request file.")  # fmt: skip
            answered, request = known[key]
            if answered:
                counts.already += 1
                continue
            known[key] = (True, request)  # the same answer twice in one file is stored once
            record_call(
                db, key=key, model=request.get("model", ""), request=request,
                response=text, prompt_tokens=usage.get("prompt_tokens"),
                completion_tokens=usage.get("completion_tokens"), latency_ms=0.0, attempts=1, error=error,
            )  # fmt: skip
            counts.answered += error is None
            counts.failed += error is not None
    return counts


def _lines(path: str | Path) -> list[tuple[int, str]]:
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise CoiError(
            f"Cannot read the batch output {path}: {exc}", "Pass the provider's output JSONL file."
        ) from exc
    return [(n, line) for n, line in enumerate(text.splitlines(), 1) if line.strip()]


def _parse_line(path, n: int, line: str) -> tuple[str, str | None, str | None, dict]:
    """(custom_id, text, error, usage) of one output line."""
    where = f"{path}, line {n}"
    try:
        row = json.loads(line)
    except ValueError as exc:
        raise CoiError(
            f"{where} is not JSON: {exc}", "Pass the output file exactly as the provider wrote it."
        ) from exc
    key = row.get("custom_id") if isinstance(row, dict) else None
    if not isinstance(key, str) or not key:
        raise CoiError(f"{where} has no custom_id", "Each output line must name the request it answers.")
    response = row.get("response") or {}
    if row.get("error") or response.get("status_code", 200) != 200:
        detail = row.get("error") or response.get("body")
        return key, None, f"batch error: {json.dumps(detail)[:200]}", {}
    body = response.get("body") or {}
    choices = body.get("choices") or []
    first = choices[0] if choices else {}
    text = first.get("text") if "text" in first else (first.get("message") or {}).get("content")
    if not isinstance(text, str):
        raise CoiError(
            f"{where} has a response without text", "Each answer needs choices[0].text or .message.content."
        )
    if not text.strip():
        return key, None, "empty completion", {}
    return key, text, None, body.get("usage") or {}
