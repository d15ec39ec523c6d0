"""Weights load as safetensors, and any pickle the Trainer reads loads with ``weights_only=True``.

A ``.bin`` / ``.pt`` weights file is a Python pickle: unpickling it can run arbitrary code, so a
model or adapter directory a user points at is refused unless it holds safetensors weights.
Our own adapters and checkpoints are written as safetensors (peft and the Trainer default to it).

A resumed Trainer still reads ``optimizer.pt``, ``scheduler.pt`` and ``rng_state.pth`` with
``torch.load``. transformers 5 passes ``weights_only=True`` at each of those calls (torch then
refuses any pickle that would build arbitrary objects); ``jobs.process.force_weights_only`` also sets
torch's own ``TORCH_FORCE_WEIGHTS_ONLY_LOAD=1`` in the job process, which makes every
``torch.load`` weights-only even if a library were to pass ``weights_only=False``.
"""

from __future__ import annotations

import re
from pathlib import Path

from store.errors import CoiError

PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".pkl", ".pickle", ".ckpt")
MODEL_WEIGHTS = ("model.safetensors", "model.safetensors.index.json")
ADAPTER_WEIGHTS = "adapter_model.safetensors"
# Trainer state files that are pickles by design, read with torch.load(weights_only=True).
TRAINER_STATE_PICKLES = ("optimizer.pt", "scheduler.pt", "rng_state.pth", "scaler.pt", "training_args.bin")
# A multi-process run saves one RNG state per rank: rng_state_0.pth, rng_state_1.pth, ...
RANK_RNG_STATE = re.compile(r"rng_state_\d+\.pth")
_WHY = (
    "CoI Studio loads weights only as safetensors: a .bin/.pt file is a Python pickle that can run "
    "code when it is loaded. Re-save it with save_pretrained(..., safe_serialization=True) "
    "somewhere you trust it."
)


def _pickles(directory: Path, *, trainer_state_too: bool = True) -> list[str]:
    return sorted(
        p.name
        for p in directory.iterdir()
        if p.suffix.lower() in PICKLE_SUFFIXES and (trainer_state_too or not _trainer_state(p.name))
    )


def _trainer_state(name: str) -> bool:
    return name in TRAINER_STATE_PICKLES or bool(RANK_RNG_STATE.fullmatch(name))


def _no_safetensors(message: str, directory: Path) -> CoiError:
    found = _pickles(directory)
    return CoiError(message + (f" (found {', '.join(found)})" if found else ""), _WHY)


def require_safetensors_model(path: str | Path) -> None:
    """Refuse a local model directory whose weights are not safetensors (hub ids are not checked here).

    Raises:
        CoiError: the directory has no ``model.safetensors`` (or sharded index).
    """
    directory = Path(path)
    if not directory.is_dir() or any((directory / name).exists() for name in MODEL_WEIGHTS):
        return
    if any(directory.glob("*.safetensors")):
        return
    raise _no_safetensors(f"Model directory {directory} has no safetensors weights", directory)


def require_safetensors_adapter(path: str | Path) -> None:
    """Refuse a LoRA adapter directory without ``adapter_model.safetensors``.

    Raises:
        CoiError: the directory is missing, or its adapter is a pickle (``adapter_model.bin``).
    """
    directory = Path(path)
    if not directory.is_dir():
        raise CoiError(f"Adapter directory {directory} does not exist", "Train again or pick another run.")
    if (directory / ADAPTER_WEIGHTS).is_file():
        return
    raise _no_safetensors(f"Adapter directory {directory} has no {ADAPTER_WEIGHTS}", directory)


def require_safe_checkpoint(path: str | Path) -> None:
    """A Trainer checkpoint to resume from: its adapter (or model) weights must be safetensors.

    The optimizer, scheduler and RNG states stay pickles; the Trainer loads them weights-only.

    Raises:
        CoiError: the checkpoint's weights are pickles.
    """
    directory = Path(path)
    weights = _pickles(directory, trainer_state_too=False)
    if weights:
        raise CoiError(f"Checkpoint {directory} holds pickled weights ({', '.join(weights)})", _WHY)
    if not (directory / ADAPTER_WEIGHTS).is_file():
        require_safetensors_model(directory)
