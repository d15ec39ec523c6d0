"""The training entry point: ``python -m training.run --job ID``.

Reads the ``TrainConfig`` from the job row, logs it, then runs one visible main sequence:
records -> tokens -> base model + LoRA -> Trainer (resuming from the newest checkpoint in the
output directory) -> adapter + ``coi_meta.json``. A callback writes loss, learning rate, grad
norm, tokens/s and eval loss to ``metrics`` with a heartbeat at every logging step. Under
``accelerate launch`` every rank trains; only rank 0 touches the database.

Speed: the loss only counts response tokens, so the LM head (the largest matmul
of small models with big vocabularies, e.g. Gemma's 262k) runs only on the positions that
predict a response token, instead of on every position of the padded batch. Under DDP too: that
loss is a mode of the model's forward, so it runs through DDP's (``training.trainer``).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path

from jobs.process import force_weights_only, run_as_job
from models.precision import resolve_precision
from models.registry import load_causal_lm, resolve_model
from models.safe_load import require_safe_checkpoint
from store import env
from store.db import connect
from store.errors import CoiError
from store.jobs import add_metrics, delete_metrics_after, get_job, heartbeat
from store.paths import confine_data_path
from store.versions import list_versions, version_records
from training.config import TrainConfig
from training.data import PadCollator, build_examples, split_eval
from training.queue import confine_paths, last_checkpoint
from training.trainer import add_lora, make_trainer_class, response_only_loss  # noqa: F401 - re-exported

META_FILE = "coi_meta.json"
ADAPTER_SUBDIR = "adapter"
LOGGED = ("loss", "learning_rate", "grad_norm", "eval_loss")


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def rank() -> int:
    return int(env.get("RANK", "0"))


# ---- pieces ---------------------------------------------------------------------------------------


def load_records(db, cfg: TrainConfig) -> tuple[int, list[dict]]:
    """The training records of the config's dataset version (newest version if unset)."""
    vid = cfg.dataset_version
    if vid is None:
        versions = list_versions(db)
        if not versions:
            raise CoiError(
                "There is no dataset version yet", "Create one on the Train page or with `coi export`."
            )
        vid = versions[0].id
    records = version_records(db, vid, "train", list(cfg.train_lengths))
    if not records:
        raise CoiError(
            f"Dataset version {vid} has no training chains of length {','.join(map(str, cfg.train_lengths))}",
            "Pick another version or other chain lengths.",
        )
    return vid, records


def make_callback(db, job_id: int, write: bool, after_step: Callable[[], None] = lambda: None):
    """Metrics, heartbeat, ETA and a readable log line at every logging step; ``after_step`` after each step."""
    from transformers import TrainerCallback

    class DbCallback(TrainerCallback):
        trainer = None
        smoothed: float | None = None  # exponential moving average of the logged loss
        last_epoch: float = 0.0

        def on_train_begin(self, args, state, control, **kw):
            self.t0 = self.t_log = time.monotonic()
            self.start_step, self.tokens_at_log = state.global_step, 0
            self._beat(state, force=True)

        def on_step_end(self, args, state, control, **kw):
            self._beat(state)
            after_step()

        def on_log(self, args, state, control, logs=None, **kw):
            values = {k: logs[k] for k in LOGGED if k in (logs or {})}
            if "loss" in values:
                values["tokens_per_s"] = self._throughput()
                values["loss_smooth"] = self._smooth(values["loss"])
            if not values:
                return
            shown = " ".join(f"{k}={v:.4g}" for k, v in values.items())
            if state.is_world_process_zero:
                log(f"step {state.global_step}/{state.max_steps} {shown}")
            if write and state.is_world_process_zero:
                add_metrics(db, job_id, state.global_step, values)
                self._beat(state, force=True)

        def on_epoch_end(self, args, state, control, **kw):
            # The mean logged loss of the epoch just finished: a steadier curve than per-batch loss.
            last, self.last_epoch = self.last_epoch, state.epoch
            fresh = [
                h["loss"]
                for h in state.log_history
                if "loss" in h and last < h.get("epoch", 0) <= state.epoch
            ]
            if not fresh or not state.is_world_process_zero:
                return
            mean = sum(fresh) / len(fresh)
            log(f"epoch {round(state.epoch)} mean loss {mean:.4g}")
            if write:
                add_metrics(db, job_id, state.global_step, {"epoch_loss": mean})

        def _smooth(self, loss: float, weight: float = 0.8) -> float:
            self.smoothed = loss if self.smoothed is None else weight * self.smoothed + (1 - weight) * loss
            return self.smoothed

        def _throughput(self) -> float:
            now, tokens = time.monotonic(), self.trainer.real_tokens
            rate = (tokens - self.tokens_at_log) / max(now - self.t_log, 1e-9)
            self.t_log, self.tokens_at_log = now, tokens
            return rate

        def _beat(self, state, force: bool = False):
            if not (write and state.is_world_process_zero):
                return
            now = time.monotonic()
            if not force and now - getattr(self, "t_beat", 0) < 1.0:
                return
            self.t_beat = now
            done, total = state.global_step, state.max_steps
            heartbeat(
                db,
                job_id,
                done=done,
                total=total,
                message=eta_message(done, total, self.start_step, now - self.t0),
            )

    return DbCallback()


