"""Benchmarks of ddpg-tf, run as scripts from a checkout (not part of the installed package).

``bench_sb3.py`` is the comparison with Stable-Baselines3: its command line. The modules it is
built from, each with one job: ``cases`` (what is measured, with which settings), ``runner``
(one process per measurement, interleaved), ``workers_ddpg_tf`` and ``workers_sb3`` (the timed
measurements), ``timing`` (clocks shared by the workers), ``flops`` (FLOPs of an update, peak
matmul rate), ``memory`` (peak memory of a process, a compiled call, a replay buffer) and
``report`` (medians, ratios, the JSON's summary and the markdown table).
``gradient_memory.py`` measures the peak memory of each of ``python -m ddpg_tf.gradcheck``'s
four ways; ``long_run.py`` watches memory and speed over a long training run.
"""
