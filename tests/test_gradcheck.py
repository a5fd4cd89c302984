"""``python -m ddpg_tf.gradcheck``: four ways to the actor gradient agree, in numbers.

Criteria (the command's own): float64 max abs diff from ``direct`` < 1e-10; float32 max rel
diff < 1e-5, rel = max over weight tensors of max|g - d| / max|d|.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from ddpg_tf import gradcheck, losses, networks
from ddpg_tf._quiet import tf

ROOT = Path(__file__).resolve().parents[1]
SMALL = dict(obs_dim=3, actor_hidden=(16, 16), critic_hidden=(16, 16), batch_size=8,
             dtypes=("float32", "float64"), seed=3)
SMALL_ARGV = ["--obs-dim", "3", "--action-dim", "2", "--actor-hidden", "16,16",
              "--critic-hidden", "16,16", "--batch-size", "4", "--repeats", "2"]


def run_cli(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return subprocess.run([sys.executable, "-m", "ddpg_tf.gradcheck", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=120)


def table_rows(text: str) -> list[list[str]]:
    """The printed table's rows, split into words: way, dtype, ..., ok/FAIL."""
    rows = [line.split() for line in text.splitlines()]
    return [r for r in rows if len(r) > 2 and r[0] in gradcheck.WAY_NAMES and r[1] in gradcheck.DTYPES]


@pytest.mark.parametrize("action_dim,critic_action_layer", [(1, 0), (3, 1)])
def test_every_way_agrees_with_direct(action_dim, critic_action_layer):
    results = gradcheck.run_gradcheck(action_dim=action_dim, critic_action_layer=critic_action_layer,
                                      repeats=2, **SMALL)
    assert [(r["dtype"], r["way"]) for r in results] == [
        (d, w) for d in ("float32", "float64") for w in gradcheck.WAY_NAMES]
    for r in results:
        what = f"{r['way']} {r['dtype']}"
        assert r["ok"], what
        assert r["grad_norm"] > 1e-6, what  # a real gradient, not zeros
        assert r["cosine"] > 1.0 - 1e-9, what
        if r["dtype"] == "float64":
            assert r["max_abs_diff"] < 1e-10, what
        else:
            assert r["max_rel_diff"] < 1e-5, what
        assert r["ms_per_call"] > 0.0, what
        assert r["params"] == 3 * 16 + 16 + 16 * 16 + 16 + 16 * action_dim + action_dim
        assert r["jacobian_numbers"] == 8 * action_dim * r["params"]
    # The float32 and float64 networks hold the same weights (cast), so their gradients agree
    # to float32 precision as well.
    norms = {r["dtype"]: r["grad_norm"] for r in results if r["way"] == "direct"}
    assert abs(norms["float32"] - norms["float64"]) < 1e-5 * norms["float64"]


def _scaled_nets(action_dim: int, dtype: str = "float64"):
    low, high = -np.ones(action_dim), np.ones(action_dim)
    actor = networks.build_actor(3, low, high, (16, 16), seed=5, dtype=dtype)
    critic = networks.build_critic(3, action_dim, (16, 16), action_layer=1, seed=9, dtype=dtype)
    # Larger final layers: gradients of order 1e-2..1 rather than 1e-6.
    for model in (actor, critic):
        for v in model.trainable_variables:
            if v.path.startswith(("pre_action", "q/")):
                v.assign(v * 50.0)
    obs = tf.constant(np.random.default_rng(2).normal(size=(8, 3)), dtype)
    return actor, critic, obs


def test_jacobian_way_equals_direct_in_float64():
    actor, critic, obs = _scaled_nets(action_dim=3)
    jac = gradcheck.actor_grads_jacobian(actor, critic, obs)
    direct = losses.actor_grads_direct(actor, critic, obs).grads
    for v, gj, gd in zip(actor.trainable_variables, jac, direct, strict=True):
        assert gj.shape == v.shape and gj.dtype == v.dtype
        assert float(np.max(np.abs(gd))) > 1e-4, v.path
        assert float(np.max(np.abs(gj - gd))) < 1e-10, v.path


def test_the_multiplication_is_a_contraction_not_an_outer_product():
    """Per sample, dQ/da (A,) times dmu/dtheta (A, |w|) contracted over A is the gradient; an
    outer product (A x A x |w|) summed over both action axes is not."""
    actor, critic, obs = _scaled_nets(action_dim=3)
    variables = actor.trainable_variables
    with tf.GradientTape() as tape:
        actions = actor(obs, training=True)
    jacobians = tape.jacobian(actions, variables)
    dq_da, _ = losses.dqda(critic, obs, actions)
    g, n = dq_da.numpy(), 8.0
    direct = losses.actor_grads_direct(actor, critic, obs).grads
    worst_outer = 0.0
    for var, jac, gd in zip(variables, jacobians, direct, strict=True):
        j = jac.numpy().reshape(8, 3, -1)
        assert j.shape[2] == int(np.prod(var.shape))
        contraction = -np.einsum("na,nap->p", g, j) / n
        outer = -np.einsum("na,nbp->p", g, j) / n  # every dQ/da_a times every dmu_b/dtheta
        ref = gd.numpy().reshape(-1)
        assert np.max(np.abs(contraction - ref)) < 1e-10, var.path
        worst_outer = max(worst_outer, float(np.max(np.abs(outer - ref)) / np.max(np.abs(ref))))
    assert worst_outer > 1e-2


