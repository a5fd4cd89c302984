"""The reports: what is left out when matplotlib is missing.

The report files themselves are checked on a real experiment in ``test_experiments.py``.
"""

from __future__ import annotations

import sys

from ddpg_tf.experiments.plots import plot_groups
from ddpg_tf.experiments.results import Group


def test_missing_matplotlib_skips_plots_with_a_warning(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # makes `import matplotlib` fail
    group = Group("Pendulum-v1", "pendulum", ("direct",), {"direct": {0: {100: -1.0}, 1: {100: -3.0}}})
    assert plot_groups([group], 1, tmp_path / "plots") is None
    err = capsys.readouterr().err
    assert err.startswith("warning: matplotlib is not installed") and err.count("\n") == 1
    assert not (tmp_path / "plots").exists()
