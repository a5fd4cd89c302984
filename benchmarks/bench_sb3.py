"""ddpg-tf against Stable-Baselines3 DDPG: speed, FLOP efficiency and memory in one invocation.

    python benchmarks/bench_sb3.py [--tuned] [--repeats 3] [--cases pendulum-64,halfcheetah-256]
                                   [--num-envs 4] [--out-dir benchmarks/results] [--quick]

Needs the ``bench`` extra (``pip install -e ".[bench]"``: PyTorch and Stable-Baselines3).

What is measured, per case (environment, hidden sizes, batch), for both libraries:

(a) **end-to-end**: environment steps per second of the full training loop once learning has
    started (one environment step, one action selection with exploration noise, one replay
    sample and one gradient step per step). ddpg-tf runs :func:`ddpg_tf.training.train` and is
    timed through its ``on_log`` hook; SB3 runs ``DDPG.learn`` and is timed by a callback. Both
    time the same step numbers: the window opens ``--warmup-steps`` after the first episode end
    following ``learning_starts`` (by then ddpg-tf has traced every variant of its compiled
    step, so one-off tracing is excluded) and closes ``--e2e-steps`` later. The JSON also holds
    the rate from ``learning_starts`` on, tracing included (``env_steps_per_s_including_warmup``).
(b) **update-only**: updates per second of K consecutive gradient steps on a buffer filled
    with random transitions, each including its replay sample, after a warm-up, in one call
    for both libraries. SB3: ``model.train(gradient_steps=K, batch_size=B)``. ddpg-tf:
    ``agent.train_on_replay(rounds=K)`` after ``agent.bind_replay`` (K rounds of in-graph
    sampling and updating in one compiled call). The JSON (``updates_per_s_by_call``) also
    holds the rate of the per-step call ddpg-tf's training loop makes, ``train_on_replay()``
    in a Python loop, and of ``agent.train_step(buffer.sample(B))`` (a host batch per update).
(c) **action selection**: milliseconds per exploratory action, timing the call each library's
    own training loop makes: ddpg-tf ``agent.act(obs, explore=True)`` (actor, Gaussian noise,
    clip), SB3 ``model._sample_action(learning_starts, action_noise)`` (``predict``, scale to
    [-1, 1], Gaussian noise, clip, unscale).

Identical settings in both libraries: hidden sizes for actor and critic (the action enters the
critic at its input, as in SB3: ``critic_action_layer=0``), batch size, Adam with learning rate
1e-3 for actor and critic, tau 0.005, gamma 0.99, buffer size, ``learning_starts``, one
gradient step per environment step, no weight decay, no gradient clipping, and Gaussian
exploration noise with sigma 0.1. SB3 adds ``NormalActionNoise(0, 0.1)`` to the action rescaled
to [-1, 1] and clips there; ddpg-tf's ``noise_sigma`` is a fraction of the half action range
(high - low) / 2 and it clips to [low, high]. Both are N(0, (0.1 (high - low) / 2)^2) in
environment units followed by a clip to the bounds, i.e. the same exploration.

Every measurement runs in a fresh worker process (this script with ``--worker``), so
TensorFlow and PyTorch never share a process and each library starts with its default thread
settings (recorded in the JSON). SB3 workers block ``import tensorflow`` (``torch.utils.
tensorboard`` would otherwise import it as an idle passenger). Runs are interleaved: for each
case and repeat, every measurement runs for ddpg-tf and then for SB3 (A B A B); the report
gives medians over repeats and the ratio ddpg-tf / SB3 of the rates (> 1: ddpg-tf faster; for
milliseconds per action the ratio is SB3 ms / ddpg-tf ms, also a speed-up).

The physical-limit rows divide the matmul FLOPs of one update (:func:`update_flops`, counted
from the layer sizes) by the measured update time and compare with the peak float32 matmul
rate of this machine, measured in the same invocation (``tf.matmul`` of two 2048 x 2048
matrices, best of several; one such worker runs before each case). The memory row fills a
1e6-transition ddpg-tf ``ReplayBuffer`` for HalfCheetah-v5 and reports the worker's peak RSS
against the size of the buffer's arrays.

Run it on an idle machine: every worker records how many CPUs *other* processes kept busy
meanwhile, and the report warns when that exceeded 0.3. (On 2 cores, PyTorch's OpenMP threads
stall badly when another process holds a core: SB3 updates then run tens of times slower.)
``--threads N`` sets both libraries' intra- and inter-op threads instead of their defaults.
The full run (4 cases, 3 repeats, 101 worker processes) takes about 23 minutes on 2 cores.

(d) **vector environments** (extra rows, ``--num-envs N``, default 4; 0 skips them): end to end
    with N environment copies for both libraries, one gradient step per collected transition:
    ddpg-tf ``--num-envs N`` (N transitions stored and N updates in one compiled call per
    vector step), SB3 a ``DummyVecEnv`` of N copies with ``gradient_steps=-1``.

``--ddpg-tf-set [CASE:]FIELD=VALUE`` changes ddpg-tf settings that SB3 does not share (XLA,
batch chunks, thread pools), for all cases or one; the report lists them per case.

Outputs ``OUT_DIR/bench_sb3.json`` (every raw repeat, medians, ratios, machine, versions,
threads, settings) and ``OUT_DIR/bench_sb3.md`` (the tables, also printed).
"""

from __future__ import annotations

import argparse
import datetime
import inspect
import json
import math
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
RESULT_MARK = "BENCH_SB3_RESULT "
LIBS = ("ddpg_tf", "sb3")
LIB_LABEL = {"ddpg_tf": "ddpg-tf", "sb3": "SB3"}
METRICS = ("e2e", "update", "act", "e2e_vec")
VALUE_KEY = {"e2e": "env_steps_per_s", "update": "updates_per_s", "act": "ms_per_action",
             "e2e_vec": "vec_env_steps_per_s"}


@dataclass(frozen=True)
class Case:
    """One benchmark configuration; both libraries get exactly these settings."""

    name: str
    env_id: str
    obs_dim: int
    action_dim: int
    hidden: tuple[int, ...]
    batch_size: int
    episode_steps: int
    """Episode length (both environments run to their time limit, never terminate early)."""
    e2e_steps: int
    """Default number of timed end-to-end environment steps (``--e2e-steps`` overrides)."""

    @property
    def label(self) -> str:
        return f"{self.env_id} {'-'.join(map(str, self.hidden))} B{self.batch_size}"


