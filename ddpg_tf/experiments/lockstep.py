"""ddpg-tf's TD3 updates and Stable-Baselines3's, in lockstep on one shared warm-up.

    python -m ddpg_tf.experiments.lockstep [--env Hopper-v5] [--preset td3] [--seeds 0-4]
        [--steps 500] [--every 100] [--set FIELD=VALUE ...]

Runs of the two libraries from different seeds can only be compared as samples. This tool
removes every source of randomness but the arithmetic: for each seed it

1. plays ``--steps`` steps of uniform random actions in the training env (the random warm-up
   both libraries start with), keeping every transition;
2. builds a ddpg-tf agent from the resolved config and SB3's ``TD3`` from the same config
   (:func:`~ddpg_tf.experiments.sb3.sb3_settings`), and copies ddpg-tf's initial weights
   (actor, both critics and their targets) into SB3's networks;
3. runs the updates the config's schedule would run over those steps (with
   ``train_during_warmup`` and the ``episode-end`` schedule of the ``td3`` preset: at each
   episode end, as many updates as the episode had steps), in both libraries, on the same
   batches (rows drawn uniformly with replacement from the rows stored so far, by one NumPy
   generator) and with the same target-smoothing noise (ddpg-tf draws it; SB3's draw is
   replaced by it);
4. every ``--every`` steps prints how far apart the two libraries' weights are and how
   saturated each actor is on the states stored so far.

If the two updates are the same algorithm, the weights stay apart only by float32 rounding
(each library's own kernels and summation orders) and the saturation figures agree but for
where each library's tanh rounds to ±1 (docs/algorithm.md, "tanh rounding"). Columns:

- ``actor gap`` / ``critic gap``: over layers, the largest ``max|w_tf - w_sb3| / max|w_sb3|``;
- ``own``: the share of states whose every action component the library's own training tanh
  returns as exactly ±1 (no gradient reaches the actor from that state), ddpg-tf through its
  compiled diagnostics, SB3 through PyTorch;
- ``at 13 ln 2``: the same share judged by one threshold for both, ``|z| >= 13 ln 2``;
- ``median |z|`` of the tanh inputs.

A summary per measurement step gives the means over seeds and the paired difference
ddpg-tf − SB3 of each share with its 95% bootstrap interval. Needs the ``bench`` extra.
Actions must lie in [-1, 1]: SB3's networks see actions rescaled to [-1, 1], ddpg-tf's (as
the TD3 authors') the environment's own, and on other bounds the two are different
parameterisations whose Adam steps differ, so there is no lockstep to check.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, NamedTuple

import numpy as np

from ddpg_tf.config import Config, ConfigError, preset_config, stream_seed
from ddpg_tf.errors import UsageError, fail
from ddpg_tf.experiments.overrides import coerce_override
from ddpg_tf.experiments.parsing import parse_seeds
from ddpg_tf.experiments.saturation import measure
from ddpg_tf.experiments.sb3 import sb3_settings
from ddpg_tf.experiments.spec import SpecError
from ddpg_tf.stats import compare


class Warmup(NamedTuple):
    """``steps`` transitions of uniform random actions, float32, scalars as (steps, 1)."""

    observations: np.ndarray
    actions: np.ndarray
    rewards: np.ndarray
    next_observations: np.ndarray
    terminated: np.ndarray
    episode_ends: list[tuple[int, int]]
    """(step after which the episode ended, its length), in order."""


class Row(NamedTuple):
    """One seed at one measurement step."""

    seed: int
    step: int
    updates: int
    actor_gap: float
    critic_gap: float
    own_tf: float
    own_sb3: float
    common_tf: float
    common_sb3: float
    median_tf: float
    median_sb3: float


def collect_warmup(env_id: str, steps: int, seed: int) -> Warmup:
    """``steps`` steps of uniform random actions (env reset with the run's ``train_env`` seed,
    actions from the ``lockstep`` stream), every transition kept."""
    import gymnasium as gym

    env = gym.make(env_id)
    rng = np.random.default_rng(stream_seed(seed, "lockstep"))
    low, high = env.action_space.low, env.action_space.high
    obs, _ = env.reset(seed=stream_seed(seed, "train_env"))
    rows: list[tuple[Any, ...]] = []
    ends, length = [], 0
    for step in range(1, steps + 1):
        action = rng.uniform(low, high).astype(np.float32)
        next_obs, reward, terminated, truncated, _ = env.step(action)
        rows.append((obs, action, reward, next_obs, float(terminated)))
        length += 1
        obs = next_obs
        if terminated or truncated:
            ends.append((step, length))
            obs, length = env.reset()[0], 0
    env.close()
    columns = [np.asarray(c, np.float32) for c in zip(*rows, strict=True)]
    return Warmup(columns[0], columns[1], columns[2][:, None], columns[3], columns[4][:, None], ends)


def update_plan(config: Config, steps: int, episode_ends: Sequence[tuple[int, int]]) -> dict[int, int]:
    """{step: updates run after it} for ``steps`` steps of random actions, as ddpg-tf's
    training loop schedules them (``updates_due``; episode-end or every-step)."""
    from ddpg_tf.loop import updates_due

    plan: dict[int, int] = {}
    if config.update_schedule == "episode-end":
        for step, length in episode_ends:
            if updates_due(config, step, step):
                plan[step] = length * config.gradient_steps
    else:
        for step in range(1, steps + 1):
            if updates_due(config, step, step):
                plan[step] = config.gradient_steps
    return plan


def _check(config: Config, warmup_low: np.ndarray, warmup_high: np.ndarray) -> None:
    if not (np.all(warmup_low == -1.0) and np.all(warmup_high == 1.0)):
        raise UsageError("lockstep needs actions in [-1, 1]: SB3's networks see actions rescaled to [-1, 1], "
                         "ddpg-tf's the env's own, so on other bounds the two updates differ by design")
    if config.actor_output != "tanh":
        raise UsageError("lockstep compares tanh actors (SB3 has no unsquashed actor)")


class Sb3Twin:
    """SB3's TD3 for ``config``, starting from the weights of the ddpg-tf ``agent``, updated
    on batches and smoothing noise given from outside."""

    def __init__(self, config: Config, agent: Any, env_id: str) -> None:
        import gymnasium as gym
        import torch
        from stable_baselines3 import TD3
        from stable_baselines3.common.logger import Logger

        self.torch = torch
        env = gym.make(env_id)
        settings = sb3_settings(config, env.action_space.low, env.action_space.high)
        for key in ("action_noise", "warmup_steps", "final_init"):
            settings.pop(key)
        self.model = TD3("MlpPolicy", env, device="cpu", **settings)
        self.model.set_logger(Logger(None, []))
        policy = self.model.policy
        pairs = [(agent.actor, policy.actor.mu), (agent.actor_target, policy.actor_target.mu)]
        for i, (critic, target, _) in enumerate(agent.critics):
            pairs += [(critic, policy.critic.q_networks[i]), (target, policy.critic_target.q_networks[i])]
        self.pairs = pairs
        with torch.no_grad():
            for keras_model, net in pairs:
                layers = zip(_dense_weights(keras_model), _linears(net, torch), strict=True)
                for (kernel, bias), linear in layers:
                    linear.weight.copy_(torch.as_tensor(kernel.T))
                    linear.bias.copy_(torch.as_tensor(bias))

    def update(self, batch: Any, noise: np.ndarray | None) -> None:
        """One SB3 update (``TD3.train(1)``) on ``batch`` with smoothing noise ``noise``
        (already clipped, SB3's [-1, 1] action units; None: no smoothing)."""
        from stable_baselines3.common.type_aliases import ReplayBufferSamples

        torch = self.torch
        samples = ReplayBufferSamples(*(torch.as_tensor(x) for x in (
            batch.observations, batch.actions, batch.next_observations, batch.terminated, batch.rewards)),
            discounts=None)
        self.model.replay_buffer.sample = lambda *_args, **_kwargs: samples
        with _noise_drawn_as(torch, noise):
            self.model.train(gradient_steps=1, batch_size=len(batch.observations))

    def pre_activations(self, observations: np.ndarray) -> tuple[np.ndarray, float]:
        """The actor's tanh inputs on ``observations`` and PyTorch's share of states whose
        every component its tanh returns as exactly ±1."""
        torch = self.torch
        mu = self.model.actor.mu
        with torch.no_grad():
            z = mu[:-1](torch.as_tensor(observations))
            own = (torch.abs(mu[-1](z)) == 1).all(dim=1).double().mean().item()
        return z.numpy(), own

    def gaps(self) -> tuple[float, float]:
        """(actor gap, critic gap): over layers, max |w_tf - w_sb3| / max |w_sb3|."""
        def gap(pairs: list[tuple[Any, Any]]) -> float:
            worst = 0.0
            for keras_model, net in pairs:
                for (kernel, bias), linear in zip(_dense_weights(keras_model), _linears(net, self.torch),
                                                  strict=True):
                    for ours, theirs in ((kernel.T, linear.weight), (bias, linear.bias)):
                        theirs = theirs.detach().numpy()
                        worst = max(worst, float(np.abs(ours - theirs).max() / np.abs(theirs).max()))
            return worst
        return gap(self.pairs[:2]), gap(self.pairs[2:])


def _dense_weights(model: Any) -> list[tuple[np.ndarray, np.ndarray]]:
    values = [w.numpy() for w in model.weights]
    return [(values[i], values[i + 1]) for i in range(0, len(values), 2)]


def _linears(net: Any, torch: Any) -> list[Any]:
    return [m for m in net.modules() if isinstance(m, torch.nn.Linear)]


@contextmanager
def _noise_drawn_as(torch: Any, noise: np.ndarray | None) -> Iterator[None]:
    """SB3 draws its smoothing noise with ``actions.clone().data.normal_(0, sigma)``: inside
    this block that call returns ``noise`` instead (``clamp`` to the clip then leaves it as is,
    since it is already clipped)."""
    if noise is None:
        yield
        return
    original = torch.Tensor.normal_

    def given(self: Any, *_args: Any, **_kwargs: Any) -> Any:
        return self.copy_(torch.as_tensor(noise, dtype=self.dtype))

    torch.Tensor.normal_ = given
    try:
        yield
    finally:
        torch.Tensor.normal_ = original


def run_lockstep(config: Config, steps: int, every: int,
                 on_row: Callable[[Row], None] | None = None) -> list[Row]:
    """Both libraries' updates over ``steps`` random steps of ``config.env_id`` for
    ``config.seed``; one :class:`Row` every ``every`` steps (and at the last)."""
    import gymnasium as gym

    from ddpg_tf.agent import DDPGAgent  # first: it quiets TensorFlow's start-up before keras loads

    import keras

    from ddpg_tf.replay_buffer import Batch

    space = gym.make(config.env_id).action_space
    _check(config, space.low, space.high)
    warmup = collect_warmup(config.env_id, steps, config.seed)
    agent = DDPGAgent(config, warmup.observations.shape[1], space.low, space.high)
    twin = Sb3Twin(config, agent, config.env_id)
    pre = keras.Model(agent.actor.inputs, agent.actor.get_layer("pre_action").output)
    half_range = (space.high - space.low) / 2.0
    rng = np.random.default_rng(stream_seed(config.seed, "lockstep", 1))
    plan = update_plan(config, steps, warmup.episode_ends)
    # The noise comes from a sampler compiled like the training step: XLA picks its own
    # stateless algorithm, so an eager draw from the same generator state gives other numbers.
    smoothing = agent.target_smoothing
    draw = None if smoothing is None else agent.compile(lambda: smoothing.sample(config.batch_size), [])
    rows, updates = [], 0
    for step in range(1, steps + 1):
        for _ in range(plan.get(step, 0)):
            idx = rng.integers(0, step, size=config.batch_size)
            batch = Batch(warmup.observations[idx], warmup.actions[idx], warmup.rewards[idx],
                          warmup.next_observations[idx], warmup.terminated[idx],
                          np.zeros_like(warmup.terminated[idx]))
            noise = None
            if draw is not None:  # the draw ddpg-tf's update is about to make, then rewound
                state = smoothing.generator.state.numpy()
                noise = np.asarray(draw()) / half_range
                smoothing.generator.reset(state)
            agent.train_step(batch)
            twin.update(batch, noise)
            updates += 1
        if step % every == 0 or step == steps:
            obs = warmup.observations[:step]
            diag = agent.diagnostics(Batch(obs, *(np.zeros((step, 1), np.float32),) * 5))
            z_tf = pre.predict(obs, batch_size=4096, verbose=0)
            z_sb3, own_sb3 = twin.pre_activations(obs)
            ours, theirs = measure(z_tf, step, float(diag["diag/actor_states_without_grad"])), \
                measure(z_sb3, step, own_sb3)
            row = Row(config.seed, step, updates, *twin.gaps(), ours.own, theirs.own, ours.all_zero,
                      theirs.all_zero, ours.median_abs_z, theirs.median_abs_z)
            rows.append(row)
            if on_row is not None:
                on_row(row)
    return rows


def summary(rows: Sequence[Row]) -> list[str]:
    """Markdown lines: per measurement step, means over seeds and the paired differences."""
    lines = ["| step | seeds | max actor gap | own: ddpg-tf | own: SB3 | difference [95%] "
             "| at 13 ln 2: ddpg-tf | at 13 ln 2: SB3 | difference [95%] |", "|---" * 9 + "|"]
    for step in sorted({r.step for r in rows}):
        at = [r for r in rows if r.step == step]
        own = compare({r.seed: r.own_sb3 for r in at}, {r.seed: r.own_tf for r in at})
        common = compare({r.seed: r.common_sb3 for r in at}, {r.seed: r.common_tf for r in at})
        lines.append(
            f"| {step} | {len(at)} | {max(r.actor_gap for r in at):.1e} "
            f"| {np.mean([r.own_tf for r in at]):.3f} | {np.mean([r.own_sb3 for r in at]):.3f} "
            f"| {own.difference:+.3f} [{own.low:+.3f}, {own.high:+.3f}] "
            f"| {np.mean([r.common_tf for r in at]):.3f} | {np.mean([r.common_sb3 for r in at]):.3f} "
            f"| {common.difference:+.3f} [{common.low:+.3f}, {common.high:+.3f}] |")
    return lines


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m ddpg_tf.experiments.lockstep",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--env", default="Hopper-v5", help="Gymnasium env id (actions in [-1, 1])")
    parser.add_argument("--preset", default="td3", help="preset to resolve for the env")
    parser.add_argument("--seeds", default="0-4", help="seeds, like 0-4 or 0,3,7")
    parser.add_argument("--steps", type=int, default=500, help="random steps to play and train over")
    parser.add_argument("--every", type=int, default=100, help="measure every this many steps")
    parser.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE",
                        help="a Config override, as in the experiment runner")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """The command: one row per seed and measurement step, then the summary."""
    args = build_parser().parse_args(argv)
    try:
        if args.steps < 1 or args.every < 1:
            raise UsageError("--steps and --every must be at least 1")
        seeds = parse_seeds(args.seeds)
        overrides = {}
        for item in args.set:
            name, sep, value = item.partition("=")
            if not sep:
                raise UsageError(f"--set needs FIELD=VALUE, got {item!r}")
            overrides[name] = coerce_override(name, value)
        base = preset_config(args.preset, args.env).replace(**overrides)
        configs = [base.replace(seed=seed).validate() for seed in seeds]
    except (UsageError, ConfigError, SpecError) as exc:
        fail(str(exc))
    print("| seed | step | updates | actor gap | critic gap | own: ddpg-tf | own: SB3 | at 13 ln 2: ddpg-tf "
          "| at 13 ln 2: SB3 | median abs z: ddpg-tf | median abs z: SB3 |")
    print("|---" * 11 + "|")

    def show(r: Row) -> None:
        print(f"| {r.seed} | {r.step} | {r.updates} | {r.actor_gap:.1e} | {r.critic_gap:.1e} "
              f"| {r.own_tf:.3f} | {r.own_sb3:.3f} | {r.common_tf:.3f} | {r.common_sb3:.3f} "
              f"| {r.median_tf:.2f} | {r.median_sb3:.2f} |", flush=True)

    rows: list[Row] = []
    try:
        for config in configs:
            rows += run_lockstep(config, args.steps, args.every, show)
    except ImportError:
        fail("lockstep needs the bench extra (SB3 and PyTorch): pip install -e '.[bench]'")
    except (UsageError, ConfigError) as exc:
        fail(str(exc))
    print()
    print("\n".join(summary(rows)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
