"""docs/write_your_own_encoder.md, followed as a new user would.

The example is read from the page, saved into a copy of the repository as
`mmjax/models/encoders/patch_embedding.py`, trained there as the image
encoder with the page's own `launch.py` command (a few steps of the tiny
av_digits settings, on the real data), and the encoder contract module is
run over it in that copy, collected by pytest like any registered encoder.
"""

import json
import re
import subprocess
import sys

import pytest

from tests import user_copy as user
from tests.models import test_encoder_contract as contract

PAGE = user.REPO_ROOT / "docs" / "write_your_own_encoder.md"
NAME = "patch_embedding"
FILE = f"mmjax/models/encoders/{NAME}.py"


def example_code():
  return user.only_python_block(PAGE)


@pytest.fixture(scope="module")
def user_copy(tmp_path_factory):
  """The repository plus the example, saved where the page says."""
  return user.copy_with_saved_files(tmp_path_factory, PAGE,
                                    {FILE: example_code()})


def test_example_trains_through_launch(user_copy, prepared_data_dir,
                                       real_manual_dir, tmp_path):
  workdir = tmp_path / "patches"
  overrides = user.short_run_overrides(real_manual_dir, prepared_data_dir,
                                       replaced=("model.encoders.image.",))
  proc = user.run_launch(user_copy, user.launch_command(PAGE), workdir,
                         overrides)
  assert proc.returncode == 0, proc.stderr[-3000:]
  config = json.loads((workdir / "config.json").read_text())
  image = config["model"]["encoders"]["image"]
  assert image["name"] == NAME
  assert image["patch_size"] == 4 and image["dim"] == 64, image
  results = json.loads((workdir / "results.json").read_text())
  accuracy = results["validation"]["accuracy"]
  assert 0.0 <= accuracy <= 1.0
  assert (workdir / "checkpoints" / "4").is_dir()


def checks_over_every_encoder():
  """The contract tests parametrized over all of `ENCODERS` or over every
  encoder's cases (not those filtered by modality or by a `token_times`
  method, which an image encoder without one does not get). The example has
  no `Literal` attribute, so it is one case: one test of each."""
  return [name for name, f in vars(contract).items()
          if name.startswith("test_") and any(
              m.name == "parametrize"
              and (m.args[1] is contract.ENCODER_NAMES
                   or m.args[1] is contract.CASES)
              for m in getattr(f, "pytestmark", []))]


def test_example_passes_the_contract(user_copy):
  expected = len(checks_over_every_encoder())
  assert expected >= 3, checks_over_every_encoder()
  proc = subprocess.run(
      [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
       "tests/models/test_encoder_contract.py", "-k", NAME],
      cwd=user_copy, capture_output=True, text=True, timeout=900)
  assert proc.returncode == 0, proc.stdout[-3000:]
  assert re.search(rf"\b{expected} passed\b", proc.stdout), proc.stdout[-500:]