def eta_message(done: int, total: int, start_step: int, elapsed_s: float) -> str:
    """'step 3/10 · 1.2 s/step · ETA 0:00:08' (rate measured over this launch only)."""
    ran = done - start_step
    if ran <= 0 or total <= 0:
        return f"step {done}/{total}"
    per_step = elapsed_s / ran
    eta = int(per_step * max(total - done, 0))
    return f"step {done}/{total} · {per_step:.2f} s/step · ETA {eta // 3600}:{eta % 3600 // 60:02d}:{eta % 60:02d}"


def training_arguments(cfg: TrainConfig, out_dir: Path, precision: str, has_eval: bool):
    from transformers import TrainingArguments

    return TrainingArguments(
        output_dir=str(out_dir),
        per_device_train_batch_size=cfg.batch_size,
        per_device_eval_batch_size=cfg.batch_size,
        gradient_accumulation_steps=cfg.grad_accum,
        learning_rate=cfg.learning_rate,
        weight_decay=cfg.weight_decay,
        num_train_epochs=cfg.epochs,
        max_steps=cfg.max_steps,
        warmup_steps=cfg.warmup_ratio,  # transformers 5: a float < 1 is a ratio of the total steps
        lr_scheduler_type="linear",
        logging_steps=cfg.logging_steps,
        save_steps=cfg.save_steps,
        save_strategy="steps",
        save_total_limit=2,
        eval_strategy="steps" if has_eval else "no",
        eval_steps=cfg.save_steps,
        prediction_loss_only=True,
        seed=cfg.seed,
        bf16=precision == "bf16",
        fp16=precision == "fp16",
        use_cpu=cfg.num_gpus == 0,
        activation_checkpointing=cfg.gradient_checkpointing,
        activation_checkpointing_kwargs={"use_reentrant": False},
        train_sampling_strategy="group_by_length",
        remove_unused_columns=False,
        report_to="none",
        disable_tqdm=True,
        dataloader_num_workers=0,
    )


def _quiet_printer(trainer) -> None:
    # Our callback already writes one readable line per log; drop the Trainer's raw dict printer.
    from transformers.trainer_callback import PrinterCallback

    trainer.remove_callback(PrinterCallback)


def resume_checkpoint(out_dir: Path) -> str | None:
    """The newest checkpoint to resume from, refused if it lies outside the roots or holds pickled weights."""
    ckpt = last_checkpoint(out_dir)
    if ckpt:
        confine_data_path(ckpt, what="checkpoint")  # a checkpoint-N symlinked elsewhere is caught here
        require_safe_checkpoint(ckpt)
    return ckpt


def rank_report(trainer, model) -> dict:
    """What this rank ran, logged by every rank: the world size, the module the loss went through
    ("DistributedDataParallel" under accelerate launch) and a checksum of the trained weights, equal on
    every rank when DDP synchronised the gradients."""
    world = trainer.args.world_size
    forwards = dict(trainer.loss_forwards)
    checksum = sum(float(p.detach().double().sum()) for p in model.parameters() if p.requires_grad)
    log(
        f"rank {rank()} of {world}: trained to step {trainer.state.global_step}; response-only loss "
        f"through {', '.join(f'{k} x{v}' for k, v in forwards.items()) or 'nothing'}; "
        f"trained weights checksum {checksum:.12e}"
    )
    return {"world_size": world, "loss_forwards": forwards, "weights_checksum": checksum}


def save_adapter(model, tokenizer, out_dir: Path, meta: dict) -> Path:
    adapter_dir = out_dir / ADAPTER_SUBDIR
    model.save_pretrained(adapter_dir, safe_serialization=True)  # safetensors: no pickle to load later
    tokenizer.save_pretrained(adapter_dir)
    (adapter_dir / META_FILE).write_text(json.dumps(meta, indent=2, sort_keys=True))
    return adapter_dir


# ---- the main sequence ----------------------------------------------------------------------------


