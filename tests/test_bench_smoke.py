"""The comparison benchmark (benchmarks/bench_sb3.py and the modules beside it): its report
(N peers, min / median / max, spread flags, memory baselines; rebuilt from a JSON), its command
line and peer selection, the workers (ddpg-tf's; SB3's and SBX's when installed), a --quick
run; and the peak memory of a compiled call (benchmarks/memory.py,
benchmarks/gradient_memory.py)."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "benchmarks" / "bench_sb3.py"
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))  # benchmarks/ is not installed: import it from the checkout

from benchmarks import bench_sb3, runner  # noqa: E402
from benchmarks import flops as bench  # noqa: E402
from benchmarks.cases import CASES, LIBS, PER_CALL, QUICK, TUNED  # noqa: E402
from benchmarks.report import markdown  # noqa: E402


@pytest.mark.slow  # about 70 s: the whole --quick benchmark end to end (the workers are tested below)
def test_quick_benchmark_runs(tmp_path):
    # Checked without importing: SB3 would pull PyTorch (and, through torch.utils.tensorboard,
    # TensorFlow again) into the test process; the benchmark runs both in their own workers.
    for module in ("stable_baselines3", "torch"):
        if importlib.util.find_spec(module) is None:
            pytest.skip(f"{module} is not installed (pip install -e '.[bench]')")
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), "--quick", "--cases", "pendulum-64", "--repeats", "1",
         "--peers", "sb3", "--out-dir", str(tmp_path)],
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
        assert case["ratio"]["sb3"][key] > 0
        assert case["min"]["sb3"][key] == case["median"]["sb3"][key] == case["max"]["sb3"][key]  # 1 run
    assert report["libs"] == ["ddpg_tf", "sb3"]
    bare = report["bare_import"]["ddpg_tf"]
    assert bare["modules"] == ["tensorflow", "keras"] and bare["peak_rss_mib"]["median"] > 50
    assert case["memory"]["ddpg_tf"]["above_bare_import_mib"] == pytest.approx(
        case["median"]["ddpg_tf"]["peak_rss_mib"]["e2e"] - bare["peak_rss_mib"]["median"])
    # Identical networks: 3 -> 64 -> 64 -> 1 actor, (3 + 1) -> 64 -> 64 -> 1 critic, in both.
    params = [case["raw"][lib]["update"][0]["parameters"] for lib in ("ddpg_tf", "sb3")]
    assert params[0] == params[1] == {"actor": 4481, "critic": 4545}

    memory = report["memory"]
    assert memory["capacity"] == 1_000_000 and memory["sample_ok"] is True
    assert memory["arrays_mib"] >= memory["transitions_float32_mib"] * 0.5
    assert memory["peak_rss_mib"] >= memory["rss_before_allocation_mib"] + memory["arrays_mib"] * 0.9

    table = (tmp_path / "bench_sb3.md").read_text()
    assert "| case | metric | ddpg-tf | SB3 | ratio |" in table
    assert "end-to-end env steps/s" in table and "Memory:" in table and "Memory baseline:" in table


def test_markdown_rebuilds_the_committed_table_from_the_json():
    # The report is made from the JSON alone: the committed table is its rendering, byte for byte.
    results = ROOT / "benchmarks" / "results"
    assert markdown(json.loads((results / "bench_sb3.json").read_text())) == (
        results / "bench_sb3.md").read_text()


# --- the peers: worker results made up by hand, the whole runner and report around them ---------
# Per library and metric, the headline value of repeats 1, 2, 3 (seed 1, 2, 3). ddpg-tf's
# end-to-end spread is (120 - 90) / 100 = 30% with another process busy in repeat 2 (0.9 CPUs);
# its 4-env spread (360 - 300) / 330 = 18% on a quiet machine; its other spreads are under 10%.
FAKE_VALUES = {
    "ddpg_tf": {"e2e": (90, 100, 120), "update": (1000, 1010, 1020), "act": (0.1, 0.1, 0.1),
                "e2e_vec": (300, 330, 360), "bare": (700, 702, 704)},
    "sb3": {"e2e": (50, 50, 50), "update": (100, 100, 100), "act": (0.2, 0.2, 0.2),
            "e2e_vec": (100, 100, 100), "bare": (200, 200, 200)},
    "sbx": {"e2e": (20, 25, 30), "update": (500, 500, 500), "act": (0.5, 0.5, 0.5),
            "e2e_vec": (150, 150, 150), "bare": (290, 290, 290)},
}
FAKE_E2E_RSS = {"ddpg_tf": (800, 810, 820), "sb3": (300, 300, 300), "sbx": (500, 500, 500)}


def _fake_spawn(calls):
    """runner.spawn without processes: records each worker kind, returns FAKE_VALUES."""
    def spawn(kind, spec, timeout):
        calls.append(kind)
        lib, _, metric = kind.partition("/")
        out = {"process_wall_s": 1.0, "peak_rss_mib": 700.0, "other_busy_cpus": 0.0}
        if kind == "peak":
            return {**out, "gflops_best": 100.0, "gflops_median": 90.0}
        if kind == "memory":
            return {**out, "capacity": 1000, "obs_dim": 17, "action_dim": 6, "arrays_mib": 0.2,
                    "transitions_float32_mib": 0.2, "rss_before_allocation_mib": 600.0,
                    "overhead_beyond_arrays_mib": 99.8, "sample_ok": True}
        if metric == "bare":
            repeat = sum(k == kind for k in calls) - 1
            return {**out, "peak_rss_mib": float(FAKE_VALUES[lib]["bare"][repeat]),
                    "modules": spec["modules"]}
        r = spec["seed"] - 1
        value = FAKE_VALUES[lib][metric][r]
        out["other_busy_cpus"] = {("ddpg_tf", "e2e", 1): 0.9, ("ddpg_tf", "e2e_vec", 0): 0.05}.get(
            (lib, metric, r), 0.0)
        if metric == "e2e":
            out["peak_rss_mib"] = float(FAKE_E2E_RSS[lib][r])
        key = {"e2e": "env_steps_per_s", "update": "updates_per_s", "act": "ms_per_action",
               "e2e_vec": "vec_env_steps_per_s"}[metric]
        out[key] = value
        if (lib, metric) == ("ddpg_tf", "update"):
            out.update(timed_call="agent.train_on_replay(rounds=K)",
                       updates_per_s_by_call={"agent.train_on_replay(rounds=K)": value, PER_CALL: value / 2})
        if metric != "act":
            out["threads"] = {"intra_op": 0, "torch_intra_op": 2}
        return out
    return spawn


def _fake_run(monkeypatch, tmp_path, missing=(), argv=()):
    """The benchmark's main() over the fake workers, with the modules ``missing`` uninstalled."""
    monkeypatch.setattr(runner.importlib.util, "find_spec",
                        lambda name, *a: None if name in missing else name)
    calls = []
    monkeypatch.setattr(runner, "spawn", _fake_spawn(calls))
    assert bench_sb3.main(["--quick", "--cases", "pendulum-64", "--repeats", "3", "--out-dir",
                           str(tmp_path), *argv]) == 0
    report = json.loads((tmp_path / "bench_sb3.json").read_text())
    return calls, report, (tmp_path / "bench_sb3.md").read_text()


