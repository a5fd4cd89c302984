"""Reading an experiment spec: seeds, budgets, overrides, a spec file then flags, the example specs.

The one-line usage errors of the command are checked end to end in ``test_experiments.py``.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from ddpg_tf.config import PRESETS
from ddpg_tf.experiments.overrides import coerce_override, override_flags
from ddpg_tf.experiments.parsing import parse_args, parse_seeds
from ddpg_tf.experiments.spec import SpecError, default_budgets
from ddpg_tf.experiments.trials import trials_of

ROOT = Path(__file__).resolve().parents[1]
TINY = ROOT / "experiments" / "tiny.toml"


def test_seeds_and_budgets():
    assert parse_seeds("0,1,2") == (0, 1, 2)
    assert parse_seeds("0-4") == (0, 1, 2, 3, 4)
    assert parse_seeds("0-2, 7") == (0, 1, 2, 7)
    for bad in ("x", "1-x", "3-1", "0,0", "", "-1"):
        with pytest.raises(SpecError):
            parse_seeds(bad)
    assert default_budgets(20_000, 1_000) == (4_000, 8_000, 12_000, 16_000, 20_000)
    assert default_budgets(300_000, 10_000) == (60_000, 120_000, 180_000, 240_000, 300_000)
    assert default_budgets(300, 100) == (100, 200, 300)
    assert default_budgets(5_000, 0) == (5_000,)


def test_overrides_become_training_flags():
    values = {"actor_hidden": coerce_override("actor_hidden", "16, 16"),
              "jit_compile": coerce_override("jit_compile", "false"),
              "layer_norm": coerce_override("layer_norm", True),
              "gamma": coerce_override("gamma", "0.99"),
              "batch_size": coerce_override("batch_size", 32),
              "noise": coerce_override("noise", "ou")}
    assert values == {"actor_hidden": (16, 16), "jit_compile": False, "layer_norm": True, "gamma": 0.99,
                      "batch_size": 32, "noise": "ou"}
    assert override_flags(values) == ["--actor-hidden", "16,16", "--no-jit-compile", "--layer-norm",
                                      "--gamma", "0.99", "--batch-size", "32", "--noise", "ou"]
    for name, value in [("gamma", "abc"), ("batch_size", "1.5"), ("jit_compile", "maybe"),
                        ("noise", "pink"), ("seed", "3"), ("run_name", "x"), ("no_such_field", "1")]:
        with pytest.raises(SpecError):
            coerce_override(name, value)


def test_spec_file_then_flags(tmp_path):
    spec, report_only, name = parse_args([str(TINY), "--seeds", "3-5", "--set", "batch_size=64",
                                          "--parallel", "3", "--out", str(tmp_path)])
    assert name == "tiny" and not report_only
    assert spec.envs == ("Pendulum-v1",) and spec.styles == ("direct", "chain-rule")
    assert spec.seeds == (3, 4, 5) and spec.total_steps == 300 and spec.budgets == (100, 200, 300)
    assert spec.overrides["batch_size"] == 64 and spec.overrides["actor_hidden"] == (16, 16)
    assert spec.parallel == 3 and spec.cpus_per_trial == max(1, (os.cpu_count() or 1) // 3)
    assert [t.name for t in trials_of(spec)][0] == "Pendulum-v1__pendulum__direct__seed3"


@pytest.mark.parametrize("path", sorted((ROOT / "experiments").glob("*.toml")), ids=lambda p: p.name)
def test_example_specs_parse(path):
    spec, _, name = parse_args([str(path)])
    assert name == path.stem and spec.out == str(Path("runs") / "experiments" / path.stem)
    assert set(spec.presets) <= set(PRESETS)
    assert spec.budgets[-1] == spec.total_steps