CASES: dict[str, Case] = {c.name: c for c in (
    Case("pendulum-64", "Pendulum-v1", 3, 1, (64, 64), 64, 200, 5000),
    Case("pendulum-256", "Pendulum-v1", 3, 1, (256, 256), 256, 200, 5000),
    Case("halfcheetah-256", "HalfCheetah-v5", 17, 6, (256, 256), 256, 1000, 3000),
    Case("halfcheetah-400-300", "HalfCheetah-v5", 17, 6, (400, 300), 256, 1000, 3000),
)}

LARGE_NETWORK_SETTINGS = {"jit_compile": False, "batch_chunks": 2, "intra_op_threads": 1,
                          "inter_op_threads": 2}
"""The README's speed settings for 256-wide and larger networks on 2 cores (``--tuned``)."""
TUNED = {name: dict(LARGE_NETWORK_SETTINGS) for name in ("pendulum-256", "halfcheetah-256",
                                                         "halfcheetah-400-300")}
"""``--tuned``: per-case ddpg-tf settings (small networks keep the library defaults, XLA)."""

# Shared hyperparameters (see the module docstring).
LEARNING_RATE = 1e-3
TAU = 0.005
GAMMA = 0.99
NOISE_SIGMA = 0.1

FULL = {"repeats": 3, "learning_starts": 1000, "warmup_steps": 500, "log_every": 500,
        "updates": 2000, "update_warmup": 100, "update_fill": 50_000, "actions": 3000,
        "action_warmup": 200, "buffer_size": 1_000_000, "matmul_n": 2048, "matmul_reps": 8,
        "memory_capacity": 1_000_000}
QUICK = {"repeats": 1, "learning_starts": 64, "warmup_steps": 20, "log_every": 20,
         "e2e_steps": 60, "updates": 30, "update_warmup": 3, "update_fill": 1000, "actions": 100,
         "action_warmup": 10, "buffer_size": 100_000, "matmul_n": 512, "matmul_reps": 3,
         "memory_capacity": 1_000_000}
"""``--quick``: tiny settings to check the machinery (the numbers mean nothing)."""
OTHER_LOAD_WARNING = 0.3
"""CPUs kept busy by other processes during a worker above which the report warns."""


# --- FLOP count ------------------------------------------------------------------------------
def mlp_macs(sizes: Sequence[int]) -> int:
    """Multiply-accumulates of one sample through dense layers ``sizes[0] -> ... -> sizes[-1]``."""
    return sum(a * b for a, b in zip(sizes[:-1], sizes[1:], strict=False))


def update_flops(obs_dim: int, action_dim: int, actor_hidden: Sequence[int],
                 critic_hidden: Sequence[int], batch_size: int) -> dict[str, int]:
    """Matmul FLOPs of one DDPG update (critic step, actor step), by pass, and their ``total``.

    Actor A = [obs, *actor_hidden, act], critic C = [obs + act, *critic_hidden, 1] (the action
    joins at the input). For a network N and batch B, with M(N) its per-sample MACs and
    M1(N) its first layer's:

    * forward: F(N) = 2 B M(N) (a multiply-add is 2 FLOPs);
    * weight gradients dW = X^T dY: another 2 B M(N);
    * input gradients dX = dY W^T: 2 B M(N) minus the first layer's 2 B M1(N) when the gradient
      w.r.t. the network's input is not needed.

    Passes of one update: target actor forward on s'; target critic forward on (s', mu'(s'));
    critic forward on (s, a); critic backward with weight gradients (no input gradient at the
    first layer); actor forward on s; critic forward on (s, mu(s)); critic backward to the
    action input only (no weight gradients; the first layer's input gradient only for the
    action columns, 2 B act h1); actor backward with weight gradients. A backward pass with
    weight gradients costs about twice its forward, one without about once, so the total is
    about 4 F(A) + 6 F(C).

    Only matrix multiplications are counted: biases, activations, losses, Adam and the Polyak
    updates are O(B x width) or O(parameters) and add a few percent at most. This is the work
    the algorithm needs; an implementation may do more (PyTorch's ``actor_loss.backward()``
    also computes the critic's weight gradients, which SB3 then discards).
    """
    b = int(batch_size)
    actor = [obs_dim, *actor_hidden, action_dim]
    critic = [obs_dim + action_dim, *critic_hidden, 1]
    fa, fc = 2 * b * mlp_macs(actor), 2 * b * mlp_macs(critic)
    first_a, first_c = 2 * b * actor[0] * actor[1], 2 * b * critic[0] * critic[1]
    passes = {
        "target_actor_forward": fa,
        "target_critic_forward": fc,
        "critic_forward": fc,
        "critic_backward": fc + (fc - first_c),
        "actor_forward": fa,
        "critic_forward_on_policy_actions": fc,
        "critic_backward_to_action": (fc - first_c) + 2 * b * action_dim * critic[1],
        "actor_backward": fa + (fa - first_a),
    }
    passes["total"] = sum(passes.values())
    return passes


