"""Batched generation and the three prediction modes on a test split.

- ``chain``: the whole CoI instruction in one prompt (the paper's setting); the shared parser
  ``store.coi_format.parse_output`` splits the answer into per-step outputs.
- ``stepwise-gold``: each step alone, its input the gold output of the step before.
- ``stepwise-own``: each step alone, its input the model's own output of the step before
  (batched across chains, one step position at a time).

Generation pads on the LEFT so every row of a batch ends where its new tokens begin, is greedy by
default and stops at end-of-sequence. Heavy imports (torch, peft) stay inside functions.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from eval.rouge import RougeL
from models.safe_load import require_safetensors_adapter
from store.coi_format import parse_output, record_prompt, render_prompt
from store.predictions import Prediction
from store.step_types import infer_step_type

Progress = Callable[[int, str], None]  # (units just finished, message)


@dataclass
class Generation:
    """One generated answer: its text, its token count and whether it hit ``max_new_tokens``."""

    text: str
    n_tokens: int
    hit_limit: bool


@dataclass
class Generator:
    """Greedy (or sampled) batched generation with left padding.

    Args:
        model: A causal LM (optionally a peft model), already on its device.
        tokenizer: Its tokenizer; a missing pad token falls back to eos.
        batch_size: Prompts per forward pass.
        max_new_tokens: The most new tokens per answer.
        do_sample: False (greedy) by default, as in the paper's evaluation.
    """

    model: object
    tokenizer: object
    batch_size: int = 8
    max_new_tokens: int = 128
    do_sample: bool = False
    eos_ids: list[int] = field(default_factory=list)
    # Greedy answers by prompt: stepwise-own's step 1 is stepwise-gold's step 1 (same prompt), so
    # it is generated once and both modes score the identical text.
    cache: dict[str, Generation] = field(default_factory=dict)
    stats: dict[str, float] = field(
        default_factory=lambda: {"prompts": 0, "cached": 0, "new_tokens": 0, "seconds": 0.0}
    )

    def __post_init__(self) -> None:
        tok = self.tokenizer
        if tok.pad_token is None:
            tok.pad_token = tok.eos_token
        tok.padding_side = "left"
        self.eos_ids = _eos_ids(self.model, tok)
        use_fast_cpu_linears(self.model)

    def generate(self, prompts: Sequence[str], on_batch: Progress | None = None) -> list[Generation]:
        """Answers to ``prompts`` in their order; batches hold prompts of similar length (less padding).

        A prompt answered before (greedy decoding only) is not generated again.
        """
        import time

        out: list[Generation | None] = [self.cache.get(p) if not self.do_sample else None for p in prompts]
        hits = sum(g is not None for g in out)
        self.stats["prompts"] += len(prompts)
        self.stats["cached"] += hits
        if hits and on_batch:
            on_batch(hits, f"reused {hits} earlier answer(s)")
        todo = sorted((i for i, g in enumerate(out) if g is None), key=lambda i: len(prompts[i]))
        for start in range(0, len(todo), self.batch_size):
            idx = todo[start : start + self.batch_size]
            t0 = time.perf_counter()
            for i, gen in zip(idx, self._batch([prompts[i] for i in idx])):
                out[i] = gen
                self.stats["new_tokens"] += gen.n_tokens
                if not self.do_sample:
                    self.cache[prompts[i]] = gen
            self.stats["seconds"] += time.perf_counter() - t0
            if on_batch:
                on_batch(len(idx), f"generated {min(start + len(idx), len(todo))}/{len(todo)}")
        return out  # type: ignore[return-value]

    def _batch(self, prompts: list[str]) -> list[Generation]:
        import torch

        enc = self.tokenizer(prompts, return_tensors="pt", padding=True).to(self.model.device)
        with torch.inference_mode():
            out = self.model.generate(
                **enc,
                max_new_tokens=self.max_new_tokens,
                do_sample=self.do_sample,
                eos_token_id=self.eos_ids,
                pad_token_id=self.tokenizer.pad_token_id,
            )
        new = out[:, enc["input_ids"].shape[1] :].tolist()
        return [self._decode(row) for row in new]

    def _decode(self, ids: list[int]) -> Generation:
        eos = set(self.eos_ids)
        end = next((i for i, t in enumerate(ids) if t in eos), None)
        kept = ids if end is None else ids[:end]
        text = self.tokenizer.decode(kept, skip_special_tokens=True)
        return Generation(
            text=text, n_tokens=len(kept), hit_limit=end is None and len(ids) >= self.max_new_tokens
        )


# Decoding a batch on the CPU multiplies a few rows by tall weights (Gemma's LM head is 262,144 x 640).
# oneDNN's x @ W.T runs that at a fraction of the machine's speed; W @ x.T computes the same product
# about 2.3x faster at 8 rows and the same at 1 row (measured on 2 EPYC cores). Prefill keeps F.linear.
_FEW_ROWS = 64


def use_fast_cpu_linears(model) -> None:
    """On the CPU, route few-row products of every nn.Linear through ``W @ x.T`` (idempotent)."""
    import torch

    if getattr(model, "_coi_fast_linears", False) or next(model.parameters()).device.type != "cpu":
        return
    for module in model.modules():
        if isinstance(module, torch.nn.Linear):
            module.forward = _few_rows_linear(module)
    model._coi_fast_linears = True


def _few_rows_linear(module):
    import torch
    import torch.nn.functional as F

    def forward(x):
        rows = x.numel() // x.shape[-1]
        if rows > _FEW_ROWS:
            return F.linear(x, module.weight, module.bias)
        y = torch.mm(module.weight, x.reshape(rows, x.shape[-1]).T).T
        if module.bias is not None:
            y = y + module.bias
        return y.reshape(*x.shape[:-1], module.out_features)

    return forward


def _eos_ids(model, tokenizer) -> list[int]:
    ids = model.generation_config.eos_token_id if getattr(model, "generation_config", None) else None
    ids = list(ids) if isinstance(ids, (list, tuple)) else ([ids] if ids is not None else [])
    if tokenizer.eos_token_id is not None and tokenizer.eos_token_id not in ids:
        ids.append(tokenizer.eos_token_id)
    return ids


def load_generator(
    model: str | None,
    adapter_dir: str | None,
    *,
    batch_size: int = 8,
    max_new_tokens: int = 128,
    precision: str = "fp32",
    log: Callable[[str], None] = print,
) -> Generator:
    """Load the base model (registry name, path or HF id), optionally with a LoRA adapter on top.

    Both load as safetensors only; a pickled ``.bin`` model or adapter raises CoiError.
    ``precision`` "auto" generates in bf16 where the device runs it natively (about 1.9x faster
    on a bf16 CPU); greedy answers then match fp32's for most prompts, not all.
    """
    import torch

    from models.precision import resolve_precision
    from models.registry import load_causal_lm

    if adapter_dir and _is_full_model(adapter_dir):  # a full fine-tune saves the whole model there
        model, adapter_dir = adapter_dir, None
    lm, tokenizer = load_causal_lm(model, log=log)  # safetensors only
    if adapter_dir:
        from peft import PeftModel

        require_safetensors_adapter(adapter_dir)  # never unpickle an adapter_model.bin
        lm = PeftModel.from_pretrained(lm, adapter_dir)  # picks adapter_model.safetensors
        lm = lm.merge_and_unload()  # plain weights generate faster than LoRA hooks
    device = "cuda" if torch.cuda.is_available() else "cpu"
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(
        resolve_precision(precision, int(device == "cuda")), torch.float32
    )
    lm.to(device=device, dtype=dtype).eval()  # merged first: the adapter's delta is added in fp32
    return Generator(lm, tokenizer, batch_size=batch_size, max_new_tokens=max_new_tokens)


def _is_full_model(path: str) -> bool:
    from pathlib import Path

    folder = Path(path)
    return (folder / "config.json").is_file() and not (folder / "adapter_config.json").is_file()


def _step_type(record: dict, k: int) -> str:
    """Step k's type from its instruction, or from its task's category where the chain has one per step."""
    categories = (record.get("category") or "").split("+")
    category = categories[k] if len(categories) == record["length"] else ""
    return infer_step_type(record["instructions"][k], category)


def _step_input(record: dict, k: int, previous: list[str]) -> str:
    """The input of step ``k`` (0-based): the chain input, then the previous step's output."""
    return record["input"] if k == 0 else previous[k - 1]


