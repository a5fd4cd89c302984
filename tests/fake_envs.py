"""Small environments that DDPG must refuse, registered for ``gym.make("tests.fake_envs:ID")``."""

from __future__ import annotations

import gymnasium as gym
import numpy as np


class _Base(gym.Env):
    def __init__(self, observation_space: gym.Space, action_space: gym.Space) -> None:
        self.observation_space = observation_space
        self.action_space = action_space

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        return self.observation_space.sample(), {}

    def step(self, action):
        return self.observation_space.sample(), 0.0, False, False, {}


def dict_obs() -> gym.Env:
    return _Base(gym.spaces.Dict({"x": gym.spaces.Box(-1, 1, (2,))}), gym.spaces.Box(-1, 1, (1,)))


def image_obs() -> gym.Env:
    return _Base(gym.spaces.Box(0, 255, (32, 32, 3), np.uint8), gym.spaces.Box(-1, 1, (1,)))


def unbounded_actions() -> gym.Env:
    return _Base(gym.spaces.Box(-1, 1, (3,)), gym.spaces.Box(-np.inf, np.inf, (1,)))


def multi_discrete_actions() -> gym.Env:
    return _Base(gym.spaces.Box(-1, 1, (3,)), gym.spaces.MultiDiscrete([3, 3]))


for _name, _factory in [("DictObs-v0", dict_obs), ("ImageObs-v0", image_obs),
                        ("UnboundedActions-v0", unbounded_actions),
                        ("MultiDiscreteActions-v0", multi_discrete_actions)]:
    if _name not in gym.registry:
        gym.register(_name, entry_point=_factory, max_episode_steps=10)
