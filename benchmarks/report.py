"""The report of the comparison with the peers: min / median / max over repeats, ddpg-tf / peer
ratios, run-to-run spread, the physical-limit and memory rows (the JSON's summaries), and the
markdown table made from the JSON alone (``markdown(json.loads(Path("benchmarks/results/
bench_sb3.json").read_text()))`` rebuilds ``bench_sb3.md`` byte for byte, also from a JSON of
the earlier schema with SB3 alone and medians only)."""

from __future__ import annotations

import json
import statistics
from typing import Any

from benchmarks.cases import (CASES, LIB_LABEL, LIBRARIES, NOISE_SIGMA, OTHER_LOAD_WARNING, PER_CALL,
                              PER_CALL_KEY, SPREAD_FLAG, VALUE_KEY, Case)
from ddpg_tf.speed import update_flops


# --- summaries ---------------------------------------------------------------------------------
def _median(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


def _ratio(ours: float | None, peer: float | None, metric: str) -> float | None:
    if not ours or not peer:
        return None
    return peer / ours if metric == "act" else ours / peer  # always a speed-up of ddpg-tf


def _spread(values: list[float]) -> float | None:
    """Run-to-run spread: (max - min) / median."""
    median = _median(values)
    return (max(values) - min(values)) / median if median else None


METRIC_OF = {key: metric for metric, key in VALUE_KEY.items()}
"""The metric whose headline value each key is (``ms_per_action`` -> ``act``)."""


def summarize_case(case: Case, plan: dict[str, Any], raw: dict[str, dict[str, list[dict[str, Any]]]],
                   metrics: tuple[str, ...]) -> dict[str, Any]:
    """A case's entry in the report: its settings, FLOPs per update, the raw worker results
    (``raw[lib][metric]``, one per repeat, ddpg-tf first), their min / median / max (each of
    the shape ``[lib][value key]``, peak RSS as ``[lib]["peak_rss_mib"][metric]``), the ratios
    ddpg-tf / peer (``[peer][value key]``), each library's run-to-run spread and ddpg-tf's
    flagged spreads with the other-process load during those runs."""
    ok = {lib: {m: [x for x in raw[lib][m] if "error" not in x] for m in metrics} for lib in raw}
    keys = [VALUE_KEY[m] for m in metrics]
    stats: dict[str, dict[str, dict[str, Any]]] = {"min": {}, "median": {}, "max": {}}
    spread: dict[str, dict[str, float | None]] = {}
    for lib, runs in ok.items():
        values = {VALUE_KEY[m]: [x[VALUE_KEY[m]] for x in runs[m]] for m in metrics}
        per_call = _per_call_updates(runs.get("update", [])) if lib == "ddpg_tf" else None
        if per_call is not None:
            values[PER_CALL_KEY] = per_call
        rss = {m: [x["peak_rss_mib"] for x in runs[m]] for m in metrics}
        for name, fn in (("min", min), ("median", statistics.median), ("max", max)):
            stats[name][lib] = {k: fn(v) if v else None for k, v in values.items()}
            stats[name][lib]["peak_rss_mib"] = {m: fn(v) if v else None for m, v in rss.items()}
        spread[lib] = {key: _spread(values[key]) for key in keys}
    medians = stats["median"]
    flops = update_flops(case.obs_dim, case.action_dim, case.hidden, case.hidden, case.batch_size)
    return {
        "label": case.label, "settings": plan, "flops_per_update": flops,
        "raw": raw, **stats,
        "ratio": {peer: {key: _ratio(medians["ddpg_tf"][key], medians[peer][key], METRIC_OF[key])
                         for key in keys} for peer in raw if peer != "ddpg_tf"},
        "spread": spread,
        "spread_flags": [_spread_flag(key, s, ok["ddpg_tf"][METRIC_OF[key]])
                         for key, s in spread["ddpg_tf"].items() if s is not None and s > SPREAD_FLAG],
    }


def _spread_flag(key: str, spread: float, runs: list[dict[str, Any]]) -> dict[str, Any]:
    """A flagged spread of ddpg-tf's ``key`` and how busy other processes kept the machine
    during those runs: above :data:`OTHER_LOAD_WARNING` CPUs in one of them, the likely cause."""
    load = [r["other_busy_cpus"] for r in runs if "other_busy_cpus" in r]
    busiest = max(load, default=None)
    return {"value": key, "spread": spread, "other_busy_cpus": load, "other_busy_cpus_max": busiest,
            "load_likely_cause": busiest is not None and busiest > OTHER_LOAD_WARNING}


def _per_call_updates(runs: list[dict[str, Any]]) -> list[float] | None:
    """Updates/s of ddpg-tf's one-call-per-update path in the update-only worker results that
    timed it besides the K-updates-in-one-call path (else None)."""
    if any(r.get("timed_call") == PER_CALL for r in runs):
        return None  # the per-call path is the headline row already
    values = [r["updates_per_s_by_call"][PER_CALL] for r in runs
              if PER_CALL in r.get("updates_per_s_by_call", {})]
    return values or None


def summarize_bare(raw: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    """Each library's bare-import workers (one per repeat): the modules and their peak RSS."""
    summary = {}
    for lib, runs in raw.items():
        rss = [r["peak_rss_mib"] for r in runs if "error" not in r]
        summary[lib] = {"modules": list(LIBRARIES[lib].bare_imports), "raw": runs,
                        "peak_rss_mib": {"min": min(rss, default=None), "median": _median(rss),
                                         "max": max(rss, default=None)}}
    return summary


def summarize_memory(report: dict[str, Any]) -> None:
    """Each case's ``memory``: per library, the end-to-end worker's median peak RSS and how far
    above its bare framework import it is; and ddpg-tf's replay buffer size (float32, resident
    from the start), a part of its peak."""
    bare = report.get("bare_import", {})
    capacity = report["settings"]["buffer_size"]
    for name, entry in report["cases"].items():
        case = CASES[name]
        width = 2 * case.obs_dim + case.action_dim + 3  # obs, action, reward, next obs, two flags
        memory: dict[str, Any] = {"ddpg_tf_replay_buffer_mib": capacity * width * 4 / 2**20}
        for lib, medians in entry["median"].items():
            peak = medians["peak_rss_mib"].get("e2e")
            base = bare.get(lib, {}).get("peak_rss_mib", {}).get("median")
            memory[lib] = {"peak_rss_mib": peak,
                           "above_bare_import_mib": peak - base if peak is not None and base else None}
        entry["memory"] = memory


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
        for lib in entry["median"]:
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


def _row(cells: list[str]) -> str:
    """A table row; empty cells at its end are written as bare pipes (``| |``)."""
    filled = len(cells)
    while filled and not cells[filled - 1]:
        filled -= 1
    return "| " + " | ".join(cells[:filled]) + " |" + " |" * (len(cells) - filled)


def _by_lib(libs: list[str], text: Any) -> list[str]:
    """Cells of a row without ratios: ``text(lib)`` for ddpg-tf, then per peer its text and an
    empty ratio cell."""
    return [cell for lib in libs for cell in ([text(lib)] if lib == "ddpg_tf" else [text(lib), ""])]


def _cell(entry: dict[str, Any], lib: str, key: str, metric: str | None = None) -> str:
    """A library's value in a case: the median, then (min–max) where the entry has them, then †
    where ddpg-tf's spread is flagged. ``metric`` picks a peak RSS (``[lib]["peak_rss_mib"]``)."""
    def pick(stat: str) -> float | None:
        value = entry[stat][lib].get(key)
        return value.get(metric) if metric else value

    text = _fmt(pick("median"))
    if "min" in entry and pick("median") is not None:
        text += f" ({_fmt(pick('min'))}–{_fmt(pick('max'))})"
    if lib == "ddpg_tf" and not metric and any(f["value"] == key for f in entry.get("spread_flags", [])):
        text += " †"
    return text


def markdown(report: dict[str, Any]) -> str:
    """The README table: case | metric | ddpg-tf | then per peer its value and the ratio, the
    physical limit and memory rows; then the peak, the memory baselines, ddpg-tf's run-to-run
    spread and the peers not run. A report of one peer without min / max (schema 1, SB3 only)
    renders as it always did."""
    libs = report.get("libs", ["ddpg_tf", "sb3"])
    peers = libs[1:]
    labels = [LIB_LABEL[p] for p in peers]
    m = report["machine"]
    v = m["versions"]
    peak = report["peak_matmul"]
    cases = list(report["cases"].values())
    ranged = any("min" in e for e in cases)
    versions = "".join(f", {name} {v.get(dist)}" for lib in libs for dist, name in LIBRARIES[lib].versions)
    who, their = (labels[0], labels[0]) if len(peers) == 1 else ("the peer of its column group", "peer")
    lines = [
        f"Measured {report['date'][:10]} on {m['cpu_model']} ({m['cpus_available']} CPUs available, "
        f"{m['memory_gib']} GiB), {m['platform']}; Python {m['python']}{versions}, gymnasium {v['gymnasium']}"
        + (" — QUICK MODE, numbers not meaningful" if report["quick"] else "") + ".",
        "",
        *(f"**Warning**: {w}\n" for w in report["warnings"]),
        f"{'Both' if len(libs) == 2 else 'All'} libraries: {_settings_text(report, libs)}. "
        + ("Median (min–max)" if ranged else "Medians") + f" of {report['settings']['repeats']} "
        "interleaved repeats, each in a fresh process"
        + (f"; ratio = speed-up of ddpg-tf over {who} (> 1: ddpg-tf faster; for ms per action, "
           f"{their} ms / ddpg-tf ms)" if peers else "")
        + (f"; † ddpg-tf's run-to-run spread (max − min) / median is above {SPREAD_FLAG:.0%} "
           "(see below)" if ranged else "") + ".",
        "",
        "ddpg-tf settings beyond the shared ones: "
        + "; ".join(f"{e['label']}: {overrides_text(e['settings']['ddpg_tf_overrides'])}"
                    for e in cases) + ".",
        "",
        _row(["case", "metric", "ddpg-tf", *(x for label in labels for x in (
            label, "ratio" if len(peers) == 1 else f"ratio vs {label}"))]),
        "|---" * (3 + 2 * len(peers)) + "|",
    ]
    names = _value_names(report)
    for entry in cases:
        lines += _case_rows(entry, peers, names)
    lines += [
        "",
        f"Peak: `tf.matmul` float32 {peak['n']}×{peak['n']}×{peak['n']} reaches "
        f"{_fmt(peak['gflops'])} GFLOP/s on this machine (best of {len(peak['runs'])} worker(s); median "
        f"{_fmt(peak['gflops_median_of_runs'])}); share of peak = update FLOPs x updates/s / peak. "
        "Update FLOPs are the matmul FLOPs of one update "
        "counted from the layer sizes (`update_flops` in `benchmarks/bench_sb3.py`): "
        + ", ".join(f"{e['label']}: {e['flops_per_update']['total'] / 1e6:.1f} MFLOP"
                    for e in cases) + ".",
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
    if report.get("bare_import"):
        lines += ["", _bare_text(report)]
    if ranged:
        lines += ["", *_spread_lines(cases, names)]
    if report.get("skipped_peers"):
        lines += ["", "Peers not run: " + "; ".join(f"{LIB_LABEL[p]}: {why}"
                                                     for p, why in report["skipped_peers"].items()) + "."]
    if report["errors"]:
        lines += ["", f"**{len(report['errors'])} worker(s) failed**: see `errors` in the JSON."]
    return "\n".join(lines) + "\n"


def _value_names(report: dict[str, Any]) -> dict[str, str]:
    """Each headline value's name in the table, in row order."""
    return {"env_steps_per_s": "end-to-end env steps/s", "updates_per_s": "update-only updates/s",
            "ms_per_action": "ms per action selection",
            "vec_env_steps_per_s": (f"end-to-end env steps/s, {report['settings'].get('num_envs')} "
                                    "envs (extra)")}


def _case_rows(entry: dict[str, Any], peers: list[str], names: dict[str, str]) -> list[str]:
    """A case's rows: each measurement (ddpg-tf, then per peer its value and ratio), the GFLOP/s
    reached, the end-to-end worker's peak RSS and, with a bare-import baseline, how far above it."""
    rows: list[str] = []
    med = entry["median"]
    libs = ["ddpg_tf", *peers]
    for key, name in names.items():
        if key not in med["ddpg_tf"]:
            continue
        ratios = [_ratio(med["ddpg_tf"][key], med[p][key], METRIC_OF[key]) for p in peers]
        rows.append(_row([entry["label"] if not rows else "", name, _cell(entry, "ddpg_tf", key),
                          *(x for p, r in zip(peers, ratios, strict=True)
                            for x in (_cell(entry, p, key), "—" if r is None else f"{r:.2f}×"))]))
        per_call = med["ddpg_tf"].get(PER_CALL_KEY)
        if key == "updates_per_s" and per_call and any(med[p][key] for p in peers):
            rows.append(_row(["", f"update-only updates/s, ddpg-tf one call per update, "
                                  f"{' and '.join(LIB_LABEL[p] for p in peers)} as above (extra)",
                              _cell(entry, "ddpg_tf", PER_CALL_KEY),
                              *(x for p in peers for x in (
                                  _cell(entry, p, key),
                                  f"{per_call / med[p][key]:.2f}×" if med[p][key] else "—"))]))
    phys = entry["physical_limit"]
    rows.append(_row(["", "update GFLOP/s (share of peak)", *_by_lib(
        libs, lambda lib: f"{_fmt(phys[lib]['gflops'])} ({_pct(phys[lib]['fraction_of_peak'])})")]))
    one_call = phys.get("ddpg_tf_one_call_per_update")
    if one_call:
        rows.append(_row(["", "update GFLOP/s, ddpg-tf one call per update (extra)",
                          f"{_fmt(one_call['gflops'])} ({_pct(one_call['fraction_of_peak'])})",
                          *[""] * (2 * len(peers))]))
    rows.append(_row(["", "peak RSS of the end-to-end worker, MiB",
                      *_by_lib(libs, lambda lib: _cell(entry, lib, "peak_rss_mib", "e2e"))]))
    memory = entry.get("memory", {})
    if any(memory.get(lib, {}).get("above_bare_import_mib") is not None for lib in libs):
        rows.append(_row(["", "peak RSS of the end-to-end worker above its bare framework import, MiB",
                          *_by_lib(libs, lambda lib: _fmt(memory[lib]["above_bare_import_mib"]))]))
    return rows


def _bare_text(report: dict[str, Any]) -> str:
    """The memory baselines: what each library's bare-import worker imported and its peak RSS."""
    bare = report["bare_import"]
    parts = [f"{LIB_LABEL[lib]} (`import {', '.join(b['modules'])}`) {_fmt(b['peak_rss_mib']['median'])} "
             f"({_fmt(b['peak_rss_mib']['min'])}–{_fmt(b['peak_rss_mib']['max'])}) MiB"
             for lib, b in bare.items()]
    buffers = "; ".join(dict.fromkeys(
        f"{e['label'].split()[0]} {e['memory']['ddpg_tf_replay_buffer_mib']:.0f} MiB"
        for e in report["cases"].values() if "memory" in e))
    return ("Memory baseline: the peak RSS of a worker that only imports its library's frameworks "
            f"(median (min–max) of {report['settings']['repeats']}): " + "; ".join(parts) + ". "
            "The row 'above its bare framework import' is the end-to-end worker's median peak RSS "
            "minus that median. ddpg-tf's includes its replay buffer of "
            f"{report['settings']['buffer_size']:,} transitions, allocated and resident from the start "
            f"({buffers or '-'} as float32); the peers' NumPy buffers take memory only as they fill.")


def _spread_lines(cases: list[dict[str, Any]], names: dict[str, str]) -> list[str]:
    """ddpg-tf's run-to-run spread: each flagged measurement with the other-process load during
    its runs (the likely cause, or a quiet machine), else the largest spread."""
    flags = [(e, f) for e in cases for f in e.get("spread_flags", [])]
    spreads = [(s, e["label"], key) for e in cases
               for key, s in e.get("spread", {}).get("ddpg_tf", {}).items() if s is not None]
    if not flags:
        worst = max(spreads, default=None)
        return [f"Run-to-run spread of ddpg-tf, (max − min) / median over the repeats: at most "
                f"{SPREAD_FLAG:.0%} in every measurement"
                + (f" (largest {worst[0]:.1%}: {worst[1]}, {names[worst[2]]})." if worst else ".")]
    lines = [f"† Run-to-run spread of ddpg-tf, (max − min) / median over the repeats, above "
             f"{SPREAD_FLAG:.0%} in {len(flags)} of {len(spreads)} measurements:", ""]
    for entry, flag in flags:
        load = flag["other_busy_cpus_max"]
        if load is None:
            cause = "other-process load not recorded"
        elif flag["load_likely_cause"]:
            cause = (f"other processes kept up to {load:.2f} CPUs busy during those runs "
                     f"(above {OTHER_LOAD_WARNING}): the likely cause")
        else:
            cause = (f"other processes kept at most {load:.2f} CPUs busy during those runs: the machine "
                     "was quiet, so the spread is the measurement's own")
        lines.append(f"* {entry['label']}, {names[flag['value']]}: {flag['spread']:.1%} "
                     f"({_fmt(entry['min']['ddpg_tf'][flag['value']])}–"
                     f"{_fmt(entry['max']['ddpg_tf'][flag['value']])}); {cause}.")
    return lines


def overrides_text(overrides: dict[str, Any]) -> str:
    """ddpg-tf settings beyond the shared ones, as markdown."""
    return ", ".join(f"`{k}={json.dumps(v)}`" for k, v in overrides.items()) or "library defaults"


_THREADS_TEXT = {
    "ddpg_tf": lambda t: f"TensorFlow intra-op {t.get('intra_op')} (0 = one per core)",
    "sb3": lambda t: f"torch {t.get('intra_op')}",
    "sbx": lambda t: f"SBX XLA's own pool (one per core) and torch {t.get('torch_intra_op')}",
}
"""Each library's thread pools, from the ``threads`` its workers recorded."""


def _settings_text(report: dict[str, Any], libs: list[str]) -> str:
    st = report["settings"]
    threads = ", ".join(_THREADS_TEXT[lib](report["threads"].get(lib, {})) for lib in libs)
    windows = "; ".join(dict.fromkeys(f"{e['label'].split()[0]} steps {e['settings']['window_start']}-"
                                      f"{e['settings']['total_steps']}" for e in report["cases"].values()))
    return (f"Adam lr {st['learning_rate']:g} (actor and critic), tau {st['tau']:g}, gamma {st['gamma']:g}, "
            f"Gaussian noise sigma {NOISE_SIGMA:g} x half action range, buffer {st['buffer_size']:,}, "
            f"learning_starts {st['learning_starts']:,}, one gradient step per env step, action at the "
            f"critic's input; end-to-end timed over {windows or '-'}; update-only over "
            f"{st['updates']:,} updates on {st['update_fill']:,} stored random transitions; "
            f"threads: {threads}, {report['machine']['cpus_available']} CPUs")
