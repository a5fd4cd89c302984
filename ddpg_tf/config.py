"""The run configuration: one typed dataclass, its presets, and its validation.

Every field carries a docstring directly below it; :mod:`ddpg_tf.cli` reads those
docstrings to build ``--help``, so the dataclass is the single source of truth for
flags, defaults and documentation.

This module imports neither TensorFlow nor Gymnasium, so a bad flag is reported
in a fraction of a second.
"""

from __future__ import annotations

import ast
import dataclasses
import functools
import inspect
import json
import re
import typing
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from ddpg_tf.errors import ConfigError

ActorUpdate = Literal["direct", "chain-rule", "dpg-surrogate"]
DqdaTransformName = Literal["none", "invert", "clip-value", "clip-norm"]
NoiseType = Literal["gaussian", "ou", "param", "none"]
ActorOutput = Literal["tanh", "linear"]
DType = Literal["float32", "float64"]
NoiseUnits = Literal["half-range", "absolute"]
EpsilonPlacement = Literal["tensorflow", "torch"]
UpdateSchedule = Literal["every-step", "episode-end"]
FinalInit = Literal["uniform-3e-3", "fan-in"]
SpeedMode = Literal["auto", "manual"]

ACTOR_UPDATES: tuple[str, ...] = ("direct", "chain-rule", "dpg-surrogate")
STYLES_WITH_DQDA: tuple[str, ...] = ("chain-rule", "dpg-surrogate")

# --- random streams ----------------------------------------------------------------------------
SEED_STREAMS: dict[str, int] = {
    "actor_init": 1, "critic_init": 2, "critic2_init": 3, "exploration_noise": 4,
    "target_smoothing": 5, "param_noise": 6, "replay": 7, "diagnostics": 8,
    "param_noise_replay": 9, "train_env": 10, "action_space": 11, "eval_env": 12,
    "lockstep": 13,
}
"""Every random stream of a run and its fixed spawn key. Keys are never reused or renumbered:
a new stream gets a new key, so adding one leaves every other stream's numbers unchanged."""


def stream_seed(seed: int, stream: str | int, *path: int) -> int:
    """The seed of one random stream of the run with root seed ``seed``.

    ``numpy.random.SeedSequence(seed, spawn_key=(key, *path))`` hashes the root seed together
    with the stream's fixed key (``SEED_STREAMS[stream]``, or an integer key) and an optional
    sub-path (a layer index, kernel or bias), so distinct streams, and the same stream of
    distinct root seeds, get unrelated seeds (unlike ``seed + offset`` schemes, where seed
    k + 1 of one stream is seed k of another). Returns a 31-bit integer, which every consumer
    (Keras initialisers, ``tf.random.Generator.from_seed``, Gymnasium resets) accepts."""
    key = SEED_STREAMS[stream] if isinstance(stream, str) else int(stream)
    state = np.random.SeedSequence(int(seed), spawn_key=(key, *map(int, path))).generate_state(1)
    return int(state[0] & 0x7FFFFFFF)


