"""Pendulum-v1 and MountainCarContinuous-v0 written in TensorFlow, batched, for whole-loop graphs.

The dynamics are gymnasium 1.4.0's (``gymnasium/envs/classic_control/pendulum.py`` and
``continuous_mountain_car.py``, with the registry's 200/999-step time limits); each module's
docstring lists what differs (float rounding only). Two ways to use them:

**Pure functions of tensors** (:mod:`.pendulum`, :mod:`.mountain_car`), for ``tf.function`` and
``tf.while_loop``, ``n`` copies in a batch (PureJaxRL/gymnax style)::

    from ddpg_tf.tf_envs import pendulum
    state, obs = pendulum.reset(seed, n, tf.float32)             # seed: int [2] or tf.random.Generator
    state, obs, reward, terminated, truncated = pendulum.step(state, action)           # action [n, 1]
    state, obs, reward, terminated, truncated, final_obs = pendulum.step_autoreset(state, action, seed)

**Gymnasium environments**, registered when this package is imported::

    ddpg_tf/TFPendulum-v1                 TFPendulumEnv, TimeLimit 200; make_vec: TFPendulumVectorEnv
    ddpg_tf/TFMountainCarContinuous-v0    TFMountainCarContinuousEnv, TimeLimit 999;
                                          make_vec: TFMountainCarContinuousVectorEnv

    import gymnasium as gym
    import ddpg_tf.tf_envs  # registers the ids
    env = gym.make("ddpg_tf/TFPendulum-v1")                      # or, without the import:
    env = gym.make("ddpg_tf.tf_envs:ddpg_tf/TFPendulum-v1")
    envs = gym.make_vec("ddpg_tf/TFPendulum-v1", num_envs=64)    # one compiled call per step,
                                                                 # same-step autoreset
    gym.make("ddpg_tf/TFPendulum-v1", dtype="float32")           # float64 is the default
"""

from __future__ import annotations

import gymnasium as gym

from ddpg_tf.tf_envs import mountain_car, pendulum
from ddpg_tf.tf_envs.core import Seed
from ddpg_tf.tf_envs.gym_api import (
    TFMountainCarContinuousEnv,
    TFMountainCarContinuousVectorEnv,
    TFPendulumEnv,
    TFPendulumVectorEnv,
)

PENDULUM_ID = "ddpg_tf/TFPendulum-v1"
MOUNTAIN_CAR_ID = "ddpg_tf/TFMountainCarContinuous-v0"


def _register() -> None:
    here = "ddpg_tf.tf_envs.gym_api"
    for env_id, name, max_steps, threshold in (
            (PENDULUM_ID, "TFPendulum", 200, None),
            (MOUNTAIN_CAR_ID, "TFMountainCarContinuous", 999, 90.0)):
        if env_id not in gym.registry:
            gym.register(id=env_id, entry_point=f"{here}:{name}Env",
                         vector_entry_point=f"{here}:{name}VectorEnv", max_episode_steps=max_steps,
                         reward_threshold=threshold)


_register()

__all__ = ["MOUNTAIN_CAR_ID", "PENDULUM_ID", "Seed", "TFMountainCarContinuousEnv",
           "TFMountainCarContinuousVectorEnv", "TFPendulumEnv", "TFPendulumVectorEnv", "mountain_car",
           "pendulum"]
