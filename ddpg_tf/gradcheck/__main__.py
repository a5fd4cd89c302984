"""``python -m ddpg_tf.gradcheck``: see :mod:`ddpg_tf.gradcheck`."""

import sys

from ddpg_tf.gradcheck.cli import main

if __name__ == "__main__":
    sys.exit(main())
