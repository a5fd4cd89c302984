"""The SB3 comparison benchmark (benchmarks/bench_sb3.py): its FLOP count, and a --quick run."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "benchmarks" / "bench_sb3.py"


def _bench():
    spec = importlib.util.spec_from_file_location("bench_sb3", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the class is built
    spec.loader.exec_module(module)
    return module


def test_update_flops_by_hand():
    bench = _bench()
    # obs 3, action 1, one hidden layer of 4, batch 2.
    # actor 3 -> 4 -> 1: MACs per sample 12 + 4 = 16, forward 2 * 2 * 16 = 64 FLOPs.
    # critic (3 + 1) -> 4 -> 1: MACs 16 + 4 = 20, forward 2 * 2 * 20 = 80 FLOPs.
    assert bench.mlp_macs([3, 4, 1]) == 16
    assert bench.update_flops(3, 1, (4,), (4,), 2) == {
        "target_actor_forward": 64,
        "target_critic_forward": 80,
        "critic_forward": 80,
        # weight gradients of both layers (80) + input gradient of the second layer only (2*2*4*1)
        "critic_backward": 80 + 16,
        "actor_forward": 64,
        "critic_forward_on_policy_actions": 80,
        # no weight gradients: input gradient of layer 2 (16) + the action column of layer 1 (2*2*1*4)
        "critic_backward_to_action": 16 + 16,
        # weight gradients (64) + input gradient of the second layer (2*2*4*1)
        "actor_backward": 64 + 16,
        "total": 576,
    }


def test_update_flops_scale():
    bench = _bench()
    # Large layers: a backward with weight gradients is ~2 forwards, one without ~1, so the
    # total approaches 4 F(actor) + 6 F(critic); and it is linear in the batch size.
    flops = bench.update_flops(17, 6, (400, 300), (400, 300), 256)
    fa = 2 * 256 * bench.mlp_macs([17, 400, 300, 6])
    fc = 2 * 256 * bench.mlp_macs([23, 400, 300, 1])
    assert flops["total"] == pytest.approx(4 * fa + 6 * fc, rel=0.03)
    assert bench.update_flops(17, 6, (400, 300), (400, 300), 512)["total"] == 2 * flops["total"]


def test_quick_benchmark_runs(tmp_path):
    # Checked without importing: SB3 would pull PyTorch (and, through torch.utils.tensorboard,
    # TensorFlow again) into the test process; the benchmark runs both in their own workers.
    for module in ("stable_baselines3", "torch"):
        if importlib.util.find_spec(module) is None:
            pytest.skip(f"{module} is not installed (pip install -e '.[bench]')")
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), "--quick", "--cases", "pendulum-64", "--repeats", "1",
         "--out-dir", str(tmp_path)],
        cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    report = json.loads((tmp_path / "bench_sb3.json").read_text())
    assert report["errors"] == []
    for key in ("date", "machine", "settings", "threads", "peak_matmul", "cases", "memory"):
        assert key in report
    assert report["machine"]["cpu_model"] and report["machine"]["cpus_available"] >= 1
    assert set(report["machine"]["versions"]) >= {"tensorflow", "torch", "stable-baselines3", "gymnasium"}
    assert report["threads"]["sb3"]["intra_op"] >= 1
    assert report["peak_matmul"]["gflops"] > 0

    case = report["cases"]["pendulum-64"]
    assert case["flops_per_update"]["total"] > 0
    for lib in ("ddpg_tf", "sb3"):
        for key in ("env_steps_per_s", "updates_per_s", "ms_per_action"):
            assert case["median"][lib][key] > 0
        assert 0 < case["physical_limit"][lib]["fraction_of_peak"]
        for metric in ("e2e", "update", "act"):
            (run,) = case["raw"][lib][metric]
            assert run["peak_rss_mib"] > 0
            # TensorFlow and PyTorch never share a worker process.
            other = "torch" if lib == "ddpg_tf" else "tensorflow"
            assert not run["modules_loaded"][other]
        (e2e,) = case["raw"][lib]["e2e"]
        assert e2e["env_steps_per_s_including_warmup"] > 0
        assert e2e["window"] == [case["settings"]["window_start"], case["settings"]["total_steps"]]
    for key in ("env_steps_per_s", "updates_per_s", "ms_per_action"):
        assert case["ratio"][key] > 0
    # Identical networks: 3 -> 64 -> 64 -> 1 actor, (3 + 1) -> 64 -> 64 -> 1 critic, in both.
    params = [case["raw"][lib]["update"][0]["parameters"] for lib in ("ddpg_tf", "sb3")]
    assert params[0] == params[1] == {"actor": 4481, "critic": 4545}

    memory = report["memory"]
    assert memory["capacity"] == 1_000_000 and memory["sample_ok"] is True
    assert memory["arrays_mib"] >= memory["transitions_float32_mib"] * 0.5
    assert memory["peak_rss_mib"] >= memory["rss_before_allocation_mib"] + memory["arrays_mib"] * 0.9

    table = (tmp_path / "bench_sb3.md").read_text()
    assert "| case | metric | ddpg-tf | SB3 | ratio |" in table
    assert "end-to-end env steps/s" in table and "Memory:" in table
