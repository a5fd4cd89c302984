"""The report of the SB3 comparison: medians over repeats, ddpg-tf / SB3 ratios, the
physical-limit rows (the JSON's summaries), and the markdown table made from the JSON alone
(``markdown(json.loads(Path("benchmarks/results/bench_sb3.json").read_text()))`` rebuilds
``bench_sb3.md`` byte for byte)."""

from __future__ import annotations

import json
import statistics
from typing import Any

from benchmarks.cases import LIBS, NOISE_SIGMA, OTHER_LOAD_WARNING, PER_CALL, PER_CALL_KEY, VALUE_KEY, Case
from benchmarks.flops import update_flops


# --- summaries ---------------------------------------------------------------------------------
def _median(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


def _ratio(ours: float | None, sb3: float | None, metric: str) -> float | None:
    if not ours or not sb3:
        return None
    return sb3 / ours if metric == "act" else ours / sb3  # always a speed-up of ddpg-tf


def summarize_case(case: Case, plan: dict[str, Any], raw: dict[str, dict[str, list[dict[str, Any]]]],
                   metrics: tuple[str, ...]) -> dict[str, Any]:
    """A case's entry in the report: its settings, FLOPs per update, the raw worker results
    (``raw[lib][metric]``, one per repeat), their medians and the ratios ddpg-tf / SB3."""
    medians = {lib: {VALUE_KEY[m]: _median([x[VALUE_KEY[m]] for x in raw[lib][m] if "error" not in x])
                     for m in metrics} for lib in LIBS}
    for lib in LIBS:
        medians[lib]["peak_rss_mib"] = {m: _median([x["peak_rss_mib"] for x in raw[lib][m]
                                                    if "error" not in x]) for m in metrics}
    per_call = _per_call_updates(raw["ddpg_tf"].get("update", []))
    if per_call is not None:
        medians["ddpg_tf"][PER_CALL_KEY] = per_call
    flops = update_flops(case.obs_dim, case.action_dim, case.hidden, case.hidden, case.batch_size)
    return {
        "label": case.label, "settings": plan, "flops_per_update": flops,
        "raw": raw, "median": medians,
        "ratio": {VALUE_KEY[m]: _ratio(medians["ddpg_tf"][VALUE_KEY[m]], medians["sb3"][VALUE_KEY[m]], m)
                  for m in metrics},
    }


def _per_call_updates(runs: list[dict[str, Any]]) -> float | None:
    """Median updates/s of ddpg-tf's one-call-per-update path over update-only worker
    results that timed it besides the K-updates-in-one-call path (else None)."""
    if any(r.get("timed_call") == PER_CALL for r in runs if "error" not in r):
        return None  # the per-call path is the headline row already
    return _median([r["updates_per_s_by_call"][PER_CALL] for r in runs
                    if "error" not in r and PER_CALL in r.get("updates_per_s_by_call", {})])


def summarize_peak(report: dict[str, Any], n: int) -> None:
    """Add the peak matmul rate (best of the peak workers' runs) to ``report["peak_matmul"]``
    and each case's physical limit: update FLOPs x updates/s against that peak."""
    runs = report["peak_matmul"]["runs"]
    peak_gflops = max((r["gflops_best"] for r in runs), default=None)
    report["peak_matmul"].update(n=n, dtype="float32", op="tf.matmul", gflops=peak_gflops,
                                 gflops_median_of_runs=_median([r["gflops_median"] for r in runs]))
    for entry in report["cases"].values():
        total = entry["flops_per_update"]["total"]
        phys: dict[str, Any] = {"peak_gflops": peak_gflops}
        for lib in LIBS:
            ups = entry["median"][lib]["updates_per_s"]
            gflops = total * ups / 1e9 if ups else None
            phys[lib] = {"gflops": gflops,
                         "fraction_of_peak": gflops / peak_gflops if gflops and peak_gflops else None}
        per_call = entry["median"]["ddpg_tf"].get(PER_CALL_KEY)
        if per_call and peak_gflops:
            phys["ddpg_tf_one_call_per_update"] = {"gflops": total * per_call / 1e9,
                                                   "fraction_of_peak": total * per_call / 1e9 / peak_gflops}
        entry["physical_limit"] = phys


def load_warning(busy: list[tuple[str, float]]) -> str | None:
    """A warning when other processes kept more than :data:`OTHER_LOAD_WARNING` CPUs busy
    during some worker (``busy``: each worker's description and that number)."""
    noisy = [(w, b) for w, b in busy if b > OTHER_LOAD_WARNING]
    if not noisy:
        return None
    worst = max(noisy, key=lambda x: x[1])
    return (f"the machine was not quiet: other processes kept more than {OTHER_LOAD_WARNING} CPUs busy "
            f"during {len(noisy)} of {len(busy)} workers (worst {worst[1]:.2f} CPUs, {worst[0]}); "
            "the numbers are unreliable, SB3's especially (PyTorch's OpenMP threads stall when a "
            "core is taken). Rerun on an idle machine.")


# --- markdown ----------------------------------------------------------------------------------
def _fmt(value: float | None, digits: int = 3) -> str:
    if value is None:
        return "—"
    if abs(value) >= 100:
        return f"{value:,.0f}"
    return f"{value:.{digits}g}"


def _pct(value: float | None) -> str:
    return "—" if value is None else f"{100 * value:.1f}%"


def markdown(report: dict[str, Any]) -> str:
    """The README table: case | metric | ddpg-tf | SB3 | ratio, physical limit and memory."""
    m = report["machine"]
    v = m["versions"]
    peak = report["peak_matmul"]
    lines = [
        f"Measured {report['date'][:10]} on {m['cpu_model']} ({m['cpus_available']} CPUs available, "
        f"{m['memory_gib']} GiB), {m['platform']}; Python {m['python']}, TensorFlow {v['tensorflow']}, "
        f"torch {v['torch']}, Stable-Baselines3 {v['stable-baselines3']}, gymnasium {v['gymnasium']}"
        + (" — QUICK MODE, numbers not meaningful" if report["quick"] else "") + ".",
        "",
        *(f"**Warning**: {w}\n" for w in report["warnings"]),
        f"Both libraries: {_settings_text(report)}. Medians of {report['settings']['repeats']} "
        "interleaved repeats, each in a fresh process; ratio = speed-up of ddpg-tf over SB3 "
        "(> 1: ddpg-tf faster; for ms per action, SB3 ms / ddpg-tf ms).",
        "",
        "ddpg-tf settings beyond the shared ones: "
        + "; ".join(f"{e['label']}: {overrides_text(e['settings']['ddpg_tf_overrides'])}"
                    for e in report["cases"].values()) + ".",
        "",
        "| case | metric | ddpg-tf | SB3 | ratio |",
        "|---|---|---|---|---|",
    ]
    names = {"env_steps_per_s": "end-to-end env steps/s", "updates_per_s": "update-only updates/s",
             "ms_per_action": "ms per action selection",
             "vec_env_steps_per_s": (f"end-to-end env steps/s, {report['settings'].get('num_envs')} "
                                     "envs (extra)")}
    for entry in report["cases"].values():
        first = True
        med, ratio = entry["median"], entry["ratio"]
        for key, name in names.items():
            if key not in ratio:
                continue
            r = ratio[key]
            lines.append(f"| {entry['label'] if first else ''} | {name} | {_fmt(med['ddpg_tf'][key])} | "
                         f"{_fmt(med['sb3'][key])} | {'—' if r is None else f'{r:.2f}×'} |")
            first = False
            per_call = med["ddpg_tf"].get(PER_CALL_KEY)
            if key == "updates_per_s" and per_call and med["sb3"][key]:
                lines.append(f"|  | update-only updates/s, ddpg-tf one call per update, SB3 as above "
                             f"(extra) | {_fmt(per_call)} | {_fmt(med['sb3'][key])} | "
                             f"{per_call / med['sb3'][key]:.2f}× |")
        phys = entry["physical_limit"]
        lines.append(f"|  | update GFLOP/s (share of peak) | {_fmt(phys['ddpg_tf']['gflops'])} "
                     f"({_pct(phys['ddpg_tf']['fraction_of_peak'])}) | {_fmt(phys['sb3']['gflops'])} "
                     f"({_pct(phys['sb3']['fraction_of_peak'])}) | |")
        one_call = phys.get("ddpg_tf_one_call_per_update")
        if one_call:
            lines.append(f"|  | update GFLOP/s, ddpg-tf one call per update (extra) | "
                         f"{_fmt(one_call['gflops'])} ({_pct(one_call['fraction_of_peak'])}) | | |")
        rss = [med[lib]["peak_rss_mib"]["e2e"] for lib in LIBS]
        lines.append(f"|  | peak RSS of the end-to-end worker, MiB | {_fmt(rss[0])} | {_fmt(rss[1])} | |")
    lines += [
        "",
        f"Peak: `tf.matmul` float32 {peak['n']}×{peak['n']}×{peak['n']} reaches "
        f"{_fmt(peak['gflops'])} GFLOP/s on this machine (best of {len(peak['runs'])} worker(s); median "
        f"{_fmt(peak['gflops_median_of_runs'])}); share of peak = update FLOPs x updates/s / peak. "
        "Update FLOPs are the matmul FLOPs of one update "
        "counted from the layer sizes (`update_flops` in `benchmarks/bench_sb3.py`): "
        + ", ".join(f"{e['label']}: {e['flops_per_update']['total'] / 1e6:.1f} MFLOP"
                    for e in report["cases"].values()) + ".",
    ]
    mem = report.get("memory", {})
    if "error" not in mem and mem:
        lines += [
            "",
            f"Memory: a ddpg-tf replay buffer of {mem['capacity']:,} transitions for {mem['env_id']} "
            f"(obs {mem['obs_dim']}, action {mem['action_dim']}), filled: arrays {mem['arrays_mib']} MiB "
            f"(all fields as float32: {mem['transitions_float32_mib']} MiB); worker RSS "
            f"{mem['rss_before_allocation_mib']} MiB before allocating, peak {mem['peak_rss_mib']} MiB; "
            f"overhead beyond the arrays {mem['overhead_beyond_arrays_mib']} MiB "
            "(peak RSS - RSS before allocating - arrays).",
        ]
    if report["errors"]:
        lines += ["", f"**{len(report['errors'])} worker(s) failed**: see `errors` in the JSON."]
    return "\n".join(lines) + "\n"


def overrides_text(overrides: dict[str, Any]) -> str:
    """ddpg-tf settings beyond the shared ones, as markdown."""
    return ", ".join(f"`{k}={json.dumps(v)}`" for k, v in overrides.items()) or "library defaults"


def _settings_text(report: dict[str, Any]) -> str:
    st = report["settings"]
    threads = report["threads"]
    tf_threads = threads.get("ddpg_tf", {}).get("intra_op")
    torch_threads = threads.get("sb3", {}).get("intra_op")
    windows = "; ".join(dict.fromkeys(f"{e['label'].split()[0]} steps {e['settings']['window_start']}-"
                                      f"{e['settings']['total_steps']}" for e in report["cases"].values()))
    return (f"Adam lr {st['learning_rate']:g} (actor and critic), tau {st['tau']:g}, gamma {st['gamma']:g}, "
            f"Gaussian noise sigma {NOISE_SIGMA:g} x half action range, buffer {st['buffer_size']:,}, "
            f"learning_starts {st['learning_starts']:,}, one gradient step per env step, action at the "
            f"critic's input; end-to-end timed over {windows or '-'}; update-only over "
            f"{st['updates']:,} updates on {st['update_fill']:,} stored random transitions; "
            f"threads: TensorFlow intra-op {tf_threads} (0 = one per core), torch {torch_threads}, "
            f"{report['machine']['cpus_available']} CPUs")
