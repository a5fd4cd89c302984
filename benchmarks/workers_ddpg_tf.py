"""The timed ddpg-tf measurements, each run in a worker process of its own (see ``runner``).

End to end: :func:`ddpg_tf.training.train` timed through its ``on_log`` hook. Update-only: K
updates on a buffer of random transitions, through every update call the agent offers (the
first one found is the headline). Action selection: ``agent.act(obs, explore=True)``.
TensorFlow is imported inside the workers only.
"""

from __future__ import annotations

import inspect
import tempfile
from collections.abc import Callable
from typing import Any

from benchmarks.cases import GAMMA, LEARNING_RATE, NOISE_SIGMA, PER_CALL, TAU
from benchmarks.timing import clock, cpus, e2e_result, thread_env, vec_result, window


def ours_config(spec: dict[str, Any], logdir: str = "runs") -> Any:
    """The ddpg-tf Config of a worker's spec: the shared settings, then its overrides."""
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


def tf_threads() -> dict[str, Any]:
    """TensorFlow's thread pools in this process."""
    from ddpg_tf._quiet import tf

    return {"intra_op": tf.config.threading.get_intra_op_parallelism_threads(),
            "inter_op": tf.config.threading.get_inter_op_parallelism_threads(),
            "note": "0 = TensorFlow's default (one per available core)",
            "cpus_available": cpus(), "env": thread_env()}


def _ours_agent(spec: dict[str, Any]) -> tuple[Any, Any, Any]:
    from ddpg_tf.agent import DDPGAgent
    from ddpg_tf.envs import make_env, space_dims
    from ddpg_tf.runtime import seed_everything, set_threads

    from ddpg_tf.speed import kept_speed_fields, resolve_speed

    config = ours_config(spec)
    env = make_env(config.env_id)
    obs_dim, low, high = space_dims(env)
    # As a model would: speed="auto" picks what the overrides leave open.
    config, _ = resolve_speed(config, obs_dim, len(low),
                              kept_speed_fields(config, spec.get("ddpg_tf_overrides") or {}))
    set_threads(config.threads, config.intra_op_threads, config.inter_op_threads)
    seed_everything(config)
    return config, env, DDPGAgent(config, obs_dim, low, high)


def _sync(agent: Any, result: Any) -> None:
    """Wait for the last update: read one of its results and a variable it wrote."""
    import numpy as np

    if isinstance(result, dict) and result:
        np.asarray(next(iter(result.values())))
    elif result is not None and hasattr(result, "numpy"):
        result.numpy()
    np.asarray(agent.actor_target.weights[0])


def _time_calls(agent: Any, fn: Callable[[], Any], warmup: int, n: int,
                warmup_fn: Callable[[], Any] | None = None) -> dict[str, float]:
    """Wall and CPU time of ``n`` calls of ``fn`` after ``warmup`` untimed calls of
    ``warmup_fn`` (default ``fn``), synchronised."""
    result = None
    for _ in range(warmup):
        result = (warmup_fn or fn)()
    _sync(agent, result)
    start = clock()
    for _ in range(n):
        result = fn()
    _sync(agent, result)
    return window(start, clock())


def worker_e2e(spec: dict[str, Any]) -> dict[str, Any]:
    """The training loop, timed over the planned window of environment steps."""
    from ddpg_tf.training import train

    times: dict[int, tuple[float, float]] = {}

    def on_log(step: int, values: dict[str, float]) -> None:
        times[step] = clock()

    with tempfile.TemporaryDirectory() as logdir:
        train(ours_config(spec, logdir), on_log=on_log)
    return {**e2e_result(spec, times), "timed_call": "ddpg_tf.training.train(config, on_log=...)",
            "threads": tf_threads()}


def worker_e2e_vec(spec: dict[str, Any]) -> dict[str, Any]:
    """End-to-end with ``num_envs`` copies (``--num-envs``): one compiled call per N steps."""
    return vec_result(worker_e2e({**spec, "ddpg_tf_overrides": {
        **(spec.get("ddpg_tf_overrides") or {}), "num_envs": spec["vector_envs"]}}), spec)


def random_columns(rng: Any, n: int, obs_dim: int, low: Any, high: Any) -> tuple[Any, ...]:
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
        cols = random_columns(rng, m, obs_dim, low, high)
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


def worker_update(spec: dict[str, Any]) -> dict[str, Any]:
    """Updates per second on a buffer of random transitions, through each update call."""
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
        elif hasattr(agent, "step") and hasattr(buffer, "pack"):
            cols = random_columns(np.random.default_rng(0), 1, agent.obs_dim, agent.action_low,
                                  agent.action_high)
            row = buffer.pack(cols[0][0], cols[1][0], float(cols[2][0]), cols[3][0], False, False)
            label = "agent.step(row[None], train=True)"
            windows[label] = _time_calls(agent, lambda: agent.step(row[None], train=True)[1], warmup, n)
            updates[label] = n * per_round
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
            "config": config.to_dict(), "threads": tf_threads()}


def worker_act(spec: dict[str, Any]) -> dict[str, Any]:
    """Milliseconds per exploratory action of ``agent.act``."""
    config, env, agent = _ours_agent(spec)
    obs, _ = env.reset(seed=config.seed)
    n = spec["actions"]
    timed = _time_calls(agent, lambda: agent.act(obs, explore=True), spec["action_warmup"], n)
    env.close()
    return {"ms_per_action": 1e3 * timed["seconds"] / n, "actions": n, **timed,
            "timed_call": "agent.act(obs, explore=True)", "threads": tf_threads()}
