"""``python -m ddpg_tf.experiments``: see :mod:`ddpg_tf.experiments`."""

import sys

from ddpg_tf.experiments.run import main

if __name__ == "__main__":
    sys.exit(main())
