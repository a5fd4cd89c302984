"""ddpg-tf: DDPG (Lillicrap et al. 2015) in TensorFlow 2 / Keras 3, with both actor-update styles.

The package is importable without TensorFlow being loaded; modules that need it import it
through :mod:`ddpg_tf._quiet`.
"""

__version__ = "0.1.0"
