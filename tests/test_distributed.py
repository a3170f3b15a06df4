"""Real multi-process runs: 2 processes x 2 CPU devices joined by
jax.distributed (gloo collectives) train like 1 process x 4 devices.

Also scripts/local_processes.py's failure handling.
"""

import json
import os
import re
import signal
import stat
import subprocess
import sys
import time

import pytest

from scripts import local_processes
from tests.train.conftest import as_flags, tiny_overrides

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NUM_STEPS = 3

# The per-step training loss of 2 processes x 2 devices against 1 process x
# 4 devices: both use a mesh of 4 devices, each device holding the same rows
# of the same global batch (mmjax.data.pipeline.train_batches), so only the
# cross-device reductions (gloo's all-reduce against the in-process one)
# may sum in another order. Measured max relative difference over steps
# 1-3: 0 (bitwise equal losses; 2026-11-27, this 2-core machine, tiny
# config). Parameters after step 2 differ by at most 1.5e-8 (1 vs 4 devices
# in one process: 6e-8); step 3's update amplifies that in a few image
# encoder weights (2.5e-4, as much as 1 vs 4 devices in one process do), so
# the losses of later steps drift apart by more (see tests/test_parallel.py).
# 1e-5, as there: a wrong gradient all-reduce, or batches that differ
# between the runs, change the loss in the 2nd-3rd digit.
LOSS_RTOL = 1e-5


def _env():
  env = dict(os.environ, JAX_PLATFORMS="cpu")
  # Devices come from --cpu_devices, not from a forced host device count.
  flags = [f for f in env.get("XLA_FLAGS", "").split()
           if "xla_force_host_platform_device_count" not in f]
  env["XLA_FLAGS"] = " ".join(flags)
  return env


def _launch_args(workdir, data_dir):
  overrides = dict(tiny_overrides(), num_train_steps=NUM_STEPS,
                   log_every_steps=1, eval_every_steps=100,
                   checkpoint_every_steps=100,
                   eval_splits="('validation',)")
  overrides["data.data_dir"] = str(data_dir)
  return ["--config", "configs/av_digits.py", "--workdir", str(workdir),
          *as_flags(overrides)]


def _read_run(workdir):
  lines = [json.loads(l) for l in
           (workdir / "metrics.jsonl").read_text().splitlines()]
  return lines, json.loads((workdir / "run_info.json").read_text())


def test_two_processes_train_like_one(prepared_data_dir, tmp_path):
  one_dir, two_dir = tmp_path / "1x4", tmp_path / "2x2"
  # Both runs at once: the 2-core machine idles less (each run waits on
  # compilation and collectives).
  t0 = time.perf_counter()
  two = subprocess.Popen(
      [sys.executable, "scripts/local_processes.py", "--num_processes=2",
       "--cpu_devices=2", "--", *_launch_args(two_dir, prepared_data_dir)],
      cwd=REPO_ROOT, env=_env(), stdout=subprocess.PIPE,
      stderr=subprocess.STDOUT, text=True)
  one = subprocess.run(
      [sys.executable, "launch.py", "--cpu_devices=4",
       *_launch_args(one_dir, prepared_data_dir)],
      cwd=REPO_ROOT, env=_env(), capture_output=True, text=True, timeout=300)
  try:
    two_out, _ = two.communicate(timeout=300)
  finally:
    two.kill()
  print(f"1x4 and 2x2 runs: {time.perf_counter() - t0:.0f} s")
  assert one.returncode == 0, one.stderr[-3000:]
  assert two.returncode == 0, two_out[-5000:]

  one_lines, one_info = _read_run(one_dir)
  two_lines, two_info = _read_run(two_dir)
  assert (one_info["processes"], one_info["devices"]) == (1, 4)
  assert (two_info["processes"], two_info["devices"]) == (2, 4)
  # Written by process 0 only: one line per step, one final evaluation.
  assert [(r["step"], r["split"]) for r in two_lines] == [
      (1, "train"), (2, "train"), (3, "train"), (3, "final_validation")]
  one_train = {r["step"]: r for r in one_lines if r["split"] == "train"}
  two_train = {r["step"]: r for r in two_lines if r["split"] == "train"}
  print("max relative loss difference, 2x2 vs 1x4:", max(
      abs(two_train[s]["loss"] / one_train[s]["loss"] - 1) for s in one_train))
  for step in one_train:
    assert two_train[step]["loss"] == pytest.approx(
        one_train[step]["loss"], rel=LOSS_RTOL), step
  assert one_train[3]["loss"] != one_train[1]["loss"]
  assert "Data ready" in two_out and "[1] Data ready" not in two_out
  assert len(list((two_dir / "tensorboard" / "train").iterdir())) == 1
  results = json.loads((two_dir / "results.json").read_text())
  assert results["validation"]["num_examples"] == 1000
  assert json.loads((two_dir / "config.json").read_text())["batch_size"] == 32

  # One checkpoint, written once by both processes together, readable by
  # a single process; the same tree as the 1-process run's.
  from mmjax import checkpoint  # pylint: disable=g-import-not-at-top
  import jax  # pylint: disable=g-import-not-at-top
  assert sorted(p.name for p in (two_dir / "checkpoints").iterdir()) == ["3"]
  step, tree = checkpoint.restore_latest_tree(two_dir / "checkpoints")
  _, one_tree = checkpoint.restore_latest_tree(one_dir / "checkpoints")
  assert step == 3 and int(tree["step"]) == 3
  assert (jax.tree.map(lambda x: x.shape, tree)
          == jax.tree.map(lambda x: x.shape, one_tree))


