"""run_sweep.py's executors (experiments/executors.py) with a fake launch.py.

No JAX runs here: `run_sweep.command` is replaced by a `python -c` program
that writes results.json and run_info.json as launch.py does, recording the
devices it was pinned to; `--executor slurm` goes through submitit's
"local" cluster (real job processes, signals and requeues, no SLURM).
"""

import json
import os
import pathlib
import sys
import time

import pytest
import submitit

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "experiments"))
import executors  # noqa: E402  pylint: disable=wrong-import-position
import run_sweep  # noqa: E402  pylint: disable=wrong-import-position

# argv: workdir, the run's overrides as JSON. Modes (override "mode"):
# "preempt_once" exits 75 on its first attempt, "sigterm_once" dies by
# SIGTERM; "together" waits (30 s at
# most) until every run of the sweep has started; "on_term" waits for
# SIGTERM on its first attempt, writes `saved` and exits 75 (launch.py's
# preemption);
# "needs" fails unless the workdir it names holds results.json.
FAKE = r"""
import json, os, pathlib, signal, sys, time
workdir, overrides = pathlib.Path(sys.argv[1]), json.loads(sys.argv[2])
mode = overrides.get("mode")
with open(workdir / "attempts", "a") as f:
  f.write("x")
attempt = len((workdir / "attempts").read_text())
if mode == "preempt_once" and attempt == 1:
  sys.exit(75)
if mode == "sigterm_once" and attempt == 1:
  os.kill(os.getpid(), signal.SIGTERM)
if mode == "on_term" and attempt == 1:
  def saved(*_):
    (workdir / "saved").touch()
    sys.exit(75)
  signal.signal(signal.SIGTERM, saved)
  time.sleep(30)
  sys.exit(1)
if mode == "together":
  started = pathlib.Path(overrides["started"])
  (started / workdir.name).touch()
  deadline = time.time() + 30
  while len(list(started.iterdir())) < overrides["runs"]:
    if time.time() > deadline:
      sys.exit(3)
    time.sleep(0.05)
if mode == "needs" and not (pathlib.Path(overrides["needs"]) /
                            "results.json").exists():
  sys.exit(4)
seen = {"cuda": os.environ.get("CUDA_VISIBLE_DEVICES"),
        "cpus": sorted(os.sched_getaffinity(0)), "attempts": attempt}
(workdir / "results.json").write_text(json.dumps(
    {"test": {"accuracy": 0.5, "macro_f1": 0.5}, "seen": seen}))
(workdir / "run_info.json").write_text(json.dumps({"num_params": 1}))
"""


def fake_command(config, workdir, overrides):
  del config
  return [sys.executable, "-c", FAKE, str(workdir), json.dumps(overrides)]


def make_sweep(tmp_path, variants) -> pathlib.Path:
  folder = tmp_path / "sweep"
  folder.mkdir()
  (folder / "sweep.py").write_text(
      "CONFIG = 'configs/av_digits.py'\nCOMMON = {}\nUNIMODAL = ()\n"
      f"VARIANTS = {variants!r}\nPROTOCOLS = {{'p': {{'f': {{}}}}}}\n")
  return folder


def sweep_main(monkeypatch, folder, root, *flags):
  monkeypatch.setattr(run_sweep, "command", fake_command)
  monkeypatch.setattr(sys, "argv", ["run_sweep.py", str(folder), "--workdir",
                                    str(root), *flags])
  run_sweep.main()
  return json.loads((folder / "results.json").read_text())


def seen(records, name):
  return records[name]["results"]["seen"]


def test_slurm_executor_requeues_a_preempted_run_and_skips_finished_ones(
    tmp_path, monkeypatch):
  """A job array through submitit; the runs that exit 75 or die by SIGTERM
  are requeued and finish; records and RESULTS.md as with the local executor; a rerun
  submits nothing."""
  monkeypatch.setattr(executors, "SLURM_CLUSTER", "local")
  monkeypatch.setattr(executors, "SLURM_POLL_S", 0.2)
  folder = make_sweep(tmp_path, {"ok": ("", {}),
                                 "preempted": ("", {"mode": "preempt_once"}),
                                 "killed": ("", {"mode": "sigterm_once"})})
  root = tmp_path / "runs"
  flags = ("--executor", "slurm", "--slurm", "timeout_min=5",
           "--slurm", "partition=gpu")  # partition: ignored by "local"
  records = sweep_main(monkeypatch, folder, root, *flags)
  assert set(records) == {"p/f/ok", "p/f/preempted", "p/f/killed"}
  assert seen(records, "p/f/ok")["attempts"] == 1
  assert seen(records, "p/f/preempted")["attempts"] == 2
  assert seen(records, "p/f/killed")["attempts"] == 2
  assert "| preempted | 0.5000 |" in (folder / "RESULTS.md").read_text()
  assert list((root / "slurm").glob("*/*_log.out"))  # submitit's logs
  assert (root / "p/f/preempted/launch.log").exists()
  before = {p: p.read_text() for p in root.glob("p/f/*/attempts")}
  sweep_main(monkeypatch, folder, root, *flags)
  assert {p: p.read_text() for p in root.glob("p/f/*/attempts")} == before