def test_report_of_three_libraries(monkeypatch, tmp_path):
    calls, report, table = _fake_run(monkeypatch, tmp_path)
    assert report["libs"] == ["ddpg_tf", "sb3", "sbx"] and report["skipped_peers"] == {}
    # Bare imports first, one per library and repeat; then per repeat and metric ddpg-tf, SB3, SBX.
    assert calls[:4] == ["ddpg_tf/bare", "sb3/bare", "sbx/bare", "ddpg_tf/bare"]
    assert calls[10:16] == ["ddpg_tf/e2e", "sb3/e2e", "sbx/e2e", "ddpg_tf/update", "sb3/update", "sbx/update"]
    assert len(calls) == 3 * 3 + 1 + 3 * 4 * 3 + 1

    case = report["cases"]["pendulum-64"]
    assert [case[s]["ddpg_tf"]["env_steps_per_s"] for s in ("min", "median", "max")] == [90, 100, 120]
    assert [case[s]["sbx"]["env_steps_per_s"] for s in ("min", "median", "max")] == [20, 25, 30]
    # ddpg-tf / peer of the medians; for ms per action peer / ddpg-tf (both speed-ups of ddpg-tf).
    assert case["ratio"] == {
        "sb3": pytest.approx({"env_steps_per_s": 2.0, "updates_per_s": 10.1, "ms_per_action": 2.0,
                              "vec_env_steps_per_s": 3.3}),
        "sbx": pytest.approx({"env_steps_per_s": 4.0, "updates_per_s": 2.02, "ms_per_action": 5.0,
                              "vec_env_steps_per_s": 2.2})}
    assert case["median"]["ddpg_tf"]["updates_per_s_one_call_per_update"] == 505
    assert case["spread"]["ddpg_tf"]["env_steps_per_s"] == pytest.approx(0.3)
    assert case["spread"]["sbx"]["env_steps_per_s"] == pytest.approx(0.4)  # reported, never flagged
    flags = {f["value"]: f for f in case["spread_flags"]}
    assert set(flags) == {"env_steps_per_s", "vec_env_steps_per_s"}
    assert flags["env_steps_per_s"]["other_busy_cpus"] == [0.0, 0.9, 0.0]
    assert flags["env_steps_per_s"]["load_likely_cause"] is True
    assert flags["vec_env_steps_per_s"]["load_likely_cause"] is False
    # Memory: the end-to-end peak RSS (median) above the bare-import peak (median).
    assert report["bare_import"]["sbx"]["modules"] == ["jax", "torch"]
    assert report["bare_import"]["ddpg_tf"]["peak_rss_mib"] == {"min": 700, "median": 702, "max": 704}
    assert {lib: case["memory"][lib]["above_bare_import_mib"] for lib in LIBS} == {
        "ddpg_tf": 108, "sb3": 100, "sbx": 210}

    assert "| case | metric | ddpg-tf | SB3 | ratio vs SB3 | SBX | ratio vs SBX |" in table
    assert "|---|---|---|---|---|---|---|" in table
    for row in (
        "| Pendulum-v1 64-64 B64 | end-to-end env steps/s | 100 (90–120) † | 50 (50–50) | 2.00× "
        "| 25 (20–30) | 4.00× |",
        "|  | update-only updates/s, ddpg-tf one call per update, SB3 and SBX as above (extra) "
        "| 505 (500–510) | 100 (100–100) | 5.05× | 500 (500–500) | 1.01× |",
        "|  | ms per action selection | 0.1 (0.1–0.1) | 0.2 (0.2–0.2) | 2.00× | 0.5 (0.5–0.5) | 5.00× |",
        "|  | peak RSS of the end-to-end worker, MiB | 810 (800–820) | 300 (300–300) |  | 500 (500–500) | |",
        "|  | peak RSS of the end-to-end worker above its bare framework import, MiB "
        "| 108 | 100 |  | 210 | |",
        "* Pendulum-v1 64-64 B64, end-to-end env steps/s: 30.0% (90–120); other processes kept up to "
        "0.90 CPUs busy during those runs (above 0.3): the likely cause.",
        "* Pendulum-v1 64-64 B64, end-to-end env steps/s, 4 envs (extra): 18.2% (300–360); other "
        "processes kept at most "
        "0.05 CPUs busy during those runs: the machine was quiet, so the spread is the measurement's own.",
    ):
        assert row + "\n" in table, row
    assert ("ddpg-tf (`import tensorflow, keras`) 702 (700–704) MiB; SB3 (`import torch`) 200 (200–200) "
            "MiB; SBX (`import jax, torch`) 290 (290–290) MiB") in table
    assert "All libraries:" in table and "Median (min–max) of 3 interleaved repeats" in table
    assert markdown(report) == table  # the JSON alone rebuilds it


