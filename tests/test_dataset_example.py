"""docs/write_your_own_dataset.md, followed as a new user would.

The page's builder and config are saved into a copy of the repository as
`mmjax/data/builders/fsdd_digits.py` and `configs/fsdd_digits.py`, and the
page's own `launch.py` command runs there for a few steps of tiny settings:
it prepares the dataset from the real data (../shared/data, read only) into
a temporary data dir, trains, and evaluates the validation split.
"""

import json

import pytest

from tests import user_copy as user

PAGE = user.REPO_ROOT / "docs" / "write_your_own_dataset.md"
BUILDER = "mmjax/data/builders/fsdd_digits.py"
CONFIG = "configs/fsdd_digits.py"


@pytest.fixture(scope="module")
def user_copy(tmp_path_factory):
  """The repository plus the builder and the config, saved where the page
  says."""
  files = user.saved_files(PAGE)
  assert set(files) == {BUILDER, CONFIG}, set(files)
  return user.make_copy(tmp_path_factory.mktemp("user") / "mmjax", files)


def test_example_prepares_and_trains_through_launch(user_copy,
                                                    real_manual_dir,
                                                    tmp_path):
  command = user.launch_command(PAGE)
  assert CONFIG in command, command
  workdir, data_dir = tmp_path / "fsdd", tmp_path / "tensorflow_datasets"
  # The av_digits test settings of the audio encoder, fusion and recipe.
  proc = user.run_launch(user_copy, command, workdir, user.short_run_overrides(
      real_manual_dir, data_dir, replaced=("image",)))
  assert proc.returncode == 0, proc.stderr[-3000:]
  config = json.loads((workdir / "config.json").read_text())
  assert config["data"]["name"] == "fsdd_digits"
  assert config["modalities"] == ["audio"]
  prepared = data_dir / "fsdd_digits" / "1.0.0"
  info = json.loads((prepared / "dataset_info.json").read_text())
  sizes = {s["name"]: sum(int(n) for n in s["shardLengths"])
           for s in info["splits"]}
  recordings = len(list((real_manual_dir / "fsdd" / "recordings").glob(
      "*.wav")))
  # Takes 0-4 and 5-9 of each speaker and digit (FSDD has 50 of each).
  assert sizes["test"] == sizes["validation"] == recordings // 10, sizes
  assert sum(sizes.values()) == recordings, sizes
  results = json.loads((workdir / "results.json").read_text())
  assert set(results) >= {"validation"}, results
  assert 0.0 <= results["validation"]["accuracy"] <= 1.0
  assert (workdir / "checkpoints" / "4").is_dir()
