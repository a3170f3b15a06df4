"""Data parallelism: the mesh, global batches, and 1 vs 8 devices."""

import json
import os
import pathlib
import subprocess
import sys

import jax
import numpy as np
import pytest

from mmjax import parallel
from tests.train.conftest import as_flags, tiny_overrides
from tests.conftest import xla_flags

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_mesh_and_global_batch():
  mesh = parallel.make_mesh()
  assert mesh.axis_names == ("data",) and mesh.size == jax.device_count()
  batch = parallel.to_global({"x": np.arange(8.0).reshape(8, 1)}, mesh)
  assert batch["x"].shape == (8, 1)
  assert batch["x"].sharding == parallel.data_sharding(mesh)
  np.testing.assert_array_equal(batch["x"], np.arange(8.0).reshape(8, 1))


def test_make_mesh_fsdp_must_divide_the_devices():
  fsdp = jax.device_count() + 1
  with pytest.raises(ValueError, match=f"config.sharding.fsdp={fsdp} .* divide"):
    parallel.make_mesh(fsdp)


class FakeDevice:
  """What mesh_utils reads of a device: id, platform, kind and slice."""

  def __init__(self, id_, slice_index):
    self.id, self.slice_index, self.process_index = id_, slice_index, id_ // 4
    self.platform, self.device_kind = "cpu", "cpu"

  def __repr__(self):
    return f"D{self.id}@{self.slice_index}"


def test_multi_slice_grid_puts_slices_along_data():
  # 2 slices of 4 devices, listed interleaved: fsdp (size 2) must stay
  # inside a slice, and each slice must hold a contiguous half of `data`.
  devices = [FakeDevice(i, i % 2) for i in range(8)]
  grid = parallel.device_grid((4, 2), devices)
  slice_of = np.vectorize(lambda d: d.slice_index)(grid)
  np.testing.assert_array_equal(slice_of, [[0, 0], [0, 0], [1, 1], [1, 1]])
  assert sorted(d.id for d in grid.ravel()) == list(range(8))
  one_slice = parallel.device_grid((8,), [FakeDevice(i, 0) for i in range(8)])
  assert [d.id for d in one_slice] == list(range(8))
  with pytest.raises(ValueError, match="multiple of the number of TPU slices"):
    parallel.device_grid((3, 1), [FakeDevice(i, i % 2) for i in range(3)])


def test_device_prefetcher_keeps_order_and_places_batches():
  mesh = parallel.make_mesh()
  host = [{"x": np.full((8, 2), i, np.float32)} for i in range(5)]
  consumed = []

  def source():
    for i, b in enumerate(host):
      consumed.append(i)
      yield b

  stream = parallel.DevicePrefetcher(source(), mesh, size=2)
  first = next(stream)
  assert consumed == [0, 1, 2]  # the next 2 batches are already on the way
  # ... and are what a checkpoint of the input position must hold.
  assert [int(b["x"][0, 0]) for b in stream.pending()] == [1, 2]
  got = [first] + list(stream)
  assert [int(b["x"][0, 0]) for b in got] == [0, 1, 2, 3, 4]
  assert all(b["x"].sharding == parallel.data_sharding(mesh) for b in got)


@pytest.mark.parametrize("batch_sizes,num_processes,cores,expected", [
    ((64, 200), 1, 2, 4),  # 2 devices per core
    ((64, 200), 1, 4, 8),
    ((64, 200), 1, 1, 2),
    ((12, 200), 1, 4, 4),  # 8, 7, 6 and 5 do not divide both
    ((64, 200), 2, 2, 4),  # 4 devices x 2 processes = 8 divides both
    ((6,), 1, 2, 3),
    ((7,), 1, 2, 1),
])
def test_default_cpu_device_count(batch_sizes, num_processes, cores,
                                  expected):
  assert parallel.default_cpu_device_count(
      batch_sizes, num_processes, cores) == expected


