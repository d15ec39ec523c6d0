"""Helpers shared by the tests (and a few benches): factories, page openers, probes, scripted servers."""

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]  # the project root
APP = ROOT / "app"
REFERENCE_DATA = ROOT.parent / "shared" / "reference" / "coi_data"  # the paper's data, never committed