@dataclass(frozen=True)
class Config:
    """Hyperparameters and run settings of one DDPG training run.

    Defaults are the ``pendulum`` preset. See :data:`PRESETS` for the others.
    """

    # --- environment -------------------------------------------------------------
    env_id: str = "Pendulum-v1"
    """Gymnasium environment id; needs Box observation and action spaces."""
    seed: int = 1
    """Root seed of the run: every initialiser, noise process, sampler and environment gets a
    seed of its own derived from it (``ddpg_tf.config.stream_seed``); also seeds NumPy,
    TensorFlow and Keras globally."""
    total_steps: int = 10_000
    """Environment steps to train for (counted across resumes)."""

    # --- algorithm ---------------------------------------------------------------
    actor_update: ActorUpdate = "direct"
    """How the actor gradient is computed: `direct` (one tape over -mean Q(s, mu(s))),
    `chain-rule` (dQ/da first, then pushed through mu with output_gradients) or
    `dpg-surrogate` (dQ/da first, then the loss 0.5 ||sg(a + dQ/da) - a||^2). All three give
    the same gradient unless a dQ/da transform is set."""
    dqda_transform: DqdaTransformName = "none"
    """Change dQ/da before it reaches the actor (chain-rule and dpg-surrogate only): `invert`
    (Hausknecht & Stone's inverting gradients), `clip-value` (element-wise to +-dqda_clip) or
    `clip-norm` (each sample's dQ/da to L2 norm dqda_clip)."""
    dqda_clip: float = 1.0
    """Threshold of the `clip-value` and `clip-norm` transforms."""
    gamma: float = 0.98
    """Discount factor of the TD target r + gamma (1 - terminated) Q'(s', mu'(s'))."""
    tau: float = 0.005
    """Polyak factor of the target networks: target <- tau online + (1 - tau) target."""
    actor_lr: float = 1e-3
    """Adam learning rate of the actor."""
    critic_lr: float = 1e-3
    """Adam learning rate of the critic."""
    adam_epsilon: float = 1e-7
    """Adam's epsilon (Keras' default 1e-7; PyTorch's 1e-8)."""
    adam_epsilon_placement: EpsilonPlacement = "tensorflow"
    """Where Adam adds epsilon: `tensorflow` to sqrt(v) before bias correction, step
    lr sqrt(1 - b2^t) / (1 - b1^t) m / (sqrt(v) + eps) (Keras, tf.raw_ops.ApplyAdam), or `torch`
    after it, step lr / (1 - b1^t) m / (sqrt(v / (1 - b2^t)) + eps) (torch.optim.Adam)."""
    critic_l2: float = 0.0
    """L2 penalty 0.5 * critic_l2 * sum(W**2) over the critic's kernels (paper: 1e-2)."""
    max_grad_norm: float = 0.0
    """Clip each network's gradient to this global norm; 0 disables clipping."""
    batch_size: int = 128
    """Transitions per gradient step."""
    buffer_size: int = 100_000
    """Replay buffer capacity in transitions (oldest overwritten first)."""
    learning_starts: int = 1_000
    """Steps of uniform random actions (the warm-up); the first gradient step follows it unless
    train_during_warmup is on."""
    train_during_warmup: bool = False
    """Run gradient steps during the random warm-up too, as soon as the buffer holds one
    transition (batches are drawn with replacement), as the TD3 authors' code does; off: the
    first update comes after learning_starts steps, once the buffer holds a batch."""
    update_schedule: UpdateSchedule = "every-step"
    """When updates run: `every-step` (gradient_steps after each environment step) or
    `episode-end` (at the end of each episode, gradient_steps x its length in one call, as the
    TD3 authors' code and SB3's train_freq=(1, "episode"), gradient_steps=-1 do; one
    environment only)."""
    gradient_steps: int = 1
    """Gradient steps per environment step once learning has started."""
    num_envs: int = 1
    """Copies of the environment stepped together (``gymnasium.vector.SyncVectorEnv``,
    same-step autoreset). Each loop iteration steps all of them, stores their transitions and
    runs num_envs x gradient_steps updates in one compiled call, so updates per environment
    step stay ``gradient_steps``. Step counts (``total_steps``, ``eval_every``, ...) count the
    transitions of all copies; ``total_steps`` must be a multiple of ``num_envs``, and an
    evaluation, log or checkpoint falls on the first iteration that reaches its multiple.
    Every noise type works: OU keeps one process per copy, parameter noise one perturbed actor
    for all copies, redrawn whenever a copy starts an episode."""
    n_step: int = 1
    """n-step returns: learn from y = sum_{k<m} gamma^k r_{t+k} + gamma^m Q'(s_{t+m}, mu'(s_{t+m}))
    with m = n, or fewer steps when the episode ends first (no bootstrap after termination;
    a truncation bootstraps from the last state reached)."""

    # --- TD3 (Fujimoto et al. 2018); all off in the DDPG presets --------------------
    twin_critics: bool = False
    """Clipped double Q-learning: learn two critics and bootstrap from the smaller target
    value min(Q1', Q2'); the actor follows Q1."""
    policy_delay: int = 1
    """Update the actor and the target networks once every this many critic updates."""
    target_noise: float = 0.0
    """Target policy smoothing: std of the Gaussian added to mu'(s') in the TD target, in
    noise_units; 0 disables."""
    target_noise_clip: float = 0.5
    """Clip the target-smoothing noise to +- this value, in noise_units."""

    # --- networks ----------------------------------------------------------------
    actor_hidden: tuple[int, ...] = (256, 256)
    """Hidden layer sizes of the actor."""
    critic_hidden: tuple[int, ...] = (256, 256)
    """Hidden layer sizes of the critic."""
    critic_action_layer: int = 0
    """Hidden layer index at which the action joins the critic: 0 = with the observation at
    the input, 1 = after the first hidden layer (as in the DDPG paper)."""
    layer_norm: bool = False
    """Layer normalisation after every hidden dense layer (before the ReLU)."""
    final_init: FinalInit = "uniform-3e-3"
    """Initialisation of the actor's and critic's output layers: `uniform-3e-3` (U(+-3e-3) for
    kernel and bias, the DDPG paper) or `fan-in` (U(+-1/sqrt(fan_in)) for both, PyTorch's
    nn.Linear default used by the TD3 authors and SB3). Hidden layers always use fan-in."""
    actor_output: ActorOutput = "tanh"
    """Actor output: `tanh` squashes into the action bounds; `linear` leaves it unbounded
    (actions are then clipped only when sent to the environment)."""
    dtype: DType = "float32"
    """Floating-point type of networks, optimisers and the replay batch."""
    obs_norm: bool = False
    """Normalise observations with running mean and variance (updated with every stored
    transition, saved in checkpoints and built into the exported policy)."""
    obs_norm_clip: float = 10.0
    """Clip normalised observations to +- this value."""

    # --- exploration -------------------------------------------------------------
    noise: NoiseType = "gaussian"
    """Exploration: `gaussian` or `ou` (Ornstein-Uhlenbeck, reset at every episode start)
    noise added to the action, `param` (adaptive parameter-space noise: a perturbed copy of the
    actor acts, re-perturbed every episode) or `none`."""
    noise_sigma: float = 0.1
    """Scale of the exploration noise in noise_units; for `param`, the target distance between
    perturbed and unperturbed actions, always as a fraction of the half action range."""
    noise_units: NoiseUnits = "half-range"
    """Units of noise_sigma, target_noise and target_noise_clip: `half-range` (fractions of
    (high - low) / 2 per action component, as SB3, which acts in [-1, 1]) or `absolute`
    (action units, as the TD3 authors' code: N(0, 0.1) on any action range)."""
    ou_theta: float = 0.15
    """Mean-reversion rate theta of the Ornstein-Uhlenbeck process."""
    ou_dt: float = 1e-2
    """Time step dt of the Ornstein-Uhlenbeck process."""
    param_noise_init: float = 0.1
    """`param` noise: initial std of the Gaussian added to the actor's weights."""
    param_noise_adapt_every: int = 50
    """`param` noise: adapt the weight-noise std every this many steps, on a replay batch."""
    param_noise_alpha: float = 1.01
    """`param` noise: divide the std by this factor when the action distance exceeds its
    target, multiply otherwise."""

    # --- evaluation, logging, checkpoints ----------------------------------------
    eval_every: int = 2_000
    """Run a deterministic evaluation every this many steps (and at the end); 0 disables."""
    eval_episodes: int = 5
    """Episodes per evaluation."""
    diag_every: int = 1_000
    """Every this many steps, log how the applied actor gradient compares with the direct one
    (diag/grad_cosine, diag/grad_rel_diff) and the share of actions at the bounds; 0 disables."""
    log_every: int = 250
    """Write training losses and histograms to TensorBoard every this many steps."""
    checkpoint_every: int = 5_000
    """Save a checkpoint every this many steps (and at the end); 0 saves only at the end."""
    keep_checkpoints: int = 3
    """Number of most recent checkpoints kept on disk."""
    logdir: str = "runs"
    """Parent directory of run directories (TensorBoard logs, checkpoints, exports)."""
    run_name: str = ""
    """Run directory name under `logdir`; empty picks ENV__STYLE__seedN."""
    resume: bool = False
    """Continue the run in `logdir/run_name` from its latest checkpoint."""
    save_buffer: bool = True
    """Save the replay buffer (compressed) with every checkpoint, so a resumed run continues
    exactly; without it a resumed run refills the buffer from scratch."""
    export: bool = True
    """Export the final actor as `.keras` and SavedModel under RUN_DIR/export."""

    skip_nonfinite: bool = False
    """Drop transitions whose observation or reward is NaN/Inf (counted in TensorBoard as
    data/nonfinite_skipped) instead of stopping with an error."""

    # --- execution ---------------------------------------------------------------
    eager: bool = False
    """Run the train and act steps eagerly instead of as compiled tf.functions (debugging)."""
    fuse_act: bool = True
    """Run each update and the next action selection as one compiled call (same numbers,
    one call fewer per step)."""
    in_graph: bool = True
    """For an environment given by id that has a TensorFlow version (Pendulum-v1,
    MountainCarContinuous-v0; ddpg_tf/tf_envs): run acting, the environment step, storing and
    the updates of all steps between two log, evaluation or checkpoint steps in one compiled
    `tf.while_loop` (ddpg_tf/in_graph.py). Needs gaussian, ou or no noise and n_step 1;
    elsewhere the usual loop runs (and an explicit `--in-graph` is an error). `--no-in-graph`
    steps gymnasium's own environment. Saved in config.json as used."""
    speed: SpeedMode = "auto"
    """`auto`: choose jit_compile, batch_chunks and the thread counts from the size of one
    update (networks, batch, dtype) and the cores, keeping any of them you set yourself; the
    choice is printed once and saved in config.json (rule: ddpg_tf/speed.py, docs/benchmarks.md).
    `manual`: use those four fields as they are."""
    jit_compile: bool = True
    """Compile the train and act steps with XLA (`tf.function(jit_compile=True)`)."""
    batch_chunks: int = 1
    """Split each training batch into this many equal slices that pass through the networks as
    separate ops, so TensorFlow's inter-op threads run them on different cores; the gradients
    are the sums over the slices, the full-batch gradients up to float rounding. Pays for large
    networks without XLA: 2 with ``--no-jit-compile --intra-op-threads 1 --inter-op-threads 2``
    on 2 cores (see docs/benchmarks.md)."""
    fast_calls: bool = True
    """Call the compiled per-step functions through the low-overhead path of
    ``ddpg_tf/fast_calls.py`` (TensorFlow internals, about 100-200 us less per call; same
    numbers). Falls back to TensorFlow's public call, with one warning, if that path ever fails
    for a reason other than an error inside the computation."""
    deterministic: bool = False
    """Enable TensorFlow op determinism (bit-identical reruns; may be slower)."""
    progress: bool = True
    """Show a progress bar with steps/s and the last evaluation return."""
    threads: int = 0
    """TensorFlow intra-op and inter-op threads; 0 keeps TensorFlow's default (all cores).
    Set 1 when several runs share a machine."""
    intra_op_threads: int = 0
    """TensorFlow intra-op threads (within one op), overriding ``threads``; 0: not overridden."""
    inter_op_threads: int = 0
    """TensorFlow inter-op threads (ops run side by side), overriding ``threads``; 0: not
    overridden."""

    # -----------------------------------------------------------------------------
    def validate(self) -> Config:
        """Raise :class:`ConfigError` with a one-line message if any value is unusable."""
        positive_ints = ("total_steps", "batch_size", "buffer_size", "gradient_steps", "num_envs",
                         "batch_chunks",
                         "eval_episodes", "log_every", "keep_checkpoints", "n_step", "policy_delay",
                         "param_noise_adapt_every")
        for name in positive_ints:
            if getattr(self, name) <= 0:
                raise ConfigError(f"--{_flag(name)} must be a positive integer, got {getattr(self, name)}")
        for name in ("learning_starts", "eval_every", "checkpoint_every", "critic_action_layer",
                     "diag_every", "threads", "intra_op_threads", "inter_op_threads"):
            if getattr(self, name) < 0:
                raise ConfigError(f"--{_flag(name)} must be >= 0, got {getattr(self, name)}")
        if not 0 <= self.seed < 2**32:
            raise ConfigError(f"--seed must be in [0, 2**32), got {self.seed}")
        for name in ("actor_lr", "critic_lr"):
            if not getattr(self, name) > 0:
                raise ConfigError(f"--{_flag(name)} must be positive, got {getattr(self, name)}")
        if not 0.0 < self.tau <= 1.0:
            raise ConfigError(f"--tau must be in (0, 1], got {self.tau}")
        if not 0.0 <= self.gamma <= 1.0:
            raise ConfigError(f"--gamma must be in [0, 1], got {self.gamma}")
        for name in ("critic_l2", "max_grad_norm", "noise_sigma", "ou_theta", "target_noise",
                     "target_noise_clip"):
            if getattr(self, name) < 0:
                raise ConfigError(f"--{_flag(name)} must be >= 0, got {getattr(self, name)}")
        for name in ("ou_dt", "obs_norm_clip", "param_noise_init"):
            if not getattr(self, name) > 0:
                raise ConfigError(f"--{_flag(name)} must be positive, got {getattr(self, name)}")
        if not self.param_noise_alpha > 1:
            raise ConfigError(f"--param-noise-alpha must be greater than 1, got {self.param_noise_alpha}")
        if self.target_noise > 0 and not self.target_noise_clip > 0:
            raise ConfigError("--target-noise needs a positive --target-noise-clip (0 would clip the "
                              "smoothing noise away); pass --target-noise 0 to turn smoothing off")
        if not self.adam_epsilon > 0:
            raise ConfigError(f"--adam-epsilon must be positive, got {self.adam_epsilon}")
        for name, kind in (("noise_units", NoiseUnits), ("adam_epsilon_placement", EpsilonPlacement),
                           ("update_schedule", UpdateSchedule), ("final_init", FinalInit),
                           ("speed", SpeedMode)):
            choices = typing.get_args(kind)
            if getattr(self, name) not in choices:
                raise ConfigError(f"unknown --{_flag(name)} {getattr(self, name)!r}; choose from "
                                  f"{', '.join(choices)}")
        if self.update_schedule == "episode-end" and self.num_envs != 1:
            raise ConfigError("--update-schedule episode-end needs --num-envs 1 (episodes of several "
                              "copies do not end together); use --update-schedule every-step")
        if self.noise == "param" and not self.noise_sigma > 0:
            raise ConfigError("--noise param needs a positive --noise-sigma (the target action distance)")
        if self.num_envs > 1:
            self._validate_vector_envs()
        if self.batch_size % self.batch_chunks:
            raise ConfigError(f"--batch-chunks {self.batch_chunks} must divide --batch-size "
                              f"{self.batch_size}")
        if self.batch_size > self.buffer_size:
            raise ConfigError(f"--batch-size {self.batch_size} is larger than --buffer-size "
                              f"{self.buffer_size}; lower the batch or raise the buffer")
        for name in ("actor_hidden", "critic_hidden"):
            sizes = getattr(self, name)
            if not sizes or any(s <= 0 for s in sizes):
                raise ConfigError(f"--{_flag(name)} needs one or more positive layer sizes, got {sizes}")
        if self.critic_action_layer >= len(self.critic_hidden):
            raise ConfigError(f"--critic-action-layer {self.critic_action_layer} must be smaller than "
                              f"the number of critic hidden layers ({len(self.critic_hidden)})")
        if self.actor_update not in ACTOR_UPDATES:
            raise ConfigError(f"unknown --actor-update {self.actor_update!r}; "
                              f"choose from {', '.join(ACTOR_UPDATES)}")
        if self.dqda_transform != "none" and self.actor_update not in STYLES_WITH_DQDA:
            raise ConfigError(f"--dqda-transform {self.dqda_transform} needs --actor-update chain-rule or "
                              f"dpg-surrogate: the {self.actor_update} style never materialises dQ/da")
        if self.dqda_transform in ("clip-value", "clip-norm") and not self.dqda_clip > 0:
            raise ConfigError(f"--dqda-clip must be positive for --dqda-transform {self.dqda_transform}, "
                              f"got {self.dqda_clip}")
        if self.run_name and ("/" in self.run_name or self.run_name in (".", "..")):
            raise ConfigError(f"--run-name must be a plain directory name, got {self.run_name!r}")
        return self

    def _validate_vector_envs(self) -> None:
        n = self.num_envs
        if self.total_steps % n:
            raise ConfigError(f"--total-steps {self.total_steps} must be a multiple of --num-envs {n} "
                              "(each loop iteration adds num_envs steps)")

    def default_run_name(self) -> str:
        """The run directory name used when ``run_name`` is empty."""
        return self.run_name or f"{self.env_id}__{self.actor_update}__seed{self.seed}"

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable dict of every field."""
        return {f.name: (list(v) if isinstance(v := getattr(self, f.name), tuple) else v)
                for f in dataclasses.fields(self)}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> Config:
        """Inverse of :meth:`to_dict`; unknown keys raise :class:`ConfigError`."""
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - names)
        if unknown:
            raise ConfigError(f"unknown config keys: {', '.join(unknown)}")
        fixed = {k: (tuple(v) if isinstance(v, list) else v) for k, v in values.items()}
        return cls(**fixed)

    def replace(self, **changes: Any) -> Config:
        return dataclasses.replace(self, **changes)


@functools.cache
def field_docs(cls: type | None = None) -> dict[str, str]:
    """Map each field of the dataclass ``cls`` (default :class:`Config`) to the docstring written
    directly below it: the help text of its flag and its row in the CLI reference."""
    tree = ast.parse(inspect.getsource(cls or Config))
    body = tree.body[0].body  # type: ignore[attr-defined]
    docs: dict[str, str] = {}
    for node, nxt in zip(body, body[1:], strict=False):
        if (isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name)
                and isinstance(nxt, ast.Expr) and isinstance(nxt.value, ast.Constant)
                and isinstance(nxt.value.value, str)):
            docs[node.target.id] = " ".join(nxt.value.value.split())
    return docs


def _flag(name: str) -> str:
    return name.replace("_", "-")


_MUJOCO = Config(
    env_id="HalfCheetah-v5",
    total_steps=1_000_000,
    actor_lr=1e-3,
    critic_lr=1e-3,
    gamma=0.99,
    tau=0.005,
    batch_size=100,
    buffer_size=1_000_000,
    learning_starts=10_000,
    actor_hidden=(400, 300),
    critic_hidden=(400, 300),
    noise="gaussian",
    noise_sigma=0.1,
    eval_every=5_000,
    eval_episodes=10,
    checkpoint_every=50_000,
)

PRESETS: dict[str, Config] = {
    # Tuned so Pendulum-v1 reaches an eval mean of -200 or better within 10k steps.
    "pendulum": Config(),
    # Lillicrap et al. (2015), section 7 "Experiment details" (low-dimensional case).
    "ddpg-paper": Config(
        env_id="Pendulum-v1",
        total_steps=1_000_000,
        actor_lr=1e-4,
        critic_lr=1e-3,
        critic_l2=1e-2,
        tau=1e-3,
        gamma=0.99,
        noise="ou",
        noise_sigma=0.2,
        ou_theta=0.15,
        ou_dt=1.0,  # the paper's process has no time step (x <- x - theta x + sigma eps)
        actor_hidden=(400, 300),
        critic_hidden=(400, 300),
        critic_action_layer=1,
        batch_size=64,
        buffer_size=1_000_000,
        learning_starts=0,  # act with the policy (plus noise) from the first step
        eval_every=10_000,
        checkpoint_every=50_000,
    ),
    # Fujimoto et al. (2018), "Our DDPG" (their re-tuned DDPG baseline, appendix): 400-300
    # networks with the action at the critic's input, Adam 1e-3 for both, batch 100, tau 5e-3,
    # Gaussian exploration 0.1, no L2; 10k uniform random steps on HalfCheetah and Ant, 1k on the
    # other tasks (resolved from the env id, see preset_config).
    "ddpg-mujoco": _MUJOCO,
    # Fujimoto et al. (2018), TD3, as their camera-ready code runs it (github.com/sfujim/TD3,
    # folder TD3/, main.py and TD3.py): 400-300 networks with the action at the critic's input,
    # PyTorch's default initialisation (fan-in final layers), Adam 1e-3 with PyTorch's epsilon,
    # batch 100, tau 5e-3, gamma 0.99, a buffer of 1e6; exploration N(0, 0.1) and target
    # smoothing N(0, 0.2) clipped at 0.5, both in action units (absolute); twin critics, actor
    # and targets every 2nd critic update. Uniform random actions for the first 10k steps on
    # HalfCheetah and Ant, 1k elsewhere (the paper; resolved from the env id, see
    # preset_config), and training from the first episode end on: at every episode end, as many
    # updates as the episode had steps, the warm-up included.
    "td3": Config(
        env_id="HalfCheetah-v5", total_steps=1_000_000, actor_lr=1e-3, critic_lr=1e-3,
        adam_epsilon=1e-8, adam_epsilon_placement="torch", gamma=0.99, tau=0.005, batch_size=100,
        buffer_size=1_000_000, learning_starts=10_000, train_during_warmup=True,
        update_schedule="episode-end", actor_hidden=(400, 300), critic_hidden=(400, 300),
        final_init="fan-in", noise="gaussian", noise_sigma=0.1, noise_units="absolute",
        twin_critics=True, policy_delay=2, target_noise=0.2, target_noise_clip=0.5,
        eval_every=5_000, eval_episodes=10, checkpoint_every=50_000),
    # Stable-Baselines3 2.x TD3 constructor defaults (stable_baselines3/td3/td3.py, TD3Policy):
    # 400-300, learning rate 1e-3 for both networks, torch Adam (eps 1e-8), batch 256,
    # tau 5e-3, gamma 0.99, buffer 1e6, 100 random steps, one update per step, no action noise,
    # target smoothing 0.2 clipped at 0.5 in SB3's [-1, 1] action units (half-range), PyTorch's
    # default initialisation; then rl-baselines3-zoo's hyperparams/td3.yml entry for the env
    # where it has one (see preset_config: MuJoCo tasks: 10k random steps, Gaussian 0.1, batch
    # 256; Pendulum: gamma 0.98, buffer 2e5, 10k random steps, Gaussian 0.1).
    "td3-sb3": Config(
        env_id="HalfCheetah-v5", total_steps=1_000_000, actor_lr=1e-3, critic_lr=1e-3,
        adam_epsilon=1e-8, adam_epsilon_placement="torch", gamma=0.99, tau=0.005, batch_size=256,
        buffer_size=1_000_000, learning_starts=10_000, actor_hidden=(400, 300),
        critic_hidden=(400, 300), final_init="fan-in", noise="gaussian", noise_sigma=0.1,
        twin_critics=True, policy_delay=2, target_noise=0.2, target_noise_clip=0.5,
        eval_every=5_000, eval_episodes=10, checkpoint_every=50_000),
    # Stable-Baselines3 2.x DDPG constructor defaults (stable_baselines3/ddpg/ddpg.py: TD3 with
    # one critic, no delay and no target smoothing; otherwise as td3-sb3), then
    # rl-baselines3-zoo's hyperparams/ddpg.yml entry for the env (see preset_config).
    "ddpg-sb3": Config(
        env_id="Pendulum-v1", total_steps=20_000, actor_lr=1e-3, critic_lr=1e-3, adam_epsilon=1e-8,
        adam_epsilon_placement="torch", gamma=0.98, tau=0.005, batch_size=256, buffer_size=200_000,
        learning_starts=10_000, actor_hidden=(400, 300), critic_hidden=(400, 300),
        final_init="fan-in", noise="gaussian", noise_sigma=0.1, eval_every=1_000, eval_episodes=10,
        checkpoint_every=10_000),
}
"""Named starting points for ``--preset``; any flag given on the command line overrides them.
Some values depend on the environment (``td3``'s warm-up, the zoo settings of the ``-sb3``
presets): :func:`preset_config` fills them in for an env id; the entries here hold them for
each preset's own ``env_id``."""