def _row(
    record: dict, k: int, mode: str, prompt: str | None, text: str, scorer: RougeL, meta: dict
) -> Prediction:
    reference = record["outputs"][k]
    meta = {
        "length": record["length"],
        "source": record.get("source"),
        "step_type": _step_type(record, k),
        **meta,
    }
    return Prediction(
        chain_id=record["chain_id"],
        position=k + 1,
        mode=mode,
        prediction=text,
        reference=reference,
        rougeL=scorer.fmeasure(reference, text),
        prompt=prompt,
        meta=meta,
    )


def predict_chain(
    gen: Generator, records: list[dict], scorer: RougeL, progress: Progress | None = None
) -> list[Prediction]:
    """Chain mode: one prompt per chain, the answer split into steps by the shared parser."""
    prompts = [record_prompt(r) for r in records]
    rows: list[Prediction] = []
    for record, prompt, g in zip(records, prompts, gen.generate(prompts, progress)):
        n = record["length"]
        parsed = parse_output(g.text, n)
        last = max((k for k, o in enumerate(parsed.outputs) if o.strip()), default=n - 1)
        for k in range(n):
            meta = {
                "raw": g.text,
                "issues": parsed.issues,
                "hit_limit": g.hit_limit and k == last,
                "input": _step_input(record, k, parsed.outputs),
                "chain_input": record["input"],
            }
            rows.append(_row(record, k, "chain", prompt if k == 0 else None, parsed.outputs[k], scorer, meta))
    return rows


