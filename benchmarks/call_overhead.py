"""Per-call cost of the agent's compiled step through ``ConcreteFunction.__call__`` and through
:func:`ddpg_tf.fast_calls.fast_caller`, measured side by side in one process.

    python benchmarks/call_overhead.py [--env-id Pendulum-v1] [--hidden 64,64] [--batch-size 64]

Both paths call the same traced function (store one packed transition, sample a batch in-graph,
one update, XLA on). Calls alternate between the paths in blocks (A B A B), and the script
prints the median microseconds per call of each and their ratio. The results are identical by
construction; ``tests/test_compiled.py`` pins that.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ddpg_tf._quiet import tf  # noqa: E402
from ddpg_tf.agent import DDPGAgent  # noqa: E402
from ddpg_tf.config import Config  # noqa: E402
from ddpg_tf.envs import make_env, space_dims  # noqa: E402
from ddpg_tf.fast_calls import fast_caller  # noqa: E402
from ddpg_tf.replay_buffer import ReplayBuffer  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--env-id", default="Pendulum-v1")
    parser.add_argument("--hidden", default="64,64")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--calls", type=int, default=500, help="calls per block")
    parser.add_argument("--blocks", type=int, default=6, help="blocks per path, interleaved")
    args = parser.parse_args(argv)
    hidden = tuple(int(h) for h in args.hidden.split(","))
    config = Config(env_id=args.env_id, actor_hidden=hidden, critic_hidden=hidden,
                    batch_size=args.batch_size, buffer_size=100_000, jit_compile=True).validate()
    env = make_env(config.env_id)
    obs_dim, low, high = space_dims(env)
    agent = DDPGAgent(config, obs_dim, low, high)
    buffer = ReplayBuffer(config.buffer_size, obs_dim, len(low), seed=0)
    agent.bind_replay(buffer)
    obs, _ = env.reset(seed=0)
    row = buffer.pack(obs, env.action_space.sample(), 0.0, obs, False, False)[None]
    for _ in range(config.batch_size):
        agent.step(row)
    signature = [tf.TensorSpec(row.shape, buffer.storage.dtype)]

    def store_and_train(rows: tf.Tensor) -> dict[str, tf.Tensor]:  # agent.step(rows, train=True)
        agent.store_in_graph(rows)
        return agent.update_in_graph()

    function = tf.function(store_and_train, input_signature=signature, jit_compile=True)
    concrete = function.get_concrete_function()
    paths = {"ConcreteFunction.__call__": concrete, "fast_caller": fast_caller(concrete, signature)}
    times: dict[str, list[float]] = {name: [] for name in paths}
    for call in paths.values():  # warm-up
        for _ in range(50):
            call(row)
    for _ in range(args.blocks):
        for name, call in paths.items():
            start = time.perf_counter()
            for _ in range(args.calls):
                result = call(row)
            float(result["loss/critic"])
            times[name].append((time.perf_counter() - start) / args.calls * 1e6)
    medians = {name: statistics.median(t) for name, t in times.items()}
    print(f"{config.env_id} {args.hidden} B{config.batch_size}, store + sample + update per call, XLA:")
    for name, us in medians.items():
        print(f"  {name:<26} {us:8.1f} us per call")
    slow, fast = medians["ConcreteFunction.__call__"], medians["fast_caller"]
    print(f"  saved {slow - fast:.1f} us per call ({slow / fast:.2f}x)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