# --- environment-dependent preset values ------------------------------------------------------
_ZOO_MUJOCO = ("HalfCheetah", "Ant", "Hopper", "Walker2d", "Humanoid", "Swimmer")
"""MuJoCo tasks with an entry in rl-baselines3-zoo's td3.yml / ddpg.yml (their shared
``mujoco-defaults`` anchor)."""


def _env_name(env_id: str) -> str:
    """``HalfCheetah-v5`` -> ``HalfCheetah`` (a namespace such as ``ALE/`` dropped)."""
    return re.sub(r"-v\d+$", "", env_id.rsplit("/", 1)[-1])


def _td3_paper(env_id: str) -> dict[str, Any]:
    # Fujimoto et al. (2018): 10k random steps for HalfCheetah and Ant, 1k on the other tasks.
    return {"learning_starts": 10_000 if _env_name(env_id) in ("HalfCheetah", "Ant") else 1_000}


def _sb3_zoo(env_id: str) -> dict[str, Any]:
    """SB3's constructor defaults overridden by rl-baselines3-zoo's entry for ``env_id``."""
    name = _env_name(env_id)
    if name in _ZOO_MUJOCO:  # mujoco-defaults: learning_starts 1e4, normal noise 0.1, batch 256, lr 1e-3
        values: dict[str, Any] = {"gamma": 0.99, "buffer_size": 1_000_000, "learning_starts": 10_000,
                                  "noise": "gaussian", "noise_sigma": 0.1, "batch_size": 256}
        if name == "Swimmer":
            values["gamma"] = 0.9999
        return values
    if name == "Pendulum":  # gamma 0.98, buffer 2e5, learning_starts 1e4, normal noise 0.1
        return {"gamma": 0.98, "buffer_size": 200_000, "learning_starts": 10_000, "noise": "gaussian",
                "noise_sigma": 0.1, "batch_size": 256}
    # No zoo entry: SB3's constructor defaults (no action noise, 100 random steps).
    return {"gamma": 0.99, "buffer_size": 1_000_000, "learning_starts": 100, "noise": "none",
            "noise_sigma": 0.1, "batch_size": 256}


