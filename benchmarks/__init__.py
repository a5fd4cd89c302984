"""Benchmarks of ddpg-tf, run as scripts from a checkout (not part of the installed package).

``bench_sb3.py`` is the comparison with the peers, Stable-Baselines3 and SBX: its command line.
The modules it is built from, each with one job: ``cases`` (the libraries, what is measured,
with which settings), ``runner`` (one process per measurement, interleaved), the timed
measurements in ``workers_ddpg_tf``, ``workers_sb3`` (the peers with SB3's API) and
``workers_sbx`` (SBX's flavour of those), ``timing`` (clocks shared by the workers), ``flops``
(FLOPs of an update, peak matmul rate), ``memory`` (peak memory of a process, a compiled call,
a replay buffer, the bare framework imports) and ``report`` (min / median / max, ratios,
spread, the JSON's summary and the markdown table).
``gradient_memory.py`` measures the peak memory of each of ``python -m ddpg_tf.gradcheck``'s
four ways; ``long_run.py`` watches memory and speed over a long training run.
"""
