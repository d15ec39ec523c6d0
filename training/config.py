"""The one training configuration: the Train form, the ``coi train`` flags and the saved job config.

``TrainConfig`` is a frozen dataclass whose fields carry ``metadata={"help": ...}``. The form
(:func:`form_fields`), the CLI (:func:`add_arguments` / :func:`from_args`) and the job row
(:meth:`TrainConfig.to_dict` / :meth:`TrainConfig.from_dict`) are all derived from it, so a new
field shows up everywhere at once.
"""

from __future__ import annotations

import argparse
import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from models.precision import PRECISIONS
from store import config as _config
from store.config import FieldSpec, config_diff, option  # noqa: F401 - pages and tests take them from here
from store.db import default_db_path
from store.errors import CoiError

METHODS = ("lora", "full")


@dataclass(frozen=True)
class TrainConfig:
    """Everything a LoRA fine-tuning run needs; saved as the job's config (no secrets)."""

    base_model: str = option(
        "gemma-3-270m", "Base model: 'gemma-3-270m' (embedded default), an HF id or a local path."
    )
    dataset_version: int | None = option(None, "Dataset version id to train on (empty: the newest version).")
    train_lengths: tuple[int, ...] = option((1, 2, 3), "Chain lengths to train on, e.g. 1,2,3.")
    method: str = option(
        "lora",
        "lora: train small adapters; full: fine-tune every weight (the paper's setting).",
        choices=METHODS,
    )
    lora_r: int = option(8, "LoRA rank.")
    lora_alpha: int = option(16, "LoRA alpha (scaling = alpha / r).")
    lora_dropout: float = option(0.05, "Dropout on the LoRA branch.")
    target_modules: tuple[str, ...] = option(
        ("q_proj", "k_proj", "v_proj", "o_proj"), "Modules that get LoRA adapters, e.g. q_proj,v_proj."
    )
    learning_rate: float = option(2e-4, "Peak learning rate.")
    epochs: float = option(3.0, "Passes over the training data (ignored when max_steps > 0).")
    batch_size: int = option(4, "Chains per device per step.")
    grad_accum: int = option(
        1, "Gradient accumulation steps (effective batch = batch_size x grad_accum x processes)."
    )
    max_seq_len: int = option(512, "Longest tokenized example; longer ones are cut in the prompt first.")
    warmup_ratio: float = option(0.03, "Fraction of the steps spent warming the learning rate up.")
    weight_decay: float = option(0.0, "AdamW weight decay (the paper: 0).")
    seed: int = option(0, "Random seed (data order, LoRA init, eval split).")
    max_steps: int = option(-1, "Stop after this many optimizer steps (-1: run all epochs).")
    precision: str = option(
        "auto", "auto: bf16 where the GPU or CPU runs it natively, else fp32.", choices=PRECISIONS
    )
    gradient_checkpointing: bool = option(False, "Trade compute for memory (for long sequences on a GPU).")
    num_gpus: int = option(0, "GPUs to use: 0 trains on the CPU; more than 1 launches through accelerate.")
    num_processes: int = option(
        0,
        "Training processes (DDP ranks), 2 or more launch through accelerate (0: one per GPU, or one on "
        "the CPU). On the CPU they share its cores and sync gradients over gloo; on GPUs it must equal num_gpus.",
    )
    output_dir: str = option(
        "", "Where checkpoints and the adapter go (empty: runs/job-<id> beside the database)."
    )
    logging_steps: int = option(5, "Log loss, learning rate and tokens/s every this many steps.")
    save_steps: int = option(50, "Save a checkpoint (and evaluate) every this many steps.")
    eval_fraction: float = option(
        0.1,
        "Fraction of the training chains held out for the eval loss, so NOT trained on (0: none, as the paper).",
    )

    @property
    def processes(self) -> int:
        """How many training processes run: ``num_processes``, else one per GPU, else one."""
        return self.num_processes or max(self.num_gpus, 1)

    def to_dict(self) -> dict:
        """A JSON-ready dict (tuples become lists)."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(self).items()}

    @classmethod
    def from_dict(cls, data: dict) -> TrainConfig:
        """Build from a saved dict; unknown keys are ignored, values are coerced to the field types."""
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: _coerce(cls, k, v) for k, v in data.items() if k in names}).validated()

    def replace(self, **changes: Any) -> TrainConfig:
        """A copy with some fields changed (coerced and validated)."""
        return TrainConfig.from_dict({**self.to_dict(), **changes})

    def validated(self) -> TrainConfig:
        """Return self, or raise CoiError naming the first bad field."""
        checks = [
            (self.lora_r > 0, "lora_r", "must be positive"),
            (self.learning_rate > 0, "learning_rate", "must be positive"),
            (self.batch_size > 0, "batch_size", "must be positive"),
            (self.grad_accum > 0, "grad_accum", "must be positive"),
            (self.max_seq_len >= 16, "max_seq_len", "must be at least 16"),
            (0 <= self.warmup_ratio < 1, "warmup_ratio", "must be in [0, 1)"),
            (0 <= self.eval_fraction < 1, "eval_fraction", "must be in [0, 1)"),
            (0 <= self.lora_dropout < 1, "lora_dropout", "must be in [0, 1)"),
            (self.precision in PRECISIONS, "precision", f"must be one of {', '.join(PRECISIONS)}"),
            (self.method in METHODS, "method", f"must be one of {', '.join(METHODS)}"),
            (self.weight_decay >= 0, "weight_decay", "must be 0 or more"),
            (self.num_gpus >= 0, "num_gpus", "must be 0 (CPU) or more"),
            (
                self.num_processes == 0 or self.num_processes == self.num_gpus or self.num_gpus == 0,
                "num_processes",
                "must be 0 or num_gpus on GPUs (one process per GPU)",
            ),
            (self.num_processes >= 0, "num_processes", "must be 0 (automatic) or more"),
            (self.max_steps > 0 or self.epochs > 0, "epochs", "must be positive when max_steps is off"),
            (bool(self.train_lengths), "train_lengths", "needs at least one chain length"),
            (bool(self.target_modules), "target_modules", "needs at least one module name"),
            (
                self.logging_steps > 0 and self.save_steps > 0,
                "logging_steps",
                "logging/save steps must be > 0",
            ),
        ]
        for ok, name, why in checks:
            if not ok:
                raise CoiError(f"Bad training config: {name} {why}", "Fix that field and start again.")
        return self


# The authors' recipe, flag by flag, from amazon-science/chain-of-instructions
# model_training/stanford_alpaca/model_trainer.sh (torchrun on 8 GPUs, full fine-tuning) and the
# defaults of its train.py (model_max_length 512; transformers' linear schedule). README: "Training recipe".
PAPER = {
    "method": "full",
    "epochs": 3,  # --num_train_epochs 3
    "batch_size": 4,  # --per_device_train_batch_size 4
    "grad_accum": 8,  # --gradient_accumulation_steps 8
    "learning_rate": 2e-5,  # --learning_rate 2e-5
    "weight_decay": 0.0,  # --weight_decay 0.
    "warmup_ratio": 0.03,  # --warmup_ratio 0.03
    "precision": "auto",  # --bf16 True: bf16 where the device runs it natively
    "eval_fraction": 0.0,  # --evaluation_strategy "no": every chain is trained on
    "max_seq_len": 512,  # train.py: model_max_length = 512
}

PRESETS: dict[str, dict] = {
    "default": {},
    "paper": PAPER,
    # The same schedule with LoRA; 2e-5 is a full fine-tuning rate and barely moves an adapter. 2e-4 is
    # the rate of the reference run (240 coi_2 chains, r=8, 3 epochs: ROUGE-L 7.7 -> 22.3).
    "paper-lora": {**PAPER, "method": "lora", "learning_rate": 2e-4},
    # A smoke run that finishes in about a minute on a laptop CPU.
    "quick": {"max_steps": 20, "batch_size": 4, "logging_steps": 2, "save_steps": 10, "max_seq_len": 384},
}


def preset(name: str, **overrides: Any) -> TrainConfig:
    """The config of a named preset, with some fields overridden."""
    if name not in PRESETS:
        raise CoiError(f"Unknown preset {name!r}", f"Use one of {', '.join(PRESETS)}.")
    return TrainConfig.from_dict({**TrainConfig().to_dict(), **PRESETS[name], **overrides})


# ---- field introspection (form and CLI): the shared machinery in store.config, for TrainConfig --------


def form_fields(cls: type = TrainConfig) -> list[FieldSpec]:
    """One FieldSpec per config field, in declaration order."""
    return _config.form_fields(cls)


def _coerce(cls: type, name: str, value: Any) -> Any:
    return _config.coerce(cls, name, value, what="training config")


def add_arguments(parser: argparse.ArgumentParser, cls: type = TrainConfig) -> None:
    """Add one ``--field-name`` flag per config field (default None = keep the preset's value)."""
    _config.add_arguments(parser, cls)


def overrides_from_args(args: argparse.Namespace, cls: type = TrainConfig) -> dict:
    """The config fields given on the command line."""
    return _config.overrides_from_args(args, cls)


def resolve_output_dir(cfg: TrainConfig, job_id: int) -> Path:
    """The run's directory: ``output_dir`` if set (relative paths are beside the database), else runs/job-<id>."""
    base = default_db_path().resolve().parent
    path = Path(cfg.output_dir).expanduser() if cfg.output_dir else Path("runs") / f"job-{job_id}"
    return path if path.is_absolute() else base / path
