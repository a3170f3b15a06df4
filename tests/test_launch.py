"""launch.py from the command line: clear errors, nothing in the workdir lost."""

import os
import subprocess
import sys

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def launch(*args, env=None):
  return subprocess.run(
      [sys.executable, "launch.py", "--config", "configs/av_digits.py", *args],
      cwd=REPO_ROOT, capture_output=True, text=True, timeout=300,
      env=dict(os.environ, **(env or {})))


def test_unknown_config_key_is_one_clear_error(tmp_path):
  proc = launch("--workdir", str(tmp_path / "w"),
                "--config.optimizer.learning_rat=3e-4")
  assert proc.returncode != 0
  assert "Traceback" not in proc.stderr
  assert ("unknown config key 'learning_rat' in "
          "--config.optimizer.learning_rat=3e-4") in proc.stderr
  assert 'Did you mean "learning_rate"' in proc.stderr
  assert not (tmp_path / "w").exists()


def test_missing_data_is_a_clear_error_and_keeps_the_workdir(tmp_path):
  workdir = tmp_path / "w"
  workdir.mkdir()
  (workdir / "metrics.jsonl").write_text('{"step": 1}\n')
  (workdir / "config.json").write_text("{}\n")
  proc = launch("--workdir", str(workdir),
                f"--config.data.manual_dir={tmp_path / 'nowhere'}",
                f"--config.data.data_dir={tmp_path / 'tfds'}")
  assert proc.returncode != 0
  assert "Traceback" not in proc.stderr
  assert "error:" in proc.stderr
  assert "t10k-first8000-images-idx3-ubyte.gz" in proc.stderr
  assert "recordings" in proc.stderr
  assert sorted(p.name for p in workdir.iterdir()) == ["config.json",
                                                       "metrics.jsonl"]
  assert (workdir / "metrics.jsonl").read_text() == '{"step": 1}\n'
  assert (workdir / "config.json").read_text() == "{}\n"


def test_bad_config_value_is_a_clear_error(tmp_path):
  proc = launch("--workdir", str(tmp_path / "w"),
                "--config.pp_train.audio=to_float|pad_or_crop(8000, mode='left')")
  assert proc.returncode != 0 and "Traceback" not in proc.stderr
  assert "config.pp_train.audio" in proc.stderr
  assert not (tmp_path / "w").exists()


def test_evaluate_without_checkpoint(tmp_path):
  proc = launch("--workdir", str(tmp_path), "--mode=evaluate")
  assert proc.returncode != 0 and "Traceback" not in proc.stderr
  assert "no checkpoints in" in proc.stderr and "train first" in proc.stderr


def test_fusion_key_of_another_block_names_the_config_argument(tmp_path):
  proc = launch("--workdir", str(tmp_path / "w"), "--config.model.fusion.num_heads=2")
  assert proc.returncode != 0 and "Traceback" not in proc.stderr
  assert "unknown config key 'num_heads'" in proc.stderr
  assert "--config=configs/av_digits.py:fusion=cross_attention" in proc.stderr
  assert not (tmp_path / "w").exists()


def test_block_hyperparameters_from_the_command_line(tmp_path):
  """A block chosen in the config argument exposes its attributes as keys."""
  proc = subprocess.run(
      [sys.executable, "launch.py", "--config",
       "configs/av_digits.py:fusion=cross_attention", "--workdir",
       str(tmp_path / "w"), "--config.model.fusion.num_heads=3",
       f"--config.data.manual_dir={tmp_path / 'nowhere'}"],
      cwd=REPO_ROOT, capture_output=True, text=True, timeout=300)
  assert proc.returncode != 0 and "Traceback" not in proc.stderr
  # The key was accepted; the run stopped at the (missing) data, not the key.
  assert "unknown config key" not in proc.stderr
  assert "t10k-first8000-images-idx3-ubyte.gz" in proc.stderr
