"""docs/write_your_own_fusion_layer.md, followed as a new user would.

The example is read from the page, saved into a copy of the repository as
`mmjax/models/fusion/summary_cross_attention.py`, trained there with the
page's own `launch.py` command (a few steps of the tiny av_digits settings,
on the real data), and the fusion contract module is run over it in that
copy, collected by pytest like any registered block.
"""

import json
import pathlib
import re
import subprocess
import sys

import pytest

from mmjax.models.registries import FUSION
from tests import user_copy as user
from tests.models import test_fusion_contract as contract

PAGE = user.REPO_ROOT / "docs" / "write_your_own_fusion_layer.md"
NAME = "summary_cross_attention"
FILE = pathlib.Path("mmjax/models/fusion") / f"{NAME}.py"


def example_code():
  return user.only_python_block(PAGE)


@pytest.fixture(scope="module")
def user_copy(tmp_path_factory):
  """The repository plus the example, saved where the page says."""
  return user.copy_with_saved_files(tmp_path_factory, PAGE,
                                    {str(FILE): example_code()})


def test_example_trains_through_launch(user_copy, prepared_data_dir,
                                       real_manual_dir, tmp_path):
  workdir = tmp_path / "mine"
  overrides = user.short_run_overrides(real_manual_dir, prepared_data_dir,
                                       replaced=("model.fusion.",))
  proc = user.run_launch(user_copy, user.launch_command(PAGE), workdir,
                         overrides)
  assert proc.returncode == 0, proc.stderr[-3000:]
  config = json.loads((workdir / "config.json").read_text())
  assert config["model"]["fusion"]["name"] == NAME
  assert config["model"]["fusion"]["num_heads"] == 2
  results = json.loads((workdir / "results.json").read_text())
  accuracy = results["validation"]["accuracy"]
  assert 0.0 <= accuracy <= 1.0
  assert (workdir / "checkpoints" / "4").is_dir()


def test_example_passes_the_contract(user_copy):
  namespace = {"__name__": "docs_example"}
  exec(compile(example_code(), str(PAGE), "exec"), namespace)  # pylint: disable=exec-used
  try:
    cases = contract.cases_of(NAME)
  finally:
    FUSION.unregister(NAME)
  expected = (len(contract.PRIMARY_CHECKS)
              + len(contract.VARIANT_CHECKS) * (len(cases) - 1))
  proc = subprocess.run(
      [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
       "tests/models/test_fusion_contract.py", "-k", NAME],
      cwd=user_copy, capture_output=True, text=True, timeout=900)
  assert proc.returncode == 0, proc.stdout[-3000:]
  assert re.search(rf"\b{expected} passed\b", proc.stdout), proc.stdout[-500:]