def test_power_of_two_batch_gives_bit_identical_chain_rule_and_surrogate():
    """Observed (not guaranteed by TensorFlow): dividing by N = 2^k is exact, so direct,
    chain-rule and surrogate produce the very same bits; the jacobian way sums in another
    order and does not."""
    results = gradcheck.run_gradcheck(action_dim=2, measure=False, **SMALL)
    for r in results:
        if r["way"] in ("chain-rule", "surrogate"):
            assert r["bit_identical"], f"{r['way']} {r['dtype']}: {r['max_abs_diff']:.3e}"


def test_cli_runs_and_prints_all_four_ways(tmp_path):
    out = tmp_path / "gradcheck.json"
    proc = run_cli([*SMALL_ARGV, "--json", str(out)], tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    rows = table_rows(proc.stdout)
    assert sorted((row[0], row[1]) for row in rows) == sorted(
        (w, d) for w in gradcheck.WAY_NAMES for d in ("float32", "float64"))
    assert all(row[-1] == "ok" for row in rows if row[0] != "direct")
    assert "all ways agree with direct within tolerance" in proc.stdout
    assert "float64 max abs diff < 1e-10" in proc.stdout and "float32 max rel diff < 1e-05" in proc.stdout
    payload = json.loads(out.read_text())
    assert len(payload["results"]) == 8
    assert all(r["ok"] for r in payload["results"])
    assert payload["tolerances"] == {"float64_max_abs_diff": 1e-10, "float32_max_rel_diff": 1e-5}


BAD = [
    (["--batch-size", "0"], "--batch-size must be a positive integer"),
    (["--env", "CartPole-v1"], "Discrete action space"),
    (["--env", "Pendulum-v1", "--obs-dim", "3", "--action-dim", "1"], "exactly one of"),
    (["--obs-dim", "3"], "--obs-dim and --action-dim go together"),
    (["--obs-dim", "3", "--action-dim", "1", "--actor-hidden", "16,x"], "expected layer sizes"),
    (["--obs-dim", "3", "--action-dim", "1", "--critic-hidden", "16", "--critic-action-layer", "1"],
     "--critic-action-layer 1 must be in 0..0"),
    (["--dtype", "float16"], "invalid choice"),
    (["--checkpoint", "no/such/run"], "no config.json"),
    (["--checkpoint", "somewhere", "--actor-hidden", "8"], "cannot be combined with --checkpoint"),
    (["--json", "no/such/dir/out.json"], "does not exist"),
]


@pytest.mark.parametrize("args,fragment", BAD, ids=[" ".join(a) for a, _ in BAD])
def test_bad_input_exits_2_with_one_line(tmp_path, args, fragment):
    proc = run_cli(args, tmp_path)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert fragment in lines[0], lines[0]
    assert not list(tmp_path.iterdir())


def test_a_wrong_gradient_makes_exit_status_1(monkeypatch, capsys):
    right = gradcheck.WAYS["chain-rule"]
    monkeypatch.setitem(gradcheck.WAYS, "chain-rule",
                        lambda actor, critic, obs: [2.0 * g for g in right(actor, critic, obs)])
    assert gradcheck.main(SMALL_ARGV) == 1
    out = capsys.readouterr().out
    assert "DISAGREE beyond tolerance: chain-rule (float32), chain-rule (float64)" in out
    rows = table_rows(out)
    assert len(rows) == 8
    assert [row[-1] for row in rows if row[0] == "chain-rule"] == ["FAIL", "FAIL"]
    assert [row[-1] for row in rows if row[0] in ("jacobian", "surrogate")] == ["ok"] * 4


def test_checkpoint_networks_are_restored_and_checked(tmp_path):
    from ddpg_tf.agent import DDPGAgent
    from ddpg_tf.checkpointing import Checkpointer
    from ddpg_tf.config import Config

    config = Config(actor_hidden=(16, 16), critic_hidden=(16, 16), critic_action_layer=1,
                    batch_size=8, buffer_size=100).validate()
    agent = DDPGAgent(config.replace(eager=True), 3, np.array([-2.0]), np.array([2.0]))
    for model in (agent.actor, agent.critic):  # weights no fresh network would have
        for v in model.trainable_variables:
            v.assign(v * 1.5 + 0.01)
    saved = [v.numpy() for v in agent.actor.trainable_variables + agent.critic.trainable_variables]
    (tmp_path / "config.json").write_text(config.to_json())
    Checkpointer(tmp_path, agent.trackables(), 1).save(step=7, episode=0, extras={})

    _, dtype, env, actor, critic = gradcheck.load_checkpoint_networks(tmp_path)
    env.close()
    assert dtype == "float32"
    restored = [v.numpy() for v in actor.trainable_variables + critic.trainable_variables]
    assert all(np.array_equal(a, b) for a, b in zip(saved, restored, strict=True))

    results = gradcheck.run_gradcheck(checkpoint=tmp_path, batch_size=8, measure=False)
    assert len(results) == 8 and all(r["ok"] for r in results)
    assert "Pendulum-v1" in results[0]["observations"]
    assert results[0]["net"]["critic_action_layer"] == 1