# --- small helpers ---------------------------------------------------------------------------
def proc_status_mib(field: str) -> float:
    """A ``kB`` field of /proc/self/status (VmRSS, VmHWM) in MiB; NaN where unavailable."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float("nan")


def _os_threads() -> int:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Threads:"):
                return int(line.split()[1])
    except OSError:
        pass
    return -1


def _thread_env() -> dict[str, str]:
    names = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "TF_NUM_INTRAOP_THREADS", "TF_NUM_INTEROP_THREADS")
    return {k: os.environ[k] for k in names if k in os.environ}


def _cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def _finish(result: dict[str, Any]) -> dict[str, Any]:
    result["peak_rss_mib"] = round(proc_status_mib("VmHWM"), 1)
    result["os_threads_at_end"] = _os_threads()
    result["modules_loaded"] = {m: m in sys.modules and sys.modules[m] is not None
                                for m in ("tensorflow", "torch")}
    return result


def _clock() -> tuple[float, float]:
    """(wall, CPU time of this process): their ratio over a window is the cores it kept busy."""
    return time.perf_counter(), time.process_time()


def _window(t0: tuple[float, float], t1: tuple[float, float]) -> dict[str, float]:
    wall = t1[0] - t0[0]
    return {"seconds": wall, "cpu_per_wall": (t1[1] - t0[1]) / wall}


# --- ddpg-tf workers -------------------------------------------------------------------------
def _ours_config(spec: dict[str, Any], logdir: str = "runs") -> Any:
    from ddpg_tf.config import Config

    hidden = tuple(spec["hidden"])
    config = Config(
        env_id=spec["env_id"], seed=spec["seed"], total_steps=spec.get("total_steps", 10_000),
        actor_update="direct", gamma=GAMMA, tau=TAU, actor_lr=LEARNING_RATE,
        critic_lr=LEARNING_RATE, critic_l2=0.0, max_grad_norm=0.0, batch_size=spec["batch_size"],
        buffer_size=spec["buffer_size"], learning_starts=spec["learning_starts"], gradient_steps=1,
        actor_hidden=hidden, critic_hidden=hidden, critic_action_layer=0, layer_norm=False,
        actor_output="tanh", dtype="float32", noise="gaussian", noise_sigma=NOISE_SIGMA,
        eval_every=0, eval_episodes=1, diag_every=0, log_every=spec.get("log_every", 500),
        checkpoint_every=0, logdir=logdir, run_name="bench", save_buffer=False, export=False,
        progress=False, eager=False, deterministic=False,
    )
    # --ddpg-tf-set overrides (e.g. jit_compile=true); the shared settings above stay shared.
    return config.replace(**(spec.get("ddpg_tf_overrides") or {})).validate()


def _tf_threads() -> dict[str, Any]:
    from ddpg_tf._quiet import tf

    return {"intra_op": tf.config.threading.get_intra_op_parallelism_threads(),
            "inter_op": tf.config.threading.get_inter_op_parallelism_threads(),
            "note": "0 = TensorFlow's default (one per available core)",
            "cpus_available": _cpus(), "env": _thread_env()}


def _ours_agent(spec: dict[str, Any]) -> tuple[Any, Any, Any]:
    from ddpg_tf.agent import DDPGAgent
    from ddpg_tf.envs import make_env, space_dims
    from ddpg_tf.training import seed_everything, set_threads

    config = _ours_config(spec)
    set_threads(config.threads, config.intra_op_threads, config.inter_op_threads)
    seed_everything(config)
    env = make_env(config.env_id)
    obs_dim, low, high = space_dims(env)
    return config, env, DDPGAgent(config, obs_dim, low, high)


def _sync(agent: Any, result: Any) -> None:
    """Wait for the last update: read one of its results and a variable it wrote."""
    import numpy as np

    if isinstance(result, dict) and result:
        np.asarray(next(iter(result.values())))
    elif result is not None and hasattr(result, "numpy"):
        result.numpy()
    np.asarray(agent.actor_target.weights[0])


def _worker_ours_e2e(spec: dict[str, Any]) -> dict[str, Any]:
    from ddpg_tf.training import train

    times: dict[int, tuple[float, float]] = {}

    def on_log(step: int, values: dict[str, float]) -> None:
        times[step] = _clock()

    with tempfile.TemporaryDirectory() as logdir:
        train(_ours_config(spec, logdir), on_log=on_log)
    return {**_e2e_result(spec, times), "timed_call": "ddpg_tf.training.train(config, on_log=...)",
            "threads": _tf_threads()}


def _worker_ours_e2e_vec(spec: dict[str, Any]) -> dict[str, Any]:
    """End-to-end with ``num_envs`` copies (``--num-envs``): one compiled call per N steps."""
    return _vec_result(_worker_ours_e2e({**spec, "ddpg_tf_overrides": {
        **(spec.get("ddpg_tf_overrides") or {}), "num_envs": spec["vector_envs"]}}), spec)


def _vec_result(result: dict[str, Any], spec: dict[str, Any]) -> dict[str, Any]:
    return {**result, "vec_env_steps_per_s": result.pop("env_steps_per_s"), "num_envs": spec["vector_envs"]}


def _e2e_result(spec: dict[str, Any], times: dict[int, tuple[float, float]]) -> dict[str, Any]:
    start, end, early = spec["window_start"], spec["total_steps"], spec["first_log_after_learning_starts"]
    window = _window(times[start], times[end])
    return {"env_steps_per_s": (end - start) / window["seconds"], "window": [start, end], **window,
            "env_steps_per_s_including_warmup": (end - early) / (times[end][0] - times[early][0]),
            "warmup_window": [early, end]}


def _random_columns(rng: Any, n: int, obs_dim: int, low: Any, high: Any) -> tuple[Any, ...]:
    """``n`` random transitions as columns in :class:`Batch` order (obs, action, reward,
    next_obs, terminated, truncated); each episode ends by termination with probability 1%."""
    import numpy as np

    return (rng.standard_normal((n, obs_dim), dtype=np.float32),
            rng.uniform(low, high, size=(n, len(low))).astype(np.float32),
            rng.standard_normal(n, dtype=np.float32),
            rng.standard_normal((n, obs_dim), dtype=np.float32),
            rng.random(n) < 0.01, np.zeros(n, bool))


def fill_ours_buffer(buffer: Any, n: int, obs_dim: int, low: Any, high: Any, seed: int = 0) -> str:
    """Store ``n`` random transitions in a ddpg-tf ``ReplayBuffer``, vectorised where the
    buffer's layout allows; returns how. In order of preference: a public ``add_batch(obs,
    actions, rewards, next_obs, terminated, truncated)``; the packed-rows variable
    (``storage``, ``columns``) written in place with ``scatter_nd_update``; the per-field NumPy
    arrays; ``add`` one transition at a time (always works, slow)."""
    import numpy as np

    rng = np.random.default_rng(seed)
    capacity, chunk = buffer.capacity, 1 << 15
    fields = ("observations", "actions", "rewards", "next_observations", "terminated", "truncated")
    storage = getattr(buffer, "storage", None)
    state = vars(buffer)
    if hasattr(buffer, "add_batch"):
        method = "add_batch"
    elif (hasattr(storage, "scatter_nd_update") and isinstance(getattr(buffer, "columns", None), dict)
          and hasattr(state.get("_size"), "assign") and hasattr(state.get("_position"), "assign")):
        method = "storage.scatter_nd_update"
    elif all(isinstance(state.get(f), np.ndarray) for f in fields) and "size" in state:
        method = "numpy arrays"
    else:
        method = "add"
    for i in range(0, n, chunk):
        m = min(chunk, n - i)
        cols = _random_columns(rng, m, obs_dim, low, high)
        slots = np.arange(i, i + m) % capacity
        if method == "add_batch":
            buffer.add_batch(*cols)
        elif method == "storage.scatter_nd_update":
            rows = np.empty((m, buffer.width), storage.dtype.as_numpy_dtype)
            for name, col in zip(fields, cols, strict=True):
                a, b = buffer.columns[name]
                rows[:, a:b] = col.reshape(m, -1)
            storage.scatter_nd_update(slots[:, None], rows)
        elif method == "numpy arrays":
            for name, col in zip(fields, cols, strict=True):
                getattr(buffer, name)[slots] = col.reshape(m, -1)
        else:
            for j in range(m):
                buffer.add(cols[0][j], cols[1][j], float(cols[2][j]), cols[3][j], bool(cols[4][j]),
                           bool(cols[5][j]))
    if method == "storage.scatter_nd_update":
        buffer._position.assign(n % capacity)
        buffer._size.assign(min(n, capacity))
    elif method == "numpy arrays":
        buffer.position, buffer.size = n % capacity, min(n, capacity)
    if len(buffer) != min(n, capacity):
        raise RuntimeError(f"filling the buffer by {method} stored {len(buffer)} transitions, not {n}")
    return method


def _time_calls(agent: Any, fn: Callable[[], Any], warmup: int, n: int,
                warmup_fn: Callable[[], Any] | None = None) -> dict[str, float]:
    """Wall and CPU time of ``n`` calls of ``fn`` after ``warmup`` untimed calls of
    ``warmup_fn`` (default ``fn``), synchronised."""
    result = None
    for _ in range(warmup):
        result = (warmup_fn or fn)()
    _sync(agent, result)
    start = _clock()
    for _ in range(n):
        result = fn()
    _sync(agent, result)
    return _window(start, _clock())


def _worker_ours_update(spec: dict[str, Any]) -> dict[str, Any]:
    import numpy as np

    from ddpg_tf.replay_buffer import ReplayBuffer

    config, env, agent = _ours_agent(spec)
    buffer = ReplayBuffer(config.buffer_size, agent.obs_dim, agent.action_dim, seed=config.seed,
                          dtype=config.dtype)
    fill = fill_ours_buffer(buffer, spec["update_fill"], agent.obs_dim, agent.action_low,
                            agent.action_high, seed=config.seed)
    batch = spec["batch_size"]
    n, warmup = spec["updates"], spec["update_warmup"]
    # The first path is the one timed. With in-graph replay (bind_replay) and a train_on_replay
    # that takes a number of rounds: n updates in one call, as SB3's train(gradient_steps=n);
    # then the update call the training loop makes once per env step, in a Python loop; and a
    # host batch per update. Every path is timed and recorded in the JSON.
    # Each path: its timing window and the updates it ran. A replay round is gradient_steps x
    # num_envs updates (1 x 1 with the shared settings); train_step is one update per call.
    per_round = getattr(config, "gradient_steps", 1) * getattr(config, "num_envs", 1)
    windows: dict[str, dict[str, float]] = {}
    updates: dict[str, int] = {}
    if hasattr(agent, "bind_replay"):
        agent.bind_replay(buffer)
        train = getattr(agent, "train_on_replay", None)
        if train is not None and "rounds" in inspect.signature(train).parameters:
            windows["agent.train_on_replay(rounds=K)"] = _time_calls(
                agent, lambda: train(rounds=n), 1, 1, warmup_fn=lambda: train(rounds=max(warmup, 2)))
            updates["agent.train_on_replay(rounds=K)"] = n * per_round
        if train is not None:
            windows[PER_CALL], updates[PER_CALL] = _time_calls(agent, train, warmup, n), n * per_round
        elif hasattr(agent, "store_and_train") and hasattr(buffer, "pack"):
            cols = _random_columns(np.random.default_rng(0), 1, agent.obs_dim, agent.action_low,
                                   agent.action_high)
            row = buffer.pack(cols[0][0], cols[1][0], float(cols[2][0]), cols[3][0], False, False)
            windows["agent.store_and_train(row)"] = _time_calls(agent, lambda: agent.store_and_train(row),
                                                               warmup, n)
            updates["agent.store_and_train(row)"] = n * per_round
    windows["agent.train_step(buffer.sample(B))"] = _time_calls(
        agent, lambda: agent.train_step(buffer.sample(batch)), warmup, n)
    updates["agent.train_step(buffer.sample(B))"] = n
    timed = next(iter(windows))
    env.close()
    return {"updates_per_s": updates[timed] / windows[timed]["seconds"], "updates": updates[timed],
            **windows[timed], "timed_call": timed,
            "updates_per_s_by_call": {k: updates[k] / v["seconds"] for k, v in windows.items()},
            "buffer_fill": spec["update_fill"], "buffer_fill_method": fill,
            "parameters": {"actor": agent.actor.count_params(), "critic": agent.critic.count_params()},
            "config": config.to_dict(), "threads": _tf_threads()}


def _worker_ours_act(spec: dict[str, Any]) -> dict[str, Any]:
    config, env, agent = _ours_agent(spec)
    obs, _ = env.reset(seed=config.seed)
    n = spec["actions"]
    window = _time_calls(agent, lambda: agent.act(obs, explore=True), spec["action_warmup"], n)
    env.close()
    return {"ms_per_action": 1e3 * window["seconds"] / n, "actions": n, **window,
            "timed_call": "agent.act(obs, explore=True)", "threads": _tf_threads()}


# --- SB3 workers -----------------------------------------------------------------------------
def _sb3_model(spec: dict[str, Any], learning_starts: int | None = None) -> tuple[Any, Any]:
    import gymnasium as gym
    import numpy as np
    from stable_baselines3 import DDPG
    from stable_baselines3.common.noise import NormalActionNoise

    num_envs = spec.get("vector_envs", 1)
    if num_envs > 1:
        from stable_baselines3.common.env_util import make_vec_env

        env = make_vec_env(spec["env_id"], n_envs=num_envs, seed=spec["seed"])
    else:
        env = gym.make(spec["env_id"])
    action_dim = env.action_space.shape[0]
    # With N envs, gradient_steps=-1 runs one gradient step per collected transition (N per
    # vector step); the noise is wrapped per env by SB3 (VectorizedActionNoise).
    model = DDPG(
        "MlpPolicy", env, learning_rate=LEARNING_RATE, buffer_size=spec["buffer_size"],
        learning_starts=spec["learning_starts"] if learning_starts is None else learning_starts,
        batch_size=spec["batch_size"], tau=TAU, gamma=GAMMA, train_freq=1,
        gradient_steps=1 if num_envs == 1 else -1,
        action_noise=NormalActionNoise(np.zeros(action_dim), NOISE_SIGMA * np.ones(action_dim)),
        policy_kwargs={"net_arch": list(spec["hidden"])}, seed=spec["seed"], device="cpu", verbose=0)
    return model, env


def _torch_threads() -> dict[str, Any]:
    import torch

    return {"intra_op": torch.get_num_threads(), "inter_op": torch.get_num_interop_threads(),
            "cpus_available": _cpus(), "env": _thread_env()}


def _worker_sb3_e2e(spec: dict[str, Any]) -> dict[str, Any]:
    from stable_baselines3.common.callbacks import BaseCallback

    marks = {spec["first_log_after_learning_starts"], spec["window_start"], spec["total_steps"]}
    times: dict[int, tuple[float, float]] = {}

    class StepTimer(BaseCallback):
        def _on_step(self) -> bool:
            if self.num_timesteps in marks:
                times[self.num_timesteps] = _clock()
            return True

    model, env = _sb3_model(spec)
    model.learn(total_timesteps=spec["total_steps"], callback=StepTimer())
    env.close()
    return {**_e2e_result(spec, times), "timed_call": "DDPG.learn(total_timesteps, callback=...)",
            "threads": _torch_threads()}


def _worker_sb3_e2e_vec(spec: dict[str, Any]) -> dict[str, Any]:
    """SB3 with ``num_envs`` copies in a DummyVecEnv and ``gradient_steps=-1`` (one gradient
    step per collected transition, N per vector step)."""
    return _vec_result(_worker_sb3_e2e(spec), spec)


def _worker_sb3_update(spec: dict[str, Any]) -> dict[str, Any]:
    import numpy as np
    from stable_baselines3.common.logger import Logger

    model, env = _sb3_model(spec)
    model.set_logger(Logger(folder=None, output_formats=[]))
    rb = model.replay_buffer
    n, obs_dim = spec["update_fill"], env.observation_space.shape[0]
    low, high = env.action_space.low, env.action_space.high
    rng = np.random.default_rng(spec["seed"])
    obs = rng.standard_normal((n + 1, obs_dim))
    # SB3 stores actions rescaled to [-1, 1]; write the arrays directly (vectorised fill).
    rb.observations[:n, 0] = obs[:-1]
    rb.next_observations[:n, 0] = obs[1:]
    rb.actions[:n, 0] = model.policy.scale_action(rng.uniform(low, high, size=(n, len(low))))
    rb.rewards[:n, 0] = rng.standard_normal(n)
    rb.dones[:n, 0] = rng.random(n) < 0.01
    rb.timeouts[:n, 0] = 0.0
    rb.pos, rb.full = n, False
    batch = spec["batch_size"]
    model.train(gradient_steps=spec["update_warmup"], batch_size=batch)
    k = spec["updates"]
    start = _clock()
    model.train(gradient_steps=k, batch_size=batch)
    window = _window(start, _clock())
    env.close()
    return {"updates_per_s": k / window["seconds"], "updates": k, **window,
            "timed_call": "model.train(gradient_steps=K, batch_size=B)", "buffer_fill": n,
            "parameters": {"actor": sum(p.numel() for p in model.actor.parameters()),
                           "critic": sum(p.numel() for p in model.critic.parameters())},
            "threads": _torch_threads()}


def _worker_sb3_act(spec: dict[str, Any]) -> dict[str, Any]:
    model, env = _sb3_model(spec)
    obs, _ = env.reset(seed=spec["seed"])
    model.policy.set_training_mode(False)  # as in collect_rollouts
    model._last_obs = obs[None]
    model.num_timesteps = model.learning_starts  # past warm-up: actions come from the policy
    for _ in range(spec["action_warmup"]):
        model._sample_action(model.learning_starts, model.action_noise, 1)
    n = spec["actions"]
    start = _clock()
    for _ in range(n):
        model._sample_action(model.learning_starts, model.action_noise, 1)
    window = _window(start, _clock())
    env.close()
    return {"ms_per_action": 1e3 * window["seconds"] / n, "actions": n, **window,
            "timed_call": "model._sample_action(learning_starts, action_noise, 1)",
            "threads": _torch_threads()}


# --- peak matmul and memory workers ----------------------------------------------------------
def _worker_peak(spec: dict[str, Any]) -> dict[str, Any]:
    from ddpg_tf._quiet import tf

    n = spec["n"]
    a = tf.random.stateless_normal((n, n), seed=(1, 2), dtype=tf.float32)
    b = tf.random.stateless_normal((n, n), seed=(3, 4), dtype=tf.float32)
    tf.matmul(a, b)[0, 0].numpy()  # warm-up (oneDNN primitive creation)
    gflops = []
    first = _clock()
    for _ in range(spec["reps"]):
        start = time.perf_counter()
        tf.matmul(a, b)[0, 0].numpy()
        gflops.append(2 * n**3 / (time.perf_counter() - start) / 1e9)
    return {"n": n, "gflops_runs": gflops, "gflops_best": max(gflops),
            "gflops_median": statistics.median(gflops),
            "cpu_per_wall": _window(first, _clock())["cpu_per_wall"], "threads": _tf_threads()}


def _worker_memory(spec: dict[str, Any]) -> dict[str, Any]:
    """Allocate and fill a ddpg-tf ReplayBuffer; peak RSS against the size of its storage."""
    import numpy as np

    from ddpg_tf.replay_buffer import ReplayBuffer

    capacity, obs_dim, action_dim = spec["capacity"], spec["obs_dim"], spec["action_dim"]
    baseline = proc_status_mib("VmRSS")  # after imports, before allocating: the constant part
    buffer = ReplayBuffer(capacity, obs_dim, action_dim, seed=0, dtype="float32")
    low, high = -np.ones(action_dim), np.ones(action_dim)
    fill = fill_ours_buffer(buffer, capacity, obs_dim, low, high)
    sample_ok: bool | str = True
    try:
        for _ in range(100):
            buffer.sample(256)
    except Exception as exc:  # report it, but keep the memory numbers
        sample_ok = f"{type(exc).__name__}: {exc}"
    # Everything the buffer holds per transition: NumPy arrays or TF variables of `capacity` rows.
    arrays = {name: (tuple(v.shape), np.dtype(getattr(v.dtype, "as_numpy_dtype", v.dtype)))
              for name, v in vars(buffer).items()
              if hasattr(v, "shape") and hasattr(v, "dtype") and len(v.shape) >= 1
              and v.shape[0] == capacity}
    arrays_mib = sum(math.prod(shape) * dtype.itemsize for shape, dtype in arrays.values()) / 2**20
    peak = proc_status_mib("VmHWM")
    return {
        "capacity": capacity, "obs_dim": obs_dim, "action_dim": action_dim, "fill_method": fill,
        "arrays": {k: [list(shape), str(dtype)] for k, (shape, dtype) in arrays.items()},
        "arrays_mib": round(arrays_mib, 1),
        "transitions_float32_mib": round(capacity * (2 * obs_dim + action_dim + 3) * 4 / 2**20, 1),
        "rss_before_allocation_mib": round(baseline, 1),
        "rss_after_fill_mib": round(proc_status_mib("VmRSS"), 1),
        "overhead_beyond_arrays_mib": round(peak - baseline - arrays_mib, 1),
        "sample_ok": sample_ok,
    }


WORKERS: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
    "ddpg_tf/e2e": _worker_ours_e2e, "ddpg_tf/update": _worker_ours_update,
    "ddpg_tf/act": _worker_ours_act, "sb3/e2e": _worker_sb3_e2e, "sb3/update": _worker_sb3_update,
    "sb3/act": _worker_sb3_act, "peak": _worker_peak, "memory": _worker_memory,
    "ddpg_tf/e2e_vec": _worker_ours_e2e_vec, "sb3/e2e_vec": _worker_sb3_e2e_vec,
}


def run_worker(kind: str, spec: dict[str, Any]) -> None:
    """Worker entry point: run one measurement and print its JSON result on one line."""
    if kind.startswith("sb3/"):
        # torch.utils.tensorboard (imported by SB3) would import TensorFlow as an idle passenger;
        # an entry of None in sys.modules makes that import fail, and tensorboard then uses its stub.
        sys.modules.setdefault("tensorflow", None)  # type: ignore[arg-type]
    threads = spec.get("threads")
    if threads and kind.startswith("sb3/"):
        import torch

        torch.set_num_threads(threads)
        torch.set_num_interop_threads(threads)
    elif threads and kind != "memory":
        from ddpg_tf._quiet import tf

        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(threads)
    wall = time.perf_counter()
    result = WORKERS[kind](spec)
    result["worker_wall_s"] = round(time.perf_counter() - wall, 2)
    print(RESULT_MARK + json.dumps(_finish(result)), flush=True)


# --- parent ----------------------------------------------------------------------------------
def _busy_cpu_seconds() -> float:
    """CPU seconds all processes have spent busy since boot (/proc/stat; NaN elsewhere)."""
    try:
        fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    except OSError:
        return float("nan")
    ticks = [int(x) for x in fields]
    idle = ticks[3] + (ticks[4] if len(ticks) > 4 else 0)  # idle + iowait
    guest = sum(ticks[8:10]) if len(ticks) > 9 else 0  # already counted in user / nice
    return (sum(ticks) - idle - guest) / os.sysconf("SC_CLK_TCK")


def _children_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _spawn(kind: str, spec: dict[str, Any], timeout: float) -> dict[str, Any]:
    """Run one worker; add its wall time and how many CPUs *other* processes kept busy meanwhile
    (all busy CPU time minus the worker's own, per second): a measure of how quiet the machine was."""
    cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", kind, json.dumps(spec)]
    start, busy0, own0 = time.perf_counter(), _busy_cpu_seconds(), _children_cpu_seconds()
    try:
        proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {timeout:.0f} s"}
    wall = time.perf_counter() - start
    other = (_busy_cpu_seconds() - busy0 - (_children_cpu_seconds() - own0)) / wall
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith(RESULT_MARK)]
    if proc.returncode != 0 or not lines:
        tail = "\n".join((proc.stderr or proc.stdout).strip().splitlines()[-15:])
        return {"error": f"worker {kind} exited with {proc.returncode}:\n{tail}"}
    result = json.loads(lines[-1][len(RESULT_MARK):])
    result["process_wall_s"] = round(wall, 2)
    result["other_busy_cpus"] = round(max(other, 0.0), 2)
    return result