def test_a_peer_not_installed_is_skipped(monkeypatch, tmp_path, capsys):
    calls, report, table = _fake_run(monkeypatch, tmp_path, missing={"sbx"})
    assert not [c for c in calls if c.startswith("sbx/")]
    assert report["libs"] == ["ddpg_tf", "sb3"] and set(report["cases"]["pendulum-64"]["ratio"]) == {"sb3"}
    assert "pip install -e '.[sbx]'" in report["skipped_peers"]["sbx"]
    assert "| case | metric | ddpg-tf | SB3 | ratio |" in table and "Both libraries:" in table
    assert "Peers not run: SBX: not installed (sbx missing; pip install -e '.[sbx]')." in table
    # Named in --peers, a missing peer is an error; '' runs ddpg-tf alone.
    with pytest.raises(SystemExit):
        bench_sb3.parse_args(["--peers", "sbx"])
    assert "--peers sbx: SBX is not installed" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        bench_sb3.parse_args(["--peers", "sb3,torch"])
    assert "unknown peer(s) torch" in capsys.readouterr().err
    args = bench_sb3.parse_args(["--peers", ""])
    assert args.peers == [] and args.skipped_peers == {}


def test_workers_block_the_other_frameworks():
    # ddpg-tf's workers cannot import JAX (tensorflow.lite would load it, idle, where installed),
    # the peers' cannot import TensorFlow: a bare-import worker asking for it fails at once.
    for kind, module in (("ddpg_tf/bare", "jax"), ("sb3/bare", "tensorflow"), ("sbx/bare", "tensorflow")):
        result = runner.spawn(kind, {"modules": [module]}, timeout=60)
        assert f"import of {module} halted; None in sys.modules" in result.get("error", ""), (kind, result)
    result = runner.spawn("sbx/bare", {"modules": ["json"]}, timeout=60)
    assert result["modules"] == ["json"] and result["peak_rss_mib"] > 0
    assert not any(result["modules_loaded"].values())