def predict_stepwise_gold(
    gen: Generator, records: list[dict], scorer: RougeL, progress: Progress | None = None
) -> list[Prediction]:
    """Each step alone with the gold output of the step before: all steps go in one batched pass."""
    jobs = [(r, k, _step_input(r, k, r["outputs"])) for r in records for k in range(r["length"])]
    prompts = [render_prompt(r["instructions"][k], inp) for r, k, inp in jobs]
    rows = []
    for (r, k, inp), prompt, g in zip(jobs, prompts, gen.generate(prompts, progress)):
        meta = {"hit_limit": g.hit_limit, "input": inp}
        rows.append(_row(r, k, "stepwise-gold", prompt, g.text, scorer, meta))
    return rows


def predict_stepwise_own(
    gen: Generator, records: list[dict], scorer: RougeL, progress: Progress | None = None
) -> list[Prediction]:
    """Each step alone with the model's own previous output, batched across chains step by step."""
    own: dict[int, list[str]] = {i: [] for i in range(len(records))}
    rows: list[Prediction] = []
    for k in range(max((r["length"] for r in records), default=0)):
        active = [i for i, r in enumerate(records) if r["length"] > k]
        inputs = [_step_input(records[i], k, own[i]) for i in active]
        prompts = [render_prompt(records[i]["instructions"][k], inp) for i, inp in zip(active, inputs)]
        for i, inp, prompt, g in zip(active, inputs, prompts, gen.generate(prompts, progress)):
            own[i].append(g.text)
            meta = {"hit_limit": g.hit_limit, "input": inp}
            rows.append(_row(records[i], k, "stepwise-own", prompt, g.text, scorer, meta))
    return rows


PREDICTORS = {
    "chain": predict_chain,
    "stepwise-gold": predict_stepwise_gold,
    "stepwise-own": predict_stepwise_own,
}


def units(records: list[dict], mode: str) -> int:
    """How many generations a mode needs (for progress bars)."""
    return len(records) if mode == "chain" else sum(r["length"] for r in records)
