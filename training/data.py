"""CoI chains -> token ids for causal-LM fine-tuning, with the loss on the response only.

A chain is rendered by the one shared formatter (``store.coi_format``), as the authors' train.py
does: the prompt is the Alpaca template around the record's own instruction (a summarised one stays
whole) and the response is the record's own output text + EOS, with the markers it was written
with (``target``; canonical markers only for records that have none, e.g. ``eng_output``).
Evaluation parses any of those markers back. Labels are -100 on prompt tokens and on padding.

Batching choice: *length grouping*, not packing. Batches are drawn by transformers'
``LengthGroupedSampler`` (random mega-batches, each sorted by length) and padded only to the
longest example of the batch, so padding stays a few percent. Packing would remove it entirely
but needs a per-sequence (block-diagonal) attention mask that only some attention kernels honour
on every backend; grouping is exact everywhere (CPU, GPU, multi-GPU) and nearly as tight.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from store.coi_format import record_prompt, render_output

IGNORE = -100


def record_texts(record: dict) -> tuple[str, str]:
    """(prompt, response) of a dataset-version record, through the shared formatter."""
    target = record.get("target")
    if target is None:  # versions frozen before ``target`` existed
        target = render_output(record.get("outputs") or [record["output"]])
    return record_prompt(record), target


def fit_lengths(n_prompt: int, n_response: int, max_len: int) -> tuple[int, int]:
    """How many prompt and response tokens to keep within ``max_len``.

    The prompt is cut first, but the response always keeps at least half of the budget (or all
    of itself if shorter), so truncation never removes the whole response.
    """
    if n_prompt + n_response <= max_len:
        return n_prompt, n_response
    keep_response = min(n_response, max(max_len - n_prompt, max_len // 2))
    return max_len - keep_response, keep_response


def _cut_middle(ids: list[int], keep: int) -> list[int]:
    # Keep the head (header, instruction) and the tail ("### Response:"); drop the middle of the input.
    if len(ids) <= keep:
        return ids
    head = keep // 2
    return ids[:head] + ids[len(ids) - (keep - head) :]


def encode_record(record: dict, tokenizer, max_seq_len: int) -> dict:
    """Token ids and labels of one chain: ``{"input_ids", "labels", "n_prompt"}``."""
    prompt, response = record_texts(record)
    prompt_ids = tokenizer(prompt, add_special_tokens=True)["input_ids"]
    response_ids = tokenizer(response, add_special_tokens=False)["input_ids"]
    if tokenizer.eos_token_id is not None:
        response_ids = response_ids + [tokenizer.eos_token_id]
    n_prompt, n_response = fit_lengths(len(prompt_ids), len(response_ids), max_seq_len)
    prompt_ids = _cut_middle(prompt_ids, n_prompt)
    response_ids = response_ids[:n_response]
    return {
        "input_ids": prompt_ids + response_ids,
        "labels": [IGNORE] * len(prompt_ids) + response_ids,
        "n_prompt": len(prompt_ids),
    }


def build_examples(records: list[dict], tokenizer, max_seq_len: int) -> list[dict]:
    """Encode every record (order kept)."""
    return [encode_record(r, tokenizer, max_seq_len) for r in records]


def split_eval(examples: list, fraction: float, seed: int) -> tuple[list, list]:
    """Hold out ``fraction`` of the examples (at least one when fraction > 0 and there are 2+)."""
    if fraction <= 0 or len(examples) < 2:
        return list(examples), []
    order = list(range(len(examples)))
    random.Random(seed).shuffle(order)
    n_eval = min(max(1, round(len(examples) * fraction)), len(examples) - 1)
    held = set(order[:n_eval])
    train = [e for i, e in enumerate(examples) if i not in held]
    return train, [examples[i] for i in sorted(held)]


@dataclass
class PadCollator:
    """Pads a batch to its longest example (optionally to a multiple of 8 for tensor cores).

    Labels are -100 on padding; ``attention_mask`` is 0 there.
    """

    pad_token_id: int
    pad_to_multiple_of: int | None = None
    loss_on_all_tokens: bool = False  # the plain baseline of bench/train.py: loss on prompt tokens too

    def __call__(self, features: list[dict]):
        import torch

        longest = max(len(f["input_ids"]) for f in features)
        m = self.pad_to_multiple_of
        if m:
            longest = -(-longest // m) * m
        ids, labels, mask = [], [], []
        for f in features:
            pad = longest - len(f["input_ids"])
            target = f["input_ids"] if self.loss_on_all_tokens else f["labels"]
            ids.append(list(f["input_ids"]) + [self.pad_token_id] * pad)
            labels.append(list(target) + [IGNORE] * pad)
            mask.append([1] * len(f["input_ids"]) + [0] * pad)
        return {
            "input_ids": torch.tensor(ids, dtype=torch.long),
            "labels": torch.tensor(labels, dtype=torch.long),
            "attention_mask": torch.tensor(mask, dtype=torch.long),
        }


def padding_waste(batches: list[list[int]]) -> float:
    """Fraction of padded positions in batches given as lists of example lengths (for logs and tests)."""
    real = sum(sum(b) for b in batches)
    total = sum(max(b) * len(b) for b in batches if b)
    return 1 - real / total if total else 0.0