def test_default_cpu_device_count_without_an_affinity_call(monkeypatch):
  # macOS has no os.sched_getaffinity: the count follows os.cpu_count().
  monkeypatch.delattr(os, "sched_getaffinity", raising=False)
  monkeypatch.setattr(os, "cpu_count", lambda: 3)
  assert parallel.default_cpu_device_count((60,)) == 6


@pytest.mark.parametrize("batch_sizes,xla_flags,expected", [
    ((64, 200), "", None),  # default_cpu_device_count on this machine
    ((64, 200), "--xla_force_host_platform_device_count=3", 3),  # respected
])
def test_configure_cpu_devices(batch_sizes, xla_flags, expected):
  if expected is None:
    expected = parallel.default_cpu_device_count(batch_sizes)
  code = ("import jax; from mmjax import parallel; "
          f"parallel.configure_cpu_devices(None, {batch_sizes}); "
          "print(jax.device_count())")
  env = dict(os.environ, XLA_FLAGS=xla_flags, JAX_PLATFORMS="cpu")
  out = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, env=env,
                       capture_output=True, text=True, timeout=120)
  assert out.returncode == 0, out.stderr[-2000:]
  assert int(out.stdout.split()[-1]) == expected


def test_configure_cpu_devices_raises_the_collective_timeout(monkeypatch):
  monkeypatch.setattr(jax.config, "update", lambda *args: None)
  monkeypatch.setenv("XLA_FLAGS", "--xla_cpu_use_thunk_runtime=true")
  parallel.configure_cpu_devices(4, (64,))
  assert os.environ["XLA_FLAGS"] == (
      "--xla_cpu_use_thunk_runtime=true "
      "--xla_cpu_collective_call_terminate_timeout_seconds=3600")
  # A value the user set is kept; one device has no collectives.
  monkeypatch.setenv("XLA_FLAGS", "--xla_cpu_collective_call_terminate_timeout_seconds=5")
  parallel.configure_cpu_devices(4, (64,))
  assert os.environ["XLA_FLAGS"].count("terminate_timeout") == 1
  monkeypatch.setenv("XLA_FLAGS", "")
  parallel.configure_cpu_devices(1, (64,))
  assert os.environ["XLA_FLAGS"] == ""


def test_batch_size_must_divide_over_devices(monkeypatch):
  monkeypatch.setattr(jax, "device_count", lambda: 8)
  with pytest.raises(ValueError, match="config.batch_size=12.*divisible.*8"):
    parallel.local_batch_size(12)


# A BatchNorm ResNet image encoder: its batch statistics must be those of the
# global batch, not of each device's shard, for 8 devices to train like 1.
CONFIG_ARG = "image=resnet"


def run_launch(workdir, data_dir, devices, *extra):
  env = dict(os.environ, XLA_FLAGS=xla_flags(f"--xla_force_host_platform_device_count={devices}"),
             JAX_PLATFORMS="cpu")
  overrides = dict(tiny_overrides(CONFIG_ARG), num_train_steps=NUM_STEPS,
                   log_every_steps=1, eval_every_steps=100,
                   checkpoint_every_steps=100,
                   # Not a multiple of 8: padded per device for evaluation.
                   eval_batch_size=300, eval_splits="('validation',)")
  overrides["data.data_dir"] = str(data_dir)
  cmd = [sys.executable, "launch.py", "--config",
         f"configs/av_digits.py:{CONFIG_ARG}", "--workdir", str(workdir),
         *as_flags(overrides), *extra]
  proc = subprocess.run(cmd, cwd=REPO_ROOT, env=env, capture_output=True,
                        text=True, timeout=600)
  assert proc.returncode == 0, proc.stderr[-3000:]
  if "--mode=evaluate" in extra:  # the results of the new evaluation folder
    out = proc.stdout.strip().splitlines()[-1].split("Results in ")[-1]
    return json.loads(pathlib.Path(out).read_text())
  config = json.loads((workdir / "config.json").read_text())
  assert config["data"]["data_dir"] == str(data_dir)  # the prepared copy
  info = json.loads((workdir / "run_info.json").read_text())
  assert info["devices"] == devices
  lines = map(json.loads, (workdir / "metrics.jsonl").read_text().splitlines())
  return {r["step"]: r for r in lines if r["split"] == "train"}, json.loads(
      (workdir / "results.json").read_text())