def machine_info() -> dict[str, Any]:
    """CPU, cores, memory, OS and library versions (read without importing the libraries)."""
    cpu = platform.processor() or "unknown"
    flags: list[str] = []
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
            elif line.startswith("flags") and not flags:
                flags = [f for f in line.split(":", 1)[1].split() if f.startswith(("avx", "amx", "fma"))]
    except OSError:
        pass
    mem_gib = float("nan")
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem_gib = round(int(line.split()[1]) / 2**20, 1)
    except OSError:
        pass
    versions = {}
    for dist in ("tensorflow", "keras", "tensorflow-probability", "torch", "stable-baselines3",
                 "gymnasium", "mujoco", "numpy"):
        try:
            versions[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            versions[dist] = None
    return {"cpu_model": cpu, "cpu_flags": flags, "logical_cpus": os.cpu_count(),
            "cpus_available": _cpus(), "memory_gib": mem_gib, "platform": platform.platform(),
            "python": platform.python_version(), "versions": versions,
            "load_average_at_start": list(os.getloadavg()) if hasattr(os, "getloadavg") else None}


def _median(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


def _ratio(ours: float | None, sb3: float | None, metric: str) -> float | None:
    if not ours or not sb3:
        return None
    return sb3 / ours if metric == "act" else ours / sb3  # always a speed-up of ddpg-tf


def _plan(args: argparse.Namespace, settings: dict[str, Any], case: Case) -> dict[str, Any]:
    every = settings["log_every"]
    # ddpg-tf trains once the buffer holds a batch; SB3 would sample a short buffer with repeats.
    learning_starts = max(settings["learning_starts"], case.batch_size)
    # The timed window opens warmup_steps after the first episode end that follows
    # learning_starts: by then ddpg-tf has traced every variant of its step (the one fused with
    # the next action, and the one used at an episode end), so one-off tracing is not timed.
    first_end = (learning_starts // case.episode_steps + 1) * case.episode_steps
    window_start = math.ceil((first_end + settings["warmup_steps"]) / every) * every
    steps = settings.get("e2e_steps") or case.e2e_steps
    total = window_start + math.ceil(steps / every) * every
    return {"env_id": case.env_id, "hidden": list(case.hidden), "batch_size": case.batch_size,
            "buffer_size": settings["buffer_size"], "learning_starts": learning_starts,
            "log_every": every, "window_start": window_start, "total_steps": total,
            "first_log_after_learning_starts": math.ceil(learning_starts / every) * every,
            "updates": settings["updates"], "update_warmup": settings["update_warmup"],
            "update_fill": settings["update_fill"], "actions": settings["actions"],
            "action_warmup": settings["action_warmup"], "threads": args.threads,
            "ddpg_tf_overrides": {**args.ddpg_tf_set.get("*", {}), **args.ddpg_tf_set.get(case.name, {})}}


def run_benchmark(args: argparse.Namespace) -> dict[str, Any]:
    """Run every worker (interleaved), gather raw results, medians and ratios."""
    settings = dict(QUICK if args.quick else FULL)
    for key in ("repeats", "e2e_steps", "updates", "learning_starts", "warmup_steps"):
        value = getattr(args, key)
        if value is not None:
            settings[key] = value
    cases = [CASES[name] for name in args.cases]
    metrics = METRICS if args.num_envs > 1 else METRICS[:-1]
    report: dict[str, Any] = {
        "benchmark": "bench_sb3", "schema": 1, "quick": bool(args.quick),
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "machine": machine_info(),
        "settings": {**settings, "learning_rate": LEARNING_RATE, "tau": TAU, "gamma": GAMMA,
                     "noise": f"gaussian sigma {NOISE_SIGMA} x half action range",
                     "train_freq": 1, "gradient_steps": 1, "critic_action_layer": 0,
                     "order": "per case, per repeat, per metric: ddpg-tf then SB3",
                     "threads": args.threads or "library defaults",
                     "ddpg_tf_overrides": args.ddpg_tf_set, "num_envs": args.num_envs},
        "peak_matmul": {"runs": []}, "cases": {}, "threads": {}, "errors": [], "warnings": [],
    }
    busy: list[tuple[str, float]] = []
    total_workers = len(cases) * (1 + settings["repeats"] * len(metrics) * len(LIBS)) + 1
    done = 0

    def spawn(kind: str, spec: dict[str, Any], what: str) -> dict[str, Any]:
        nonlocal done
        result = _spawn(kind, spec, args.timeout)
        done += 1
        if "error" in result:
            report["errors"].append({"what": what, "error": result["error"]})
            print(f"[{done}/{total_workers}] {what}: FAILED\n{result['error']}", flush=True)
        else:
            value = next((result[k] for k in (*VALUE_KEY.values(), "gflops_best", "arrays_mib")
                          if k in result), None)
            busy.append((what, result["other_busy_cpus"]))
            print(f"[{done}/{total_workers}] {what}: {value:.4g}  ({result['process_wall_s']:.1f} s, "
                  f"peak RSS {result['peak_rss_mib']:.0f} MiB, other processes busy "
                  f"{result['other_busy_cpus']:.2f} CPUs)", flush=True)
        return result

    for case in cases:
        peak = spawn("peak", {"n": settings["matmul_n"], "reps": settings["matmul_reps"],
                              "threads": args.threads},
                     f"peak matmul {settings['matmul_n']}^3 (before {case.name})")
        if "error" not in peak:
            report["peak_matmul"]["runs"].append(peak)
        plan = _plan(args, settings, case)
        raw: dict[str, dict[str, list[dict[str, Any]]]] = {lib: {m: [] for m in metrics} for lib in LIBS}
        for r in range(settings["repeats"]):
            for metric in metrics:
                for lib in LIBS:
                    spec = {**plan, "seed": 1 + r}
                    if metric == "e2e_vec":
                        spec["vector_envs"] = args.num_envs
                    result = spawn(f"{lib}/{metric}", spec,
                                   f"{case.name} r{r + 1} {metric} {LIB_LABEL[lib]}")
                    raw[lib][metric].append(result)
                    if "threads" in result:
                        report["threads"].setdefault(lib, result["threads"])
        medians = {lib: {VALUE_KEY[m]: _median([x[VALUE_KEY[m]] for x in raw[lib][m] if "error" not in x])
                         for m in metrics} for lib in LIBS}
        for lib in LIBS:
            medians[lib]["peak_rss_mib"] = {m: _median([x["peak_rss_mib"] for x in raw[lib][m]
                                                        if "error" not in x]) for m in metrics}
        per_call = _per_call_updates(raw["ddpg_tf"].get("update", []))
        if per_call is not None:
            medians["ddpg_tf"][PER_CALL_KEY] = per_call
        flops = update_flops(case.obs_dim, case.action_dim, case.hidden, case.hidden, case.batch_size)
        report["cases"][case.name] = {
            "label": case.label, "settings": plan, "flops_per_update": flops,
            "raw": raw, "median": medians,
            "ratio": {VALUE_KEY[m]: _ratio(medians["ddpg_tf"][VALUE_KEY[m]], medians["sb3"][VALUE_KEY[m]], m)
                      for m in metrics},
        }

    memory = spawn("memory", {"capacity": settings["memory_capacity"], "obs_dim": 17, "action_dim": 6},
                   f"memory: ReplayBuffer({settings['memory_capacity']}, 17, 6) filled")
    report["memory"] = {"env_id": "HalfCheetah-v5", **memory}

    runs = report["peak_matmul"]["runs"]
    peak_gflops = max((r["gflops_best"] for r in runs), default=None)
    report["peak_matmul"].update(n=settings["matmul_n"], dtype="float32", op="tf.matmul",
                                 gflops=peak_gflops,
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
    report["machine"]["load_average_at_end"] = list(os.getloadavg()) if hasattr(os, "getloadavg") else None
    noisy = [(w, b) for w, b in busy if b > OTHER_LOAD_WARNING]
    if noisy:
        worst = max(noisy, key=lambda x: x[1])
        report["warnings"].append(
            f"the machine was not quiet: other processes kept more than {OTHER_LOAD_WARNING} CPUs busy "
            f"during {len(noisy)} of {len(busy)} workers (worst {worst[1]:.2f} CPUs, {worst[0]}); "
            "the numbers are unreliable, SB3's especially (PyTorch's OpenMP threads stall when a "
            "core is taken). Rerun on an idle machine.")
    return report


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
        + "; ".join(f"{e['label']}: {_overrides_text(e['settings']['ddpg_tf_overrides'])}"
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


PER_CALL = "agent.train_on_replay()"
"""ddpg-tf's per-step update call, also timed by the update-only worker (extra rows)."""
PER_CALL_KEY = "updates_per_s_one_call_per_update"
"""Where the median of :data:`PER_CALL`'s rate goes in a case's ddpg-tf medians."""


def _per_call_updates(runs: list[dict[str, Any]]) -> float | None:
    """Median updates/s of ddpg-tf's one-call-per-update path over update-only worker
    results that timed it besides the K-updates-in-one-call path (else None)."""
    if any(r.get("timed_call") == PER_CALL for r in runs if "error" not in r):
        return None  # the per-call path is the headline row already
    return _median([r["updates_per_s_by_call"][PER_CALL] for r in runs
                    if "error" not in r and PER_CALL in r.get("updates_per_s_by_call", {})])


def _overrides_text(overrides: dict[str, Any]) -> str:
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


def _override(text: str) -> tuple[str, str, Any]:
    """``[CASE:]FIELD=VALUE`` as (case or "*", field, value)."""
    name, sep, value = text.partition("=")
    case, colon, field = name.rpartition(":")
    case = case.strip() if colon else "*"
    if not sep or not field.strip():
        raise argparse.ArgumentTypeError(f"expected [CASE:]FIELD=VALUE, got {text!r}")
    if case != "*" and case not in CASES:
        raise argparse.ArgumentTypeError(f"unknown case {case!r} in {text!r}; choose from {', '.join(CASES)}")
    field = field.strip().replace("-", "_")
    try:
        return case, field, json.loads(value)
    except json.JSONDecodeError:
        return case, field, value


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Command-line options (``--worker KIND SPEC`` is internal)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cases", type=lambda s: [c.strip() for c in s.split(",") if c.strip()],
                        default=list(CASES), help=f"comma-separated subset of: {', '.join(CASES)}")
    parser.add_argument("--repeats", type=int, default=None, help="interleaved repeats (default 3)")
    parser.add_argument("--e2e-steps", type=int, default=None,
                        help="timed end-to-end steps (default 5000 Pendulum, 3000 HalfCheetah)")
    parser.add_argument("--updates", type=int, default=None, help="timed updates (default 2000)")
    parser.add_argument("--learning-starts", type=int, default=None, help="default 1000")
    parser.add_argument("--warmup-steps", type=int, default=None,
                        help="untimed training steps after learning_starts (default 500)")
    parser.add_argument("--threads", type=int, default=None,
                        help="intra- and inter-op threads for both libraries (default: each library's "
                             "own default, one per available core)")
    parser.add_argument("--ddpg-tf-set", type=_override, action="append", default=[],
                        metavar="[CASE:]FIELD=VALUE",
                        help="override a ddpg-tf Config field not shared with SB3, for every case or "
                             "only CASE, e.g. jit_compile=false or halfcheetah-256:batch_chunks=2 "
                             "(repeatable; VALUE is parsed as JSON, else taken as a string)")
    parser.add_argument("--tuned", action="store_true",
                        help="ddpg-tf with the README's speed settings per case: "
                             + "; ".join(f"{c}: {_overrides_text(o)}" for c, o in TUNED.items())
                             + " (--ddpg-tf-set entries override them)")
    parser.add_argument("--num-envs", type=int, default=4,
                        help="extra end-to-end row with this many environment copies for both "
                             "libraries (ddpg-tf --num-envs N, SB3 DummyVecEnv with gradient_steps=-1); "
                             "must divide the log interval 500; 0 or 1 skips it (default 4)")
    parser.add_argument("--out-dir", type=Path, default=ROOT / "benchmarks" / "results")
    parser.add_argument("--quick", action="store_true",
                        help="tiny settings for development and tests (numbers not meaningful)")
    parser.add_argument("--timeout", type=float, default=3600.0, help="seconds per worker")
    parser.add_argument("--worker", nargs=2, metavar=("KIND", "SPEC"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    sets: dict[str, dict[str, Any]] = {c: dict(o) for c, o in TUNED.items()} if args.tuned else {}
    for case, field, value in args.ddpg_tf_set:
        sets.setdefault(case, {})[field] = value
    args.ddpg_tf_set = sets
    if args.num_envs > 1 and (QUICK if args.quick else FULL)["log_every"] % args.num_envs:
        parser.error(f"--num-envs {args.num_envs} must divide the log interval "
                     f"{(QUICK if args.quick else FULL)['log_every']}")
    unknown = [c for c in args.cases if c not in CASES]
    if unknown:
        parser.error(f"unknown case(s) {', '.join(unknown)}; choose from {', '.join(CASES)}")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark (or, with ``--worker``, one measurement)."""
    args = parse_args(argv)
    if args.worker:
        kind, spec = args.worker
        sys.path.insert(0, str(ROOT))
        run_worker(kind, json.loads(spec))
        return 0
    start = time.perf_counter()
    report = run_benchmark(args)
    report["benchmark_wall_s"] = round(time.perf_counter() - start, 1)
    args.out_dir.mkdir(parents=True, exist_ok=True)
    (args.out_dir / "bench_sb3.json").write_text(json.dumps(report, indent=2) + "\n")
    table = markdown(report)
    (args.out_dir / "bench_sb3.md").write_text(table)
    print("\n" + table)
    print(f"wrote {args.out_dir / 'bench_sb3.json'} and {args.out_dir / 'bench_sb3.md'} "
          f"in {report['benchmark_wall_s']:.0f} s")
    return 1 if report["errors"] else 0


if __name__ == "__main__":
    sys.exit(main())