def test_sbx_update_worker():
    # SBX's DDPG with the shared settings (same networks as ddpg-tf and SB3), K updates in one
    # compiled train(gradient_steps=K), in its own process without TensorFlow.
    for module in ("sbx", "jax"):
        if importlib.util.find_spec(module) is None:
            pytest.skip(f"{module} is not installed (pip install -e '.[sbx]')")
    args = bench_sb3.parse_args(["--quick", "--peers", "sbx"])
    plan = {**runner.plan(args, dict(QUICK), CASES["pendulum-64"]), "seed": 1}
    result = runner.spawn("sbx/update", plan, timeout=300)
    assert "error" not in result, result.get("error")
    assert result["parameters"] == {"actor": 4481, "critic": 4545}
    assert result["updates"] == 30 and result["updates_per_s"] > 0 and result["first_call_with_k_seconds"] > 0
    assert result["timed_call"] == "model.train(gradient_steps=K, batch_size=B)"
    assert result["modules_loaded"] == {"tensorflow": False, "torch": True, "jax": True}


def test_command_line_settings(capsys):
    args = bench_sb3.parse_args(["--tuned", "--ddpg-tf-set", "halfcheetah-256:batch_chunks=4",
                                 "--ddpg-tf-set", "jit-compile=true", "--ddpg-tf-set", "noise=ou"])
    assert args.cases == list(CASES) and args.num_envs == 4 and not args.quick
    assert set(args.ddpg_tf_set) == {*TUNED, "*"}
    assert args.ddpg_tf_set["halfcheetah-256"] == {**TUNED["halfcheetah-256"], "batch_chunks": 4}
    assert args.ddpg_tf_set["pendulum-256"] == TUNED["pendulum-256"]
    assert args.ddpg_tf_set["*"] == {"jit_compile": True, "noise": "ou"}  # JSON, else a string
    settings = dict(QUICK)
    plan = runner.plan(args, settings, CASES["halfcheetah-256"])
    # A case's own settings (here --tuned's jit_compile=false) win over those for every case.
    assert plan["ddpg_tf_overrides"] == {"jit_compile": False, "noise": "ou", "batch_chunks": 4,
                                         "intra_op_threads": 1, "inter_op_threads": 2}
    # learning_starts 64 -> 256 (a batch); first episode end 1000; + 20 warm-up steps, on the
    # log grid of 20: the window is steps 1020-1080 (60 timed steps).
    assert (plan["learning_starts"], plan["window_start"], plan["total_steps"]) == (256, 1020, 1080)
    assert plan["first_log_after_learning_starts"] == 260
    for argv, message in ((["--num-envs", "3"], "must divide the log interval 500"),
                          (["--cases", "pendulum-64,nope"], "unknown case(s) nope"),
                          (["--ddpg-tf-set", "nope:x=1"], "unknown case 'nope'")):
        with pytest.raises(SystemExit) as exc:
            bench_sb3.parse_args(argv)
        assert exc.value.code == 2, argv
        assert message in capsys.readouterr().err, argv