# Float32 sums in a different order: the measured max relative difference of
# the per-step training loss, 1 vs 8 CPU devices, tiny config with the
# BatchNorm ResNet image encoder (its batch means are sums over the global
# batch in another order), is 1e-7 over steps 1-3 (2026-11-27, this
# machine); 1 device vs the 2 x 4 data x fsdp mesh: 9.8e-8 (2026-11-27). Later steps amplify it, machine-dependently: Adam divides each
# gradient entry by its own running RMS, so entries near zero turn float
# noise into full-size updates (step 6: 4.3e-6 on the CI machine on
# 2026-11-26, 4.7e-5 here). Steps 1-3 see two updates, so they check the
# gradient all-reduce; 1e-5 leaves room for XLA's reduction order, not for a
# real divergence: a wrong gradient all-reduce, or batch statistics of each
# device's 4 examples instead of the global 32, change the loss in the
# 2nd-3rd digit.
LOSS_RTOL = 1e-5
NUM_STEPS = 3


FSDP = ("--config.sharding.fsdp=4", "--config.sharding.min_size=0")


def test_one_device_and_a_data_fsdp_mesh_train_alike(prepared_data_dir, tmp_path):
  # 8 devices as data x fsdp = 2 x 4: the batch split over all 8, every
  # parameter (min_size 0) and its Adam moments over 4 along their largest
  # dimension divisible by 4. (Data parallelism alone, 1 x 4 devices against
  # 2 processes x 2, is tests/test_distributed.py.)
  one, results_one = run_launch(tmp_path / "one", prepared_data_dir, 1)
  fsdp, results_fsdp = run_launch(tmp_path / "fsdp", prepared_data_dir, 8,
                                  *FSDP)
  assert sorted(one) == sorted(fsdp) == [1, 2, 3]
  for step in one:
    assert fsdp[step]["loss"] == pytest.approx(one[step]["loss"], rel=LOSS_RTOL)
  assert one[3]["loss"] != one[1]["loss"]
  assert (results_fsdp["validation"]["num_examples"]
          == results_one["validation"]["num_examples"] == 1000)
  assert results_fsdp["validation"]["accuracy"] == pytest.approx(
      results_one["validation"]["accuracy"], abs=1 / 1000)
  info = {name: json.loads((tmp_path / name / "run_info.json").read_text())
          for name in ("one", "fsdp")}
  assert info["fsdp"]["mesh"] == {"data": 2, "fsdp": 4}
  assert info["one"]["mesh"] == {"data": 1}
  # Measured: 0.25 of the replicated state's bytes per device (biases and
  # other dimensions not divisible by 4 stay whole).
  assert (info["fsdp"]["state_bytes_per_device"]
          < 0.4 * info["one"]["state_bytes_per_device"])
  # Resharding: the checkpoint written on the 2 x 4 mesh restores on 1
  # device, the one written on 1 device onto the 2 x 4 mesh, and each scores
  # as in the run that wrote it.
  for workdir, devices, extra, written in [
      ("fsdp", 1, (), results_fsdp), ("one", 8, FSDP, results_one)]:
    again = run_launch(tmp_path / workdir, prepared_data_dir, devices,
                       "--mode=evaluate", *extra)
    assert again["validation"]["accuracy"] == written["validation"]["accuracy"]
    assert again["validation"]["loss"] == pytest.approx(
        written["validation"]["loss"], rel=1e-5)
