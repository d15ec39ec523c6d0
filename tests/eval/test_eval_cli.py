"""`coi eval` flags come from EvalConfig through the shared config machinery."""

from __future__ import annotations

from cli import build_parser
from eval.cli import config_from_args
from eval.config import EvalConfig


def test_every_eval_config_field_is_a_flag_and_unset_flags_keep_the_defaults():
    argv = [
        "eval",
        "--modes",
        "chain,stepwise-own",
        "--lengths",
        "1,3",
        "--limit",
        "5",
        "--max-new-tokens",
        "32",
    ]
    cfg = config_from_args(
        build_parser().parse_args([*argv, "--threshold", "0.5", "--stemmer", "--split", "train"])
    )
    assert cfg == EvalConfig(
        modes=("chain", "stepwise-own"),
        lengths=(1, 3),
        limit=5,
        max_new_tokens=32,
        fail_threshold=0.5,
        use_stemmer=True,
        split="train",
    )
    assert config_from_args(build_parser().parse_args(["eval"])) == EvalConfig()
    assert config_from_args(build_parser().parse_args(["eval", "--adapter-job", "7"])).adapter_job == 7