def test_sigterm_to_one_process_saves_the_same_step_on_all(
    prepared_data_dir, tmp_path):
  """SIGTERM to process 1 only: through JAX's preemption service both
  processes stop after the same step, save its checkpoint together and exit
  with 75."""
  workdir, address = tmp_path / "run", f"localhost:{local_processes.free_port()}"
  args = _launch_args(workdir, prepared_data_dir)
  args = [a for a in args if "num_train_steps" not in a
          and "checkpoint_every_steps" not in a] + [
      "--config.num_train_steps=400", "--config.checkpoint_every_steps=400"]
  logs = [open(tmp_path / f"{i}.log", "w") for i in range(2)]
  procs = [subprocess.Popen(
      [sys.executable, "launch.py", f"--coordinator_address={address}",
       "--num_processes=2", f"--process_id={i}", "--cpu_devices=2", *args],
      cwd=REPO_ROOT, env=_env(), stdout=logs[i], stderr=subprocess.STDOUT)
      for i in range(2)]
  try:
    metrics = workdir / "metrics.jsonl"
    deadline = time.monotonic() + 240
    while not (metrics.exists() and len(metrics.read_text().splitlines()) >= 3):
      assert time.monotonic() < deadline and procs[0].poll() is None, (
          (tmp_path / "0.log").read_text()[-3000:])
      time.sleep(0.2)
    procs[1].send_signal(signal.SIGTERM)
    codes = [p.wait(timeout=120) for p in procs]
  finally:
    for p in procs:
      p.kill()
    for log in logs:
      log.close()
  outputs = [(tmp_path / f"{i}.log").read_text() for i in range(2)]
  assert codes == [75, 75], outputs[1][-3000:]
  saved = [re.search(r"saved the checkpoint of step (\d+)", o) for o in outputs]
  assert all(saved), outputs
  step = int(saved[0].group(1))
  assert int(saved[1].group(1)) == step and 3 <= step < 400
  assert sorted(p.name for p in (workdir / "checkpoints").iterdir()) == [str(step)]


def test_launcher_stops_every_process_when_one_fails(tmp_path):
  """Process 1 fails at once; process 0 (which would wait forever in a
  collective) is terminated and the launcher returns process 1's status."""
  fake_python = tmp_path / "python"
  fake_python.write_text(
      "#!/bin/sh\n"
      'case "$*" in *--process_id=1*) echo "bad flag"; exit 3;; esac\n'
      "exec sleep 600\n")
  fake_python.chmod(fake_python.stat().st_mode | stat.S_IXUSR)
  t0 = time.perf_counter()
  status = local_processes.run(2, 1, ["--workdir", "w"],
                               python=str(fake_python))
  assert status == 3
  assert time.perf_counter() - t0 < 30
