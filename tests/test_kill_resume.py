"""scripts/kill_resume_trials.py: killed and restarted, a run ends bitwise
equal to an uninterrupted one (SIGTERM, SIGKILL during a checkpoint write,
SIGKILLs at random times during training): parameters, Adam moments and
step count, and BatchNorm statistics (a tiny BatchNorm ResNet image
encoder), with streaming input whose position each resume restores from the
checkpoint."""

import json
import subprocess
import sys

from tests.train.conftest import as_flags, tiny_overrides

REPO_ROOT = __import__("pathlib").Path(__file__).resolve().parents[1]


def test_killed_runs_resume_to_bitwise_the_same_state(prepared_data_dir, tmp_path):
  overrides = {**tiny_overrides("image=resnet"),
               "data.data_dir": str(prepared_data_dir),
               "num_train_steps": 24, "checkpoint_every_steps": 2,
               "log_every_steps": 2, "eval_every_steps": 100,
               "eval_splits": "('validation',)",
               # Streaming input: its position is restored from each
               # checkpoint, not skipped to.
               "input.shuffle_buffer_size": 256}
  proc = subprocess.run(
      [sys.executable, "scripts/kill_resume_trials.py", "--root",
       str(tmp_path), "--kills", "3", "--",
       "--config", "configs/av_digits.py:image=resnet", *as_flags(overrides)],
      cwd=REPO_ROOT, capture_output=True, text=True, timeout=800)
  assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
  report = json.loads(proc.stdout.strip().splitlines()[-1])
  assert report["max_abs_difference"] == 0.0
  arrays = report["arrays_compared"]
  assert arrays["batch_stats"] > 0 and arrays["opt_state"] > arrays["params"] > 0
  assert report["kills"] >= 3, report
  assert report["kills_during_checkpoint_write"] == 1, report
  assert report["trials"][0]["return_code"] in (75, 0), report  # SIGTERM
  assert report["resumes"] >= 3, report
  assert report["input_resumes"] == {"restored": report["resumes"]}, report
  assert list((tmp_path / "cache").iterdir())  # --compilation_cache_dir
  # Later launches load the train step from the cache: one entry per
  # distinct program (measured: 2 or 3, from scratch and from a restored
  # state), not one per launch, as when the key held the address of the
  # spectrogram front end's custom_partitioning callback, which differs in
  # every process (mmjax.compilation_cache).
  steps = list((tmp_path / "cache").glob("jit_train_step-*"))
  launches = len(report["trials"]) + 2  # the reference and the last one too
  assert 1 <= len(steps) < launches - 1, (steps, launches)