def test_submitit_signal_checkpoints_the_run_and_requeues_it(tmp_path):
  """submitit's timeout/preemption signal (USR2, sent here 3 s into the
  job) makes SlurmRun.checkpoint SIGTERM the run, which saves and exits
  75; the requeued job runs it again to the end."""
  workdir = tmp_path / "run"
  executor = submitit.LocalExecutor(folder=tmp_path / "jobs")
  executor.update_parameters(timeout_min=1, signal_delay_s=57)
  job = executor.submit(executors.SlurmRun(
      fake_command(None, workdir, {"mode": "on_term"}), workdir))
  record = job.result()
  assert record["results"]["seen"]["attempts"] == 2
  assert (workdir / "saved").exists()
  assert record["wall_seconds"] >= 2.0  # the first attempt's time counts
  assert "Requeued" in job.stdout()


def test_parallel_runs_at_once_each_on_its_own_devices(tmp_path, monkeypatch):
  """--devices 0 --devices 1: both runs start before either ends (each
  waits for the other), with distinct CUDA_VISIBLE_DEVICES."""
  started = tmp_path / "started"
  started.mkdir()
  together = {"mode": "together", "started": str(started), "runs": 2}
  folder = make_sweep(tmp_path, {"a": ("", together), "b": ("", together)})
  records = sweep_main(monkeypatch, folder, tmp_path / "runs", "--devices",
                       "0", "--devices", "1", "--pin", "cuda")
  assert sorted(seen(records, n)["cuda"] for n in records) == ["0", "1"]


@pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2,
                    reason="needs 2 CPU cores to pin two runs apart")
def test_parallel_on_cpu_pins_each_run_to_its_own_cores(tmp_path, monkeypatch):
  started = tmp_path / "started"
  started.mkdir()
  together = {"mode": "together", "started": str(started), "runs": 2}
  folder = make_sweep(tmp_path, {"a": ("", together), "b": ("", together)})
  records = sweep_main(monkeypatch, folder, tmp_path / "runs", "--parallel",
                       "2", "--pin", "cpu")
  cpus = sorted(seen(records, n)["cpus"] for n in records)
  half = len(os.sched_getaffinity(0)) // 2
  assert cpus == [sorted(os.sched_getaffinity(0))[:half],
                  sorted(os.sched_getaffinity(0))[half:2 * half]]


def test_parallel_runs_wait_for_the_runs_they_name(tmp_path, monkeypatch):
  """A run whose overrides name another run's workdir (`{runs}`, e.g.
  init_from) starts after that run has finished; one whose run failed is
  not started, nor the runs that name it."""
  folder = make_sweep(tmp_path, {
      "child": ("", {"mode": "needs", "needs": "{runs}/p/f/base"}),
      "base": ("", {}),
      "orphan": ("", {"mode": "needs", "needs": "{runs}/p/f/broken"}),
      "grandchild": ("", {"mode": "needs", "needs": "{runs}/p/f/orphan"}),
      "broken": ("", {"mode": "preempt_once"})})
  root = tmp_path / "runs"
  records = sweep_main(monkeypatch, folder, root, "--parallel", "2",
                       "--pin", "none")
  assert set(records) == {"p/f/base", "p/f/child"}
  assert not (root / "p/f/orphan/attempts").exists()
  assert not (root / "p/f/grandchild/attempts").exists()


def test_slurm_parameters_and_device_groups(monkeypatch):
  assert executors.slurm_parameters(
      ["timeout_min=240", "gpus_per_node=1", "partition=gpu", "mem_gb=64",
       "qos=high"]) == {"timeout_min": 240, "gpus_per_node": 1, "mem_gb": 64,
                        "slurm_partition": "gpu", "slurm_qos": "high"}
  with pytest.raises(ValueError, match="timeout_min"):
    executors.slurm_parameters(["partition=gpu"])
  monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "4,5,6,7")
  assert executors.device_groups(2, None, "auto") == (
      "cuda", [["4", "5"], ["6", "7"]])
  assert executors.device_groups(None, ["0,1", "2"], "cuda") == (
      "cuda", [["0", "1"], ["2"]])
  with pytest.raises(ValueError, match="at least 5"):
    executors.device_groups(5, None, "cuda")
