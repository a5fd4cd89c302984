"""The README's Python example runs as written, on an unregistered custom env, for TD3 and DDPG.

Only sizes are shrunk (steps, networks, episodes) and paths moved to a temporary directory;
each substitution must find its text, so an edit of the README that breaks it fails here.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from tests.test_api import Drift

README = Path(__file__).resolve().parents[1] / "README.md"


def readme_example() -> str:
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), re.S)
    assert blocks, "README.md has no Python example"
    return blocks[0]


@pytest.mark.parametrize("cls", ["TD3", "DDPG"])
def test_readme_python_example_on_a_custom_env(tmp_path, cls):
    code = readme_example()
    small = ("learning_starts=60, actor_hidden=(16,), critic_hidden=(16,), batch_size=16, "
             "progress=False, eval_every=0")
    for old, new in [('gym.make("Pendulum-v1")', "Drift()"), ("learning_starts=1_000", small),
                     ("20_000", "150"), ("episodes=10", "episodes=2"),
                     ('"models/td3-pendulum"', repr(str(tmp_path / "model")))]:
        assert old in code, f"the README example no longer contains {old!r}"
        code = code.replace(old, new)
    code = code.replace("TD3(", f"{cls}(").replace("TD3.load", f"{cls}.load")
    scope = {"Drift": Drift}
    exec(compile(code, "README.md", "exec"), scope)  # noqa: S102  (our own README)
    model = scope["model"]
    assert type(model).__name__ == cls and model.num_timesteps == 150
    action = scope["action"]
    assert action.shape == (2,) and np.all(action >= -2.0) and np.all(action <= 1.0)
    model.learn(50)  # the loaded model continues
    assert model.num_timesteps == 200
