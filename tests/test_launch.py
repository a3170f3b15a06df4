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


def _config_argument_error(tmp_path, config):
  proc = subprocess.run(
      [sys.executable, "launch.py", f"--config={config}",
       "--workdir", str(tmp_path / "w")],
      cwd=REPO_ROOT, capture_output=True, text=True, timeout=300)
  assert proc.returncode != 0 and "Traceback" not in proc.stderr
  assert not (tmp_path / "w").exists()
  lines = proc.stderr.strip().splitlines()
  assert len(lines) == 1, proc.stderr
  return lines[0]


def test_unknown_fusion_block_in_config_argument(tmp_path):
  from mmjax.models.registries import FUSION  # pylint: disable=g-import-not-at-top
  line = _config_argument_error(tmp_path, "configs/av_digits.py:fusion=nope")
  assert line == ("error: Unknown fusion block 'nope'; known fusion blocks: "
                  + ", ".join(FUSION.names()))


def test_unknown_encoder_in_config_argument_suggests_the_closest(tmp_path):
  line = _config_argument_error(tmp_path, "configs/av_digits.py:image=vitt")
  assert line.startswith("error: Unknown encoder 'vitt'; known encoders: ")
  assert "text_transformer, vit, vivit" in line
  assert line.endswith("; did you mean 'vit'?")
  assert "unknown config key" not in line


def test_unknown_name_wrapped_by_the_config_is_still_one_line(tmp_path):
  """An `UnknownNameError` that a config re-raises as the cause of another
  error is found through the exception chain."""
  config = tmp_path / "wrapping.py"
  config.write_text(
      "from mmjax.models.registries import FUSION\n"
      "def get_config():\n"
      "  try:\n"
      "    FUSION.get('early_fusoin')\n"
      "  except KeyError as e:\n"
      "    raise RuntimeError('cannot build the config') from e\n")
  line = _config_argument_error(tmp_path, str(config))
  assert line.startswith("error: Unknown fusion block 'early_fusoin'; ")
  assert line.endswith("; did you mean 'early_fusion'?")
