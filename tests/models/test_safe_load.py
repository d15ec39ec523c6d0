"""Checkpoints load as safetensors, or with weights_only=True: a malicious pickle never runs."""

from __future__ import annotations

import json
import pickle
import shutil
from pathlib import Path

import pytest

from jobs.process import force_weights_only
from models.safe_load import (
    require_safe_checkpoint,
    require_safetensors_adapter,
    require_safetensors_model,
)
from store.errors import CoiError


class Boom:
    """Unpickling this creates ``marker``: what a hostile .bin file could do (with os.system instead)."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def write_pickle(path: Path, marker: Path, *, torch_format: bool = False) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if torch_format:
        import torch

        torch.save({"weight": Boom(marker)}, path)
    else:
        path.write_bytes(pickle.dumps(Boom(marker)))
    return path


def test_the_pickle_really_is_malicious(tmp_path):
    marker = tmp_path / "pwned"
    pickle.loads(write_pickle(tmp_path / "x.bin", marker).read_bytes()).close()
    assert marker.exists()  # so the tests below would see it if any load unpickled it


def test_model_dir_with_pytorch_model_bin_is_refused(tmp_path, tiny_model_dir):
    from models.registry import load_causal_lm

    marker, model = tmp_path / "pwned", tmp_path / "evil-model"
    shutil.copytree(tiny_model_dir, model)
    (model / "model.safetensors").unlink()
    write_pickle(model / "pytorch_model.bin", marker, torch_format=True)
    with pytest.raises(CoiError, match="no safetensors weights.*pytorch_model.bin") as err:
        load_causal_lm(str(model))
    assert "pickle" in err.value.hint
    assert not marker.exists()


def test_adapter_bin_is_refused_by_eval_loading(tmp_path, tiny_model_dir):
    from eval.predict import load_generator

    marker, adapter = tmp_path / "pwned", tmp_path / "evil-adapter"
    write_pickle(adapter / "adapter_model.bin", marker, torch_format=True)
    (adapter / "adapter_config.json").write_text(json.dumps({"peft_type": "LORA", "r": 4}))
    with pytest.raises(CoiError, match="no adapter_model.safetensors.*adapter_model.bin"):
        load_generator(str(tiny_model_dir), str(adapter))
    assert not marker.exists()


def test_missing_adapter_dir_is_a_clear_error(tmp_path):
    with pytest.raises(CoiError, match="does not exist"):
        require_safetensors_adapter(tmp_path / "nope")


def test_resume_refuses_a_checkpoint_with_pickled_weights(db_path, tmp_path):
    from training.run import resume_checkpoint

    marker, out_dir = tmp_path / "pwned", db_path.parent / "run"
    ckpt = out_dir / "checkpoint-4"
    write_pickle(ckpt / "adapter_model.bin", marker, torch_format=True)
    (ckpt / "trainer_state.json").write_text(json.dumps({"global_step": 4}))
    with pytest.raises(CoiError, match="pickled weights.*adapter_model.bin"):
        resume_checkpoint(out_dir)
    assert not marker.exists()


def test_a_checkpoint_with_safetensors_and_trainer_states_is_accepted(tmp_path):
    ckpt = tmp_path / "checkpoint-2"
    ckpt.mkdir()
    for name in ("adapter_model.safetensors", "optimizer.pt", "scheduler.pt", "rng_state.pth"):
        (ckpt / name).write_bytes(b"x")
    require_safe_checkpoint(ckpt)
    for name in ("rng_state_0.pth", "rng_state_1.pth"):  # one per rank of a multi-process run
        (ckpt / name).write_bytes(b"x")
    require_safe_checkpoint(ckpt)
    (ckpt / "rng_state_0.pth.bin").write_bytes(b"x")  # only the Trainer's own names pass
    with pytest.raises(CoiError, match="pickled weights"):
        require_safe_checkpoint(ckpt)
    (ckpt / "rng_state_0.pth.bin").unlink()
    (ckpt / "adapter_model.safetensors").unlink()
    with pytest.raises(CoiError, match="no safetensors weights"):
        require_safe_checkpoint(ckpt)


def test_safetensors_models_and_hub_ids_pass(tiny_model_dir):
    require_safetensors_model(tiny_model_dir)
    require_safetensors_model("google/gemma-3-270m")  # not a local dir: transformers gets use_safetensors


def test_forced_weights_only_refuses_the_pickle_even_when_asked_not_to(tmp_path, monkeypatch):
    import torch

    monkeypatch.setenv("TORCH_FORCE_WEIGHTS_ONLY_LOAD", "0")  # restored after the test
    monkeypatch.setenv("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD", "0")
    marker = tmp_path / "pwned"
    state = write_pickle(tmp_path / "optimizer.pt", marker, torch_format=True)
    force_weights_only()
    with pytest.raises(pickle.UnpicklingError):
        torch.load(state, weights_only=False)  # a library passing False is overridden
    assert not marker.exists()


def test_trainer_state_loads_are_weights_only_in_this_transformers():
    """transformers' Trainer passes weights_only=True at every torch.load (checked in its source)."""
    import inspect
    import re

    import transformers.trainer as trainer_module

    source = inspect.getsource(trainer_module)
    calls = re.findall(r"torch\.load\((.*?)\)\s*\n", source, flags=re.S)
    assert calls and all("weights_only=True" in c for c in calls), calls
