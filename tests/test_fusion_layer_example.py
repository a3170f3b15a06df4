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
import shlex
import shutil
import subprocess
import sys

import pytest

from mmjax.models.registries import FUSION
from tests.models import test_fusion_contract as contract
from tests.train.conftest import TINY_OVERRIDES, as_flags

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]
PAGE = REPO_ROOT / "docs" / "write_your_own_fusion_layer.md"
NAME = "summary_cross_attention"
FILE = pathlib.Path("mmjax/models/fusion") / f"{NAME}.py"


def page_blocks(language):
  return re.findall(rf"```{language}\n(.*?)```", PAGE.read_text(), re.S)


def example_code():
  (code,) = page_blocks("python")
  return code


def example_command():
  (command,) = [line for block in page_blocks("bash")
                for line in block.splitlines() if "launch.py" in line]
  return shlex.split(command)


@pytest.fixture(scope="module")
def user_copy(tmp_path_factory):
  """The repository's files (as `git ls-files` lists them, uncommitted
  changes included) plus the example, saved where the page says."""
  dest = tmp_path_factory.mktemp("user") / "mmjax"
  listed = subprocess.run(
      ["git", "ls-files", "--cached", "--others", "--exclude-standard"],
      cwd=REPO_ROOT, capture_output=True, text=True, check=True).stdout
  for name in listed.splitlines():
    source = REPO_ROOT / name
    if source.is_file():
      (dest / name).parent.mkdir(parents=True, exist_ok=True)
      shutil.copy2(source, dest / name)
  assert not (dest / FILE).exists(), f"{FILE} is part of the repository"
  (dest / FILE).write_text(example_code())
  return dest


def test_example_trains_through_launch(user_copy, prepared_data_dir,
                                       real_manual_dir, tmp_path):
  command = example_command()
  assert command[:2] == ["python", "launch.py"], command
  workdir = tmp_path / "mine"
  command[command.index("--workdir") + 1] = str(workdir)
  overrides = {k: v for k, v in TINY_OVERRIDES.items()
               if not k.startswith("model.fusion.")}
  overrides.update({"num_train_steps": 4, "checkpoint_every_steps": 4,
                    "eval_every_steps": 4, "eval_splits": "('validation',)",
                    "data.manual_dir": str(real_manual_dir),
                    "data.data_dir": str(prepared_data_dir)})
  proc = subprocess.run([sys.executable, *command[1:], *as_flags(overrides)],
                        cwd=user_copy, capture_output=True, text=True,
                        timeout=600)
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
