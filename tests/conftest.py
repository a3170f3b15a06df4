"""Shared fixtures: the real data in ../shared/data and a prepared copy of it.

Tests about real data fail (never skip) when ../shared/data is missing.
"""

import pathlib

import pytest

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]
SHARED_DATA = REPO_ROOT.parent / "shared" / "data"


@pytest.fixture(scope="session")
def real_manual_dir() -> pathlib.Path:
  if not (SHARED_DATA / "fsdd" / "recordings").is_dir():
    pytest.fail(f"the real data is missing: expected {SHARED_DATA} with "
                f"fsdd/ and mnist/ (see README.md)")
  return SHARED_DATA


@pytest.fixture(scope="session")
def prepared_data_dir(tmp_path_factory, real_manual_dir) -> pathlib.Path:
  """A TFDS data_dir holding the default av_digits config, prepared once."""
  from mmjax.data import av_digits, splits  # pylint: disable=g-import-not-at-top
  data_dir = tmp_path_factory.mktemp("tensorflow_datasets")
  av_digits.get_builder(real_manual_dir, data_dir, splits.SplitSpec())
  return data_dir
