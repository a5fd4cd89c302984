#!/usr/bin/env python
"""Train DDPG: ``python train.py --help`` lists every flag (generated from ddpg_tf.config.Config)."""

import sys

from ddpg_tf.cli import main

if __name__ == "__main__":
    sys.exit(main())