ENV_DEPENDENT: dict[str, Callable[[str], dict[str, Any]]] = {
    "ddpg-mujoco": _td3_paper, "td3": _td3_paper, "td3-sb3": _sb3_zoo, "ddpg-sb3": _sb3_zoo,
}
"""Per preset, the values that depend on the environment, as a function of its id."""


def env_dependent_values(preset: str, env_id: str) -> dict[str, Any]:
    """The values preset ``preset`` takes for ``env_id`` beyond its fixed ones ({} if none)."""
    rule = ENV_DEPENDENT.get(preset)
    return rule(env_id) if rule is not None else {}


def preset_config(name: str, env_id: str | None = None) -> Config:
    """Preset ``name`` for ``env_id`` (default: the preset's own env): ``PRESETS[name]`` with the
    environment set and its environment-dependent values filled in. Overrides go on top
    (``preset_config("td3", "Hopper-v5").replace(seed=3)``); ``DDPG``/``TD3`` models and the
    command line start from it. Raises ConfigError for an unknown preset."""
    if name not in PRESETS:
        raise ConfigError(f"unknown preset {name!r}; choose from {', '.join(sorted(PRESETS))}")
    base = PRESETS[name]
    env_id = env_id or base.env_id
    return base.replace(env_id=env_id, **env_dependent_values(name, env_id))


DEFAULT_PRESET = "pendulum"

# Fields a resumed run may change; everything else must match the saved run.
RESUMABLE_FIELDS = frozenset({
    "total_steps", "eval_every", "eval_episodes", "log_every", "checkpoint_every",
    "keep_checkpoints", "export", "save_buffer", "eager", "progress", "resume", "logdir", "run_name",
    "diag_every", "fuse_act", "jit_compile", "threads", "intra_op_threads", "inter_op_threads",
    "batch_chunks", "fast_calls", "speed",
})
