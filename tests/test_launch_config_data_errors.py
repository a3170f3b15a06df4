"""launch.py from the command line: a DataError raised while the config file
is read (configs/manifest.py reads the manifest named in the config-file
argument) is the one `error: ...` line of data errors, with no traceback
unless --verbosity=1 asks for it."""

import os
import subprocess
import sys

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def launch(manifest, workdir, *args):
  return subprocess.run(
      [sys.executable, "launch.py", "--config",
       f"configs/manifest.py:manifest={manifest}", "--workdir", str(workdir),
       *args], cwd=REPO_ROOT, capture_output=True, text=True, timeout=300)


def test_missing_manifest_is_one_line(tmp_path):
  proc = launch(tmp_path / "nowhere.csv", tmp_path / "w")
  assert proc.returncode == 1
  assert "Traceback" not in proc.stderr
  errors = [l for l in proc.stderr.splitlines() if l.startswith("error:")]
  assert errors == [f"error: {tmp_path / 'nowhere.csv'}: no such manifest; "
                    f"expected a .csv file with a header row, or a .jsonl "
                    f"file with one JSON object per line; columns: a `label` "
                    f"(the class name), at least one of `image` (a file "
                    f"path), `audio` (a file path), `text` (the text) and "
                    f"`video` (a file or frame folder path), and optionally "
                    f"`split` (train/validation/test)."], proc.stderr
  assert not (tmp_path / "w").exists()


def test_malformed_manifest_is_one_line_and_verbosity_shows_the_traceback(
    tmp_path):
  manifest = tmp_path / "data.csv"
  manifest.write_text("image,caption,label\na.png,a cat,cat\n")
  proc = launch(manifest, tmp_path / "w", "--verbosity=1")
  assert proc.returncode == 1
  last = proc.stderr.strip().splitlines()[-1]
  assert last == (f"error: {manifest}: unknown column(s) 'caption'; allowed "
                  f"columns: image, audio, text, video, label, split."), last
  assert "Traceback" in proc.stderr and "read_manifest" in proc.stderr
  assert "Error whilst parsing config file" not in proc.stderr
  assert not (tmp_path / "w").exists()
