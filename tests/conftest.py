"""Shared fixtures: the real data in ../shared/data and a prepared copy of it.

Tests about real data fail (never skip) when ../shared/data is missing.
"""

import os
import pathlib

import pytest

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]
SHARED_DATA = REPO_ROOT.parent / "shared" / "data"


@pytest.fixture(scope="session", autouse=True)
def jax_compilation_cache(tmp_path_factory):
  """Many tests compile the same steps; a persistent cache compiles once,
  shared by the pytest-xdist workers (their temporary directories have a
  common parent; JAX writes cache entries atomically)."""
  import jax  # pylint: disable=g-import-not-at-top
  root = tmp_path_factory.getbasetemp()
  if os.environ.get("PYTEST_XDIST_WORKER"):
    root = root.parent
  cache = root / "jax_cache"
  cache.mkdir(exist_ok=True)
  jax.config.update("jax_compilation_cache_dir", str(cache))
  jax.config.update("jax_persistent_cache_min_compile_time_secs", 0)


@pytest.fixture(scope="session")
def real_manual_dir() -> pathlib.Path:
  """../shared/data (relative to the repo root); fails if it is missing."""
  from mmjax.data import sources  # pylint: disable=g-import-not-at-top
  from mmjax.data.errors import DataError  # pylint: disable=g-import-not-at-top
  try:
    sources.check_manual_dir(SHARED_DATA)
  except DataError as e:
    pytest.fail(f"The real data directory {SHARED_DATA} (<repo>/../shared"
                f"/data) is missing or incomplete; real-data tests need it.\n"
                f"{e}")
  return SHARED_DATA


@pytest.fixture(scope="session")
def prepared_data_dir(tmp_path_factory, real_manual_dir) -> pathlib.Path:
  """A TFDS data_dir holding the default av_digits config, prepared once."""
  from mmjax.data import av_digits, splits  # pylint: disable=g-import-not-at-top
  data_dir = tmp_path_factory.mktemp("tensorflow_datasets")
  av_digits.get_builder(real_manual_dir, data_dir, splits.SplitSpec())
  return data_dir


# The tiny emoji_image_text settings the tests prepare (the configs' own are
# image_size 64, vocab_size 8000).
EMOJI_TINY = {"image_size": 32, "vocab_size": 2000}


@pytest.fixture(scope="session")
def prepared_emoji_dir(tmp_path_factory, real_manual_dir) -> pathlib.Path:
  """A TFDS data_dir holding emoji_image_text at EMOJI_TINY, prepared once."""
  from mmjax.data import emoji  # pylint: disable=g-import-not-at-top
  data_dir = tmp_path_factory.mktemp("tfds_emoji")
  emoji.get_builder(real_manual_dir, data_dir, **EMOJI_TINY)
  return data_dir