def test_ddpg_tf_workers_run_in_their_own_processes():
    # The ddpg-tf measurements of a --quick run, each in a worker process as the benchmark spawns
    # it (the SB3 ones need the bench extra: test_quick_benchmark_runs).
    args = bench_sb3.parse_args(["--quick"])
    plan = {**runner.plan(args, dict(QUICK), CASES["pendulum-64"]), "seed": 1}
    results = {kind: runner.spawn(kind, plan, timeout=300)
               for kind in ("ddpg_tf/e2e", "ddpg_tf/update", "ddpg_tf/act")}
    for kind, result in results.items():
        assert "error" not in result, (kind, result.get("error"))
        assert result["peak_rss_mib"] > 50, kind  # TensorFlow alone is more
        assert result["modules_loaded"]["torch"] is False, kind
        assert result["os_threads_at_end"] >= 1, kind
    e2e, update, act = results["ddpg_tf/e2e"], results["ddpg_tf/update"], results["ddpg_tf/act"]
    assert e2e["window"] == [plan["window_start"], plan["total_steps"]] and e2e["env_steps_per_s"] > 0
    assert e2e["timed_call"] == "ddpg_tf.training.train(config, on_log=...)"
    assert update["timed_call"] == "agent.train_on_replay(rounds=K)" and update["updates"] == 30
    assert set(update["updates_per_s_by_call"]) == {"agent.train_on_replay(rounds=K)", PER_CALL,
                                                    "agent.train_step(buffer.sample(B))"}
    assert update["parameters"] == {"actor": 4481, "critic": 4545}
    assert act["timed_call"] == "agent.act(obs, explore=True)" and act["ms_per_action"] > 0


def test_peak_matmul_and_buffer_memory_workers():
    # The machine's measurements, run here rather than in worker processes (no timing asserted).
    from benchmarks.memory import worker_buffer

    peak = bench.worker_peak({"n": 64, "reps": 2})
    assert peak["gflops_best"] == max(peak["gflops_runs"]) > 0 and len(peak["gflops_runs"]) == 2
    memory = worker_buffer({"capacity": 5000, "obs_dim": 17, "action_dim": 6})
    assert memory["capacity"] == 5000 and memory["sample_ok"] is True
    assert memory["fill_method"] == "add_batch"  # the public, vectorised way
    assert memory["transitions_float32_mib"] == round(5000 * (2 * 17 + 6 + 3) * 4 / 2**20, 1)
    assert memory["arrays_mib"] >= memory["transitions_float32_mib"] * 0.5


def test_peak_memory_of_a_compiled_call_sees_its_tensor():
    from benchmarks.memory import PeakMemory
    from ddpg_tf._quiet import tf

    @tf.function(input_signature=[tf.TensorSpec((2,), tf.int32)])
    def big(seed):  # a 4096 x 4096 float32 tensor: 64 MiB while the call runs
        return tf.reduce_sum(tf.random.stateless_normal((4096, 4096), seed=seed))

    seed = tf.constant([1, 2])
    big(seed)  # trace
    memory = PeakMemory()
    memory.start()
    big(seed).numpy()
    peak = memory.stop()
    if memory.method in ("tf-allocator", "clear_refs"):
        assert 63 < peak < 3 * 64, (memory.method, peak)
    else:
        assert peak is None or peak >= 0.0, (memory.method, peak)


def test_gradient_memory_of_each_way():
    from benchmarks.gradient_memory import format_rows, peak_memory_rows

    settings = dict(obs_dim=3, action_dim=2, actor_hidden=(16, 16), critic_hidden=(16, 16), batch_size=8,
                    dtypes=("float32", "float64"), seed=3, repeats=2)
    rows, method = peak_memory_rows(settings)
    assert [(r["dtype"], r["way"]) for r in rows] == [
        (d, w) for d in ("float32", "float64") for w in ("direct", "chain-rule", "jacobian", "surrogate")]
    for r in rows:
        what = f"{r['way']} {r['dtype']}"
        assert r["ok"] and r["ms_per_call"] > 0.0, what
        assert r["peak_mib"] is None or r["peak_mib"] >= 0.0, what
    table = format_rows(rows, method, 2)
    assert len([line for line in table.splitlines() if line.startswith(("direct", "jacobian"))]) == 4
