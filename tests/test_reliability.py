"""Reliability: places a run cannot write, a full disk, Ctrl-C and SIGTERM, damaged checkpoints.

Each test pins the outcome: the exception (or exit status) and its one-line message, and the
files of the run directory afterwards. Real filesystems are used where the test can mount one
(a read-only or a tiny tmpfs; skipped where mounting is not allowed); a full disk inside a
checkpoint write is also injected at an exact point (``DDPG_TF_KILL_AT=where:step:ENOSPC``).
Signals are real: a callback or a fault point sends them to this process.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest

from ddpg_tf import DDPG, Callback
from ddpg_tf.checkpointing import Checkpointer
from ddpg_tf.errors import Interrupted, StorageError, UsageError
from tests.test_api import Drift, assert_same, state

ROOT = Path(__file__).resolve().parents[1]
FAST = {"actor_hidden": (16,), "critic_hidden": (16,), "batch_size": 16, "learning_starts": 60,
        "eval_every": 0, "progress": False, "buffer_size": 5_000, "seed": 3, "jit_compile": False,
        "export": False}
TINY = ["--total-steps", "300", "--learning-starts", "100", "--batch-size", "16", "--buffer-size", "500",
        "--actor-hidden", "16", "--critic-hidden", "16", "--eval-every", "0", "--checkpoint-every", "100",
        "--no-progress", "--no-export", "--no-jit-compile"]


def run_cli(args: list[str], cwd: Path, **env_vars: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(ROOT), **env_vars)
    if "DDPG_TF_KILL_AT" not in env_vars:
        env.pop("DDPG_TF_KILL_AT", None)
    return subprocess.run([sys.executable, str(ROOT / "train.py"), *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=300)


def one_line(proc: subprocess.CompletedProcess) -> str:
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr
    return lines[0]


def listed(run_dir: Path) -> list[int]:
    steps, problem = Checkpointer(run_dir, {}, 3).listed_steps()
    assert problem is None
    return steps


def leftovers(run_dir: Path) -> list[str]:
    """Temporary files of writes that did not finish."""
    return sorted(p.name for p in run_dir.rglob(".*")) + sorted(p.name for p in run_dir.rglob("*_temp*"))


@contextmanager
def tmpfs(path: Path, options: str) -> Iterator[Path]:
    """A tmpfs mounted at ``path`` (skips the test where mounting is not allowed)."""
    path.mkdir(parents=True)
    if shutil.which("mount") is None:
        pytest.skip("no mount command")
    proc = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(path)],
                          capture_output=True, text=True)
    if proc.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {proc.stderr.strip()}")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], capture_output=True)


class SignalAt(Callback):
    """Sends ``signum`` to this process ``times`` times after the iteration reaching ``step``."""

    def __init__(self, step: int, signum: int = signal.SIGINT, times: int = 1) -> None:
        self.step, self.signum, self.times = step, signum, times

    def on_step(self, model, info):
        if info.step == self.step:
            assert signal.getsignal(self.signum) not in (signal.SIG_DFL, signal.default_int_handler)
            for _ in range(self.times):
                os.kill(os.getpid(), self.signum)


# --- places it cannot write -------------------------------------------------------------------
def test_an_unwritable_logdir_is_refused_before_tensorflow_starts(tmp_path):
    code = ("import sys, time; t = time.perf_counter(); from ddpg_tf import cli\n"
            "try:\n    cli.main(['--logdir', '/proc/ddpg-tf-test'])\n"
            "except SystemExit as e:\n    code = e.code\n"
            "print(code, 'tensorflow' in sys.modules, f'{time.perf_counter() - t:.3f}')")
    proc = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True,
                          env=dict(os.environ, PYTHONPATH=str(ROOT)), timeout=120)
    status, tensorflow_loaded, seconds = proc.stdout.split()
    assert (status, tensorflow_loaded) == ("2", "False"), proc.stderr
    expected = ("error: cannot write to /proc/ddpg-tf-test/Pendulum-v1__direct__seed1: /proc is not writable "
                "(no such file or directory); choose another --logdir")
    assert proc.stderr.strip() == expected
    print(f"time to the error in-process: {seconds} s")
    assert list(tmp_path.iterdir()) == []


def test_a_read_only_filesystem_is_refused(tmp_path):
    with tmpfs(tmp_path / "ro", "ro,size=1m") as ro:
        proc = run_cli([*TINY, "--logdir", str(ro / "runs")], tmp_path)
        assert proc.returncode == 2
        refused = f"{ro} is not writable (read-only file system); choose another"
        assert one_line(proc).endswith(f"{refused} --logdir")
        with pytest.raises(UsageError, match="\\(read-only file system\\); choose another run_dir"):
            DDPG(Drift(), run_dir=ro / "run", **FAST)
        with pytest.raises(UsageError, match="read-only file system\\); choose another save path"):
            DDPG(Drift(), **FAST).save(ro / "model")
        assert list(ro.iterdir()) == []


def test_a_nearly_full_disk_is_refused_at_the_start(tmp_path):
    with tmpfs(tmp_path / "small", "size=1m") as small:
        proc = run_cli([*TINY, "--logdir", str(small)], tmp_path)
        assert proc.returncode == 2
        assert f"only 1.0 MiB free on {small}, at least 64 MiB needed (DDPG_TF_MIN_FREE_MIB" in one_line(proc)
        with pytest.raises(UsageError, match="only 1.0 MiB free"):
            DDPG(Drift(), run_dir=small / "run", **FAST)
        assert list(small.iterdir()) == []


# --- a full disk while training ---------------------------------------------------------------
class FillDiskAt(Callback):
    """After checkpoint ``step``, fill the disk the run is on."""

    def __init__(self, step: int, filler: Path) -> None:
        self.step, self.filler = step, filler

    def on_checkpoint(self, model, step, path):
        if step == self.step:
            with open(self.filler, "wb") as fh:
                try:
                    while True:
                        fh.write(b"\0" * 65536)
                        fh.flush()
                except OSError:
                    pass


def test_a_full_disk_during_a_checkpoint_keeps_the_previous_one_and_resume_continues(tmp_path, monkeypatch):
    monkeypatch.setenv("DDPG_TF_MIN_FREE_MIB", "1")
    kwargs = {**FAST, "checkpoint_every": 40}
    with tmpfs(tmp_path / "disk", "size=4m") as disk:
        run = disk / "run"
        model = DDPG(Drift(), run_dir=run, **kwargs)
        with pytest.raises(StorageError) as info:
            model.learn(120, callbacks=[FillDiskAt(40, disk / "filler")])
        message = str(info.value)
        assert message.startswith(f"cannot write {run}/checkpoints/")
        assert "(no space left on device); " in message
        assert message.endswith("checkpoint 40 is intact: free some space, then resume to continue from it")
        assert model.num_timesteps == 80 and listed(run) == [40]
        assert sorted(p.name for p in (run / "checkpoints").iterdir()) == [
            "buffer-40.npz", "checkpoint", "ckpt-40.data-00000-of-00001", "ckpt-40.index", "extras-40.json"]
        assert leftovers(run) == []
        (disk / "filler").unlink()
        resumed = DDPG.load(run, env=Drift(), run_dir=run)
        assert resumed.num_timesteps == 40
        resumed.learn(80)
        assert listed(run) == [40, 80, 120]
    reference = DDPG(Drift(), run_dir=tmp_path / "reference", **kwargs).learn(120)
    assert_same(state(resumed), state(reference))


def test_a_full_disk_inside_a_cli_checkpoint_write_stops_with_the_resume_command(tmp_path):
    proc = run_cli([*TINY, "--logdir", str(tmp_path / "runs"), "--run-name", "r"], tmp_path,
                   DDPG_TF_KILL_AT="buffer:200:ENOSPC")
    run = tmp_path / "runs" / "r"
    assert proc.returncode == 1
    assert one_line(proc) == (
        f"error: cannot write {run}/checkpoints/buffer-200.npz (no space left on device); checkpoint 100 is "
        f"intact: free some space, then resume to continue from it; continue with: python "
        f"{ROOT / 'train.py'} --logdir {tmp_path / 'runs'} --run-name r --resume")
    assert listed(run) == [100] and leftovers(run) == []
    assert not (run / "checkpoints" / "extras-200.json").exists()
    from ddpg_tf import cli

    assert cli.main(["--logdir", str(tmp_path / "runs"), "--run-name", "r", "--resume"]) == 0
    assert listed(run) == [100, 200, 300]


def test_a_full_disk_during_the_export_keeps_the_checkpoint(tmp_path, monkeypatch):
    run = tmp_path / "run"
    model = DDPG(Drift(), run_dir=run, **{**FAST, "export": True, "checkpoint_every": 40})
    monkeypatch.setenv("DDPG_TF_KILL_AT", "export:*:ENOSPC")
    with pytest.raises(StorageError) as info:
        model.learn(40)
    assert str(info.value) == (f"cannot write {run}/export/actor.keras (no space left on device); the "
                               "checkpoints are complete: free some space, then resume (or save again) to "
                               "write the export")
    assert listed(run) == [40] and leftovers(run) == [] and list((run / "export").iterdir()) == []
    monkeypatch.delenv("DDPG_TF_KILL_AT")
    model.learn(0)  # writes the export
    assert sorted(p.name for p in (run / "export").iterdir()) == ["actor.keras", "actor_savedmodel"]


def test_a_full_disk_during_save_keeps_the_earlier_save(tmp_path, monkeypatch):
    model = DDPG(Drift(), **FAST).learn(40)
    model.save(tmp_path / "m")
    model.learn(40)
    monkeypatch.setenv("DDPG_TF_KILL_AT", "extras:80:ENOSPC")
    with pytest.raises(StorageError, match="extras-80.json \\(no space left on device\\); checkpoint 40 is"):
        model.save(tmp_path / "m")
    monkeypatch.delenv("DDPG_TF_KILL_AT")
    assert listed(tmp_path / "m") == [40] and leftovers(tmp_path / "m") == []
    assert DDPG.load(tmp_path / "m", env=Drift()).num_timesteps == 40


# --- Ctrl-C and SIGTERM through the Python API ---------------------------------------------------
def test_ctrl_c_saves_the_step_reached_and_continuing_is_exact(tmp_path):
    """Stopped at step 150 (between checkpoints at 100 and 200): the checkpoint of step 150 holds
    everything, so continuing in memory or after load equals a run with a checkpoint at 150."""
    kwargs = {**FAST, "checkpoint_every": 100}
    before = signal.getsignal(signal.SIGINT)
    model = DDPG(Drift(), run_dir=tmp_path / "a", **kwargs)
    with pytest.raises(Interrupted) as info:
        model.learn(300, callbacks=[SignalAt(149)])
    stop = info.value
    assert isinstance(stop, KeyboardInterrupt)
    assert (stop.signum, stop.step, stop.exit_status) == (signal.SIGINT, 150, 130)
    assert str(stop) == (f"interrupted by SIGINT at step 150; checkpoint {tmp_path}/a/checkpoints/ckpt-150 "
                         "is complete")
    assert signal.getsignal(signal.SIGINT) is before
    assert listed(tmp_path / "a") == [100, 150] and leftovers(tmp_path / "a") == []
    loaded = DDPG.load(tmp_path / "a", env=Drift(), run_dir=tmp_path / "a2")  # same checkpoint schedule
    model.learn(150)
    loaded.learn(150)
    reference = DDPG(Drift(), run_dir=tmp_path / "b", **kwargs).learn(150).learn(150)
    assert_same(state(model), state(reference))
    assert_same(state(loaded), state(reference))


def test_ctrl_c_without_a_run_dir_writes_nothing_and_continuing_is_as_if_uninterrupted(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    model = DDPG(Drift(), **FAST)
    with pytest.raises(Interrupted) as info:
        model.learn(300, callbacks=[SignalAt(149)])
    assert str(info.value) == ("interrupted by SIGINT at step 149; this model has no run_dir, so nothing was "
                               "written: learn() continues from here, save() keeps it")
    model.learn(151)
    assert_same(state(model), state(DDPG(Drift(), **FAST).learn(300)))
    assert list(tmp_path.iterdir()) == []


def test_sigterm_stops_like_ctrl_c_and_the_previous_handlers_come_back(tmp_path):
    seen: list[int] = []

    def mine(signum, frame):
        seen.append(signum)

    previous = signal.signal(signal.SIGTERM, mine)
    try:
        model = DDPG(Drift(), run_dir=tmp_path / "run", **{**FAST, "checkpoint_every": 100})
        with pytest.raises(Interrupted) as info:
            model.learn(200, callbacks=[SignalAt(119, signal.SIGTERM)])
        assert (info.value.signum, info.value.step, info.value.exit_status) == (signal.SIGTERM, 120, 143)
        assert signal.getsignal(signal.SIGTERM) is mine and seen == []
        model.learn(80)  # a normal learn restores them too
        assert signal.getsignal(signal.SIGTERM) is mine
    finally:
        signal.signal(signal.SIGTERM, previous)
    assert listed(tmp_path / "run") == [100, 120, 200]


def test_a_second_ctrl_c_during_the_checkpoint_waits_for_it(tmp_path, monkeypatch):
    monkeypatch.setenv("DDPG_TF_KILL_AT", "before-checkpoint:150:SIGINT")
    model = DDPG(Drift(), run_dir=tmp_path / "run", **{**FAST, "checkpoint_every": 100})
    with pytest.raises(Interrupted, match="at step 150; checkpoint .*ckpt-150 is complete$"):
        model.learn(300, callbacks=[SignalAt(149)])
    checkpointer = Checkpointer(tmp_path / "run", {}, 3)
    assert checkpointer.listed_steps() == ([100, 150], None) and checkpointer.verify(150) is None


def test_a_second_ctrl_c_outside_a_write_stops_at_once(tmp_path):
    model = DDPG(Drift(), run_dir=tmp_path / "run", **{**FAST, "checkpoint_every": 100})
    with pytest.raises(Interrupted) as info:
        model.learn(300, callbacks=[SignalAt(149, times=2)])
    assert str(info.value) == ("stopped at once by a second SIGINT (nothing saved for this stop; the last "
                               "checkpoint is kept)")
    assert info.value.exit_status == 130
    assert listed(tmp_path / "run") == [100] and leftovers(tmp_path / "run") == []


def test_learn_outside_the_main_thread_installs_no_handlers():
    seen, before = [], signal.getsignal(signal.SIGINT)

    class Look(Callback):
        def on_step(self, model, info):
            seen.append(signal.getsignal(signal.SIGINT))

    thread = threading.Thread(target=lambda: DDPG(Drift(), **FAST).learn(3, callbacks=[Look()]))
    thread.start()
    thread.join()
    assert seen == [before] * 3


def test_save_outside_learn_finishes_its_files_before_a_ctrl_c_lands(tmp_path, monkeypatch):
    model = DDPG(Drift(), **FAST).learn(40)
    monkeypatch.setenv("DDPG_TF_KILL_AT", "before-checkpoint:40:SIGINT")
    with pytest.raises(KeyboardInterrupt):
        model.save(tmp_path / "m")
    monkeypatch.delenv("DDPG_TF_KILL_AT")
    assert listed(tmp_path / "m") == [40] and (tmp_path / "m" / "export" / "actor.keras").is_file()
    assert_same(state(DDPG.load(tmp_path / "m", env=Drift())), state(model))


def test_sigterm_while_train_py_starts_exits_143_with_nothing_written(tmp_path):
    proc = run_cli([*TINY, "--logdir", str(tmp_path / "runs")], tmp_path, DDPG_TF_KILL_AT="start:*:SIGTERM")
    assert proc.returncode == 143
    assert one_line(proc) == "interrupted by SIGTERM before training started; nothing was written"
    assert list(tmp_path.iterdir()) == []


# --- continuing from an earlier checkpoint ----------------------------------------------------------
@pytest.fixture
def drift_run(tmp_path) -> tuple[Path, DDPG]:
    """A run with checkpoints 40, 80, 120, and the model that wrote it."""
    model = DDPG(Drift(), run_dir=tmp_path / "run", **{**FAST, "checkpoint_every": 40})
    return tmp_path / "run", model.learn(120)


def _scramble(path: Path) -> None:
    raw = bytearray(path.read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    path.write_bytes(bytes(raw))


def test_loading_an_earlier_step_moves_the_later_checkpoints_aside(drift_run):
    run, model = drift_run
    damaged = run / "checkpoints" / "ckpt-120.data-00000-of-00001"
    _scramble(damaged)
    damaged_bytes = damaged.read_bytes()
    resumed = DDPG.load(run, env=Drift(), run_dir=run, step=80)
    assert resumed.num_timesteps == 80
    moved = run / "checkpoints" / "moved" / "after-80"
    assert sorted(p.name for p in moved.iterdir()) == [
        "buffer-120.npz", "ckpt-120.data-00000-of-00001", "ckpt-120.index", "extras-120.json"]
    assert (moved / damaged.name).read_bytes() == damaged_bytes  # kept as it was
    assert listed(run) == [40, 80]
    resumed.learn(40)
    assert listed(run) == [40, 80, 120]
    assert_same(state(resumed), state(model))  # checkpoint 80 continued is the original run


def test_resume_from_on_the_command_line_continues_from_the_intact_checkpoint(tmp_path):
    """train.py's --resume and --resume-from, in this process (TensorFlow is loaded already)."""
    from ddpg_tf import cli

    if "DriftForResume-v0" not in gym.registry:
        gym.register("DriftForResume-v0", entry_point=Drift)
    run = tmp_path / "run"
    DDPG("DriftForResume-v0", run_dir=run, **{**FAST, "checkpoint_every": 40}).learn(120)
    _scramble(run / "checkpoints" / "ckpt-120.data-00000-of-00001")
    args = ["--logdir", str(tmp_path), "--run-name", "run", "--resume", "--total-steps", "160"]
    with pytest.raises(SystemExit) as exit_info:
        cli.main(args)
    assert exit_info.value.code == 2 and listed(run) == [40, 80, 120]
    assert cli.main([*args, "--resume-from", "80"]) == 0
    assert listed(run) == [80, 120, 160]
    assert (run / "checkpoints" / "moved" / "after-80" / "ckpt-120.index").is_file()


def test_a_missing_buffer_can_be_skipped_with_save_buffer_false(drift_run):
    run, _ = drift_run
    (run / "checkpoints" / "buffer-120.npz").unlink()
    model = DDPG.load(run, env=Drift(), save_buffer=False)
    assert model.num_timesteps == 120 and len(model.agent.replay) == 0
    model.learn(80)
    assert model.num_timesteps == 200 and np.all(np.isfinite(model.predict(np.zeros(3))))


def test_a_damaged_list_of_checkpoints_is_rewritten_when_a_step_is_chosen(drift_run):
    run, _ = drift_run
    (run / "checkpoints" / "checkpoint").write_text("garbage")
    model = DDPG.load(run, env=Drift(), run_dir=run, step=120)
    assert listed(run) == [40, 80, 120]
    model.learn(40)
    assert listed(run) == [80, 120, 160]
