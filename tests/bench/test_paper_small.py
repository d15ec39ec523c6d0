"""bench/paper_small.py end to end in a real subprocess, on the tiny model: its RESULT line as the issue names it."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from tests.support import ROOT

RESULT = re.compile(
    r"^RESULT base_rougeL=(?P<base>[\d.]+) tuned_rougeL=(?P<tuned>[\d.]+) gain=(?P<gain>-?[\d.]+) "
    r"gain_ci_low=-?[\d.]+ base_em=[\d.]+ tuned_em=[\d.]+ train_s=\d+ eval_s=\d+$"
)


@pytest.mark.slow
def test_smoke_run_prints_the_result_line(tmp_path, tiny_model_dir, reference_data):
    cmd = [sys.executable, str(ROOT / "bench" / "paper_small.py"), "--smoke", "--model", str(tiny_model_dir)]
    cmd += ["--workdir", str(tmp_path / "bench"), "--max-seq-len", "128"]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert done.returncode == 0, done.stderr[-3000:]
    lines = done.stdout.strip().splitlines()
    match = RESULT.match(lines[-1])
    assert match, lines[-1]
    assert float(match["gain"]) == pytest.approx(float(match["tuned"]) - float(match["base"]), abs=0.11)
    out = done.stdout
    assert "version 1: {'train': 8, 'test': 42}" in out  # every 14th coi2_test record is the fixed test set
    assert "| CoI2 | 6 |" in out and "eval stepwise-own of coi2_test + coi3_test" in out
    assert "3 tuned predictions (final output) beside their references, verbatim:" in out