def train(job_id: int, *, write: bool = True, after_step: Callable[[], None] = lambda: None) -> dict:
    """Run the job's training; return the job result. ``after_step`` runs after each step (a test seam)."""
    db = connect()
    job = get_job(db, job_id)
    cfg = TrainConfig.from_dict(job.config)
    log(f"Training job {job_id} (rank {rank()}), config:\n{json.dumps(cfg.to_dict(), indent=2)}")
    out_dir = confine_paths(cfg, job_id)  # again here: the policy may have changed since submit
    precision = resolve_precision(cfg.precision, cfg.num_gpus)
    version_id, records = load_records(db, cfg)
    log(f"1/5 data: {len(records)} chains of dataset version {version_id}")

    # LoRA freezes the base, so it may sit in half precision; full fine-tuning keeps fp32 master
    # weights and runs bf16 under autocast, as the authors' --bf16 True does.
    dtype = {"bf16": "bfloat16", "fp16": "float16"}.get(precision) if cfg.method == "lora" else None
    model, tokenizer = load_causal_lm(cfg.base_model, dtype=dtype, log=log)
    examples = build_examples(records, tokenizer, cfg.max_seq_len)
    train_ex, eval_ex = split_eval(examples, cfg.eval_fraction, cfg.seed)
    log(f"2/5 model {cfg.base_model} ({precision}); {len(train_ex)} train / {len(eval_ex)} eval examples")

    if cfg.method == "lora":
        model = add_lora(model, cfg)
        if cfg.gradient_checkpointing:
            model.enable_input_require_grads()
    n_train = sum(p.numel() for p in model.parameters() if p.requires_grad)
    what = (
        f"LoRA r={cfg.lora_r} on {','.join(cfg.target_modules)}"
        if cfg.method == "lora"
        else "full fine-tuning"
    )
    log(f"3/5 {what}: {n_train:,} trainable parameters")

    callback = make_callback(db, job_id, write, after_step)
    trainer = make_trainer_class()(
        model=model,
        args=training_arguments(cfg, out_dir, precision, bool(eval_ex)),
        train_dataset=train_ex,
        eval_dataset=eval_ex or None,
        data_collator=PadCollator(tokenizer.pad_token_id, 8 if cfg.num_gpus > 0 else None),
        processing_class=tokenizer,
        callbacks=[callback],
    )
    callback.trainer = trainer
    _quiet_printer(trainer)
    resume_from = resume_checkpoint(out_dir)
    log(f"4/5 training -> {out_dir}" + (f" (resuming from {resume_from})" if resume_from else ""))
    start_step = int(Path(resume_from).name.split("-")[-1]) if resume_from else 0
    if write:
        # Metrics logged after the checkpoint belong to a trajectory the kill threw away; the resumed
        # run logs those steps again (add_metrics upserts too, so a replay can never duplicate a row).
        dropped = delete_metrics_after(db, job_id, start_step)
        if dropped:
            log(f"dropped {dropped} metric rows logged after step {start_step} (they are replayed)")
    t_train = time.monotonic()
    output = trainer.train(resume_from_checkpoint=resume_from)  # also evaluates (and saves) at the last step
    train_s = time.monotonic() - t_train

    meta = {
        "base_model": cfg.base_model,
        "base_model_path": resolve_model(cfg.base_model, log=log),
        "dataset_version": version_id,
        "job_id": job_id,
        "config": cfg.to_dict(),
    }
    result = {
        "base_model": cfg.base_model,
        "dataset_version": version_id,
        "start_step": start_step,
        "global_step": trainer.state.global_step,
        "train_examples": len(train_ex),
        "eval_examples": len(eval_ex),
        "method": cfg.method,
        "train_loss": float(output.training_loss),  # the mean over the run, as the Trainer reports it
        # The smoothed loss at the last logging step (the run's mean when it never reached one).
        "final_loss": callback.smoothed if callback.smoothed is not None else float(output.training_loss),
        "train_s": round(train_s, 1),
        "tokens_per_s": round(trainer.real_tokens / max(train_s, 1e-9), 1),
        "train_tokens": trainer.real_tokens,  # prompt + response tokens, no padding, this launch
    }
    result.update(rank_report(trainer, model))
    if trainer.is_world_process_zero():
        # A full fine-tune saves the whole model where an adapter would go: eval loads either from there.
        result["adapter_dir"] = str(save_adapter(model, tokenizer, out_dir, meta))
        log(f"5/5 {'adapter' if cfg.method == 'lora' else 'model'} saved to {result['adapter_dir']}")
    return result


def main(argv: list[str] | None = None, *, after_step: Callable[[], None] = lambda: None) -> int:
    """``python -m training.run --job ID``; ``after_step`` is the hook a test wrapper injects."""
    parser = argparse.ArgumentParser(prog="python -m training.run")
    parser.add_argument("--job", type=int, required=True, help="The training job's id.")
    args = parser.parse_args(argv)
    force_weights_only()  # every torch.load here (optimizer/scheduler/RNG states) is weights-only, all ranks
    if rank() != 0:  # other ranks of a multi-GPU launch: train, never touch the job row
        train(args.job, write=False, after_step=after_step)
        return 0
    return run_as_job(
        args.job, lambda job_id: train(job_id, after_step=after_step)
    )  # it also starts the next queued job when this one ends


if __name__ == "__main__":
    sys.exit(main())
