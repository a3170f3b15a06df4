"""Shared fixtures: the real data in ../shared/data and a prepared copy of it.

Tests about real data fail (never skip) when ../shared/data is missing.
"""

import fcntl
import os
import pathlib
import shutil

import pytest

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]
SHARED_DATA = REPO_ROOT.parent / "shared" / "data"

# XLA's backend (LLVM) at optimisation level 0 for the tests, here and in
# their subprocesses: most tests run a few steps of programs they compile
# once, and compilation is most of their time (a tiny launch.py run: 20.4 s
# at the default level, 13.9 s at 0, the same accuracy; 2026-11-27). The
# same HLO optimisations run at either level; benchmarks and real runs keep
# the default.
TEST_XLA_FLAGS = "--xla_backend_optimization_level=0"
if TEST_XLA_FLAGS not in os.environ.get("XLA_FLAGS", ""):
  os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " " +
                             TEST_XLA_FLAGS).strip()


def xla_flags(*flags: str) -> str:
  """XLA_FLAGS for a test's subprocess: the tests' own and `flags`."""
  return " ".join((TEST_XLA_FLAGS,) + flags)


def run_temp(tmp_path_factory) -> pathlib.Path:
  """The test run's temporary folder, common to the pytest-xdist workers
  (their own temporary folders are in it)."""
  root = tmp_path_factory.getbasetemp()
  return root.parent if os.environ.get("PYTEST_XDIST_WORKER") else root


def prepared_once(tmp_path_factory, name: str, prepare) -> pathlib.Path:
  """`<run_temp>/<name>`, filled by `prepare(folder)` once per test run.

  Each pytest-xdist worker runs the session fixtures; the data preparations
  behind them (av_digits ~7 s, emoji ~20 s, the clips ~25 s on the idle
  2-core machine) are shared instead: the first worker to need one prepares
  it holding a lock, a worker needing it meanwhile waits and then reuses
  it. Tests read these folders (TFDS adds any other config of a dataset in
  a folder of its own).
  """
  root = run_temp(tmp_path_factory)
  folder, done = root / name, root / f"{name}.done"
  with open(root / f"{name}.lock", "w") as lock:
    fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
    if not done.exists():
      if folder.exists():  # left by a worker that failed preparing it
        shutil.rmtree(folder)
      folder.mkdir()
      prepare(folder)
      done.touch()
  return folder


@pytest.fixture(scope="session", autouse=True)
def jax_compilation_cache(tmp_path_factory):
  """Many tests compile the same steps; a persistent cache compiles once,
  shared by the pytest-xdist workers (their temporary directories have a
  common parent; JAX writes cache entries atomically)."""
  import jax  # pylint: disable=g-import-not-at-top
  from mmjax import compilation_cache  # pylint: disable=g-import-not-at-top
  cache = run_temp(tmp_path_factory) / "jax_cache"
  cache.mkdir(exist_ok=True)
  compilation_cache.enable(cache)
  jax.config.update("jax_persistent_cache_min_compile_time_secs", 0)
  # launch.py subprocesses (multi-device, multi-process, kill trials) share
  # it through launch.py's --compilation_cache_dir default, and cache their
  # short compilations too (JAX reads the environment variable at import).
  os.environ["MMJAX_COMPILATION_CACHE_DIR"] = str(cache)
  os.environ["JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS"] = "0"


@pytest.fixture(scope="session")
def real_manual_dir() -> pathlib.Path:
  """../shared/data (relative to the repo root); fails if it is missing."""
  from mmjax.data.builders import sources  # pylint: disable=g-import-not-at-top
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
  from mmjax.data.builders import av_digits, splits  # pylint: disable=g-import-not-at-top
  return prepared_once(
      tmp_path_factory, "tensorflow_datasets",
      lambda data_dir: av_digits.get_builder(real_manual_dir, data_dir,
                                             splits.SplitSpec()))


# The tiny emoji_image_text settings the tests prepare (the configs' own are
# image_size 64, vocab_size 8000).
EMOJI_TINY = {"image_size": 32, "vocab_size": 2000}


@pytest.fixture(scope="session")
def prepared_emoji_dir(tmp_path_factory, real_manual_dir) -> pathlib.Path:
  """A TFDS data_dir holding emoji_image_text at EMOJI_TINY, prepared once."""
  from mmjax.data.builders import emoji  # pylint: disable=g-import-not-at-top
  return prepared_once(
      tmp_path_factory, "tfds_emoji",
      lambda data_dir: emoji.get_builder(real_manual_dir, data_dir,
                                         **EMOJI_TINY))


@pytest.fixture(scope="session")
def tiny_emoji_run(tmp_path_factory, prepared_emoji_dir):
  """(config, workdir) of a tiny emoji image-text (contrastive) run, 4 steps
  at EMOJI_TINY, evaluated on test. Tests may add outputs to the workdir
  (evaluations/, predictions/) but must copy it to change anything in it."""
  from configs import emoji_image_text  # pylint: disable=g-import-not-at-top
  from mmjax.train import loop  # pylint: disable=g-import-not-at-top
  from tests.test_configs import TINY_MODELS  # pylint: disable=g-import-not-at-top
  config = emoji_image_text.get_config()
  for key, value in {**TINY_MODELS["emoji_image_text"],
                     "data.data_dir": str(prepared_emoji_dir),
                     "num_train_steps": 4, "log_every_steps": 2,
                     "eval_every_steps": 4, "checkpoint_every_steps": 4,
                     "batch_size": 32, "optimizer.warmup_steps": 1,
                     "eval_splits": ("test",)}.items():
    *parents, leaf = key.split(".")
    node = config
    for p in parents:
      node = node[p]
    node[leaf] = value
  workdir = tmp_path_factory.mktemp("emoji_run") / "run"
  loop.train_and_evaluate(config, workdir)
  return config, workdir


@pytest.fixture(scope="session")
def tiny_clip_dir(tmp_path_factory) -> pathlib.Path:
  """A tiny random `CLIPModel` saved with its tokenizer and image processor
  (tests/pretrained/clip_checkpoint.py), built once (do not modify it)."""
  def build(directory):
    import torch  # pylint: disable=g-import-not-at-top
    from tests.pretrained import clip_checkpoint  # pylint: disable=g-import-not-at-top
    torch.manual_seed(0)
    clip_checkpoint.build(directory)
  return prepared_once(tmp_path_factory, "tiny_clip", build)


# A tiny manifest for multimodal_manifest (configs/manifest.py): 40 rows, 2
# labels x 20, image + audio + text, no split column (so 16 / 2 / 2 rows of
# each label: 4 validation examples).
MANIFEST_TINY = {"num_rows": 40, "labels": ("cat", "dog"), "image_size": 16,
                 "num_validation": 4}


def write_tiny_manifest(root: pathlib.Path, num_rows: int = 40,
                        labels=("cat", "dog"), image_size: int = 16
                        ) -> pathlib.Path:
  """Writes `root/data.csv` and the files it names; returns the manifest.

  Row i (0-based): label `labels[i % len(labels)]`; `images/{i}.png`, uint8
  RGB [image_size, image_size, 3] of seeded noise; `audio/{i}.wav`, 0.1 s of
  seeded int16 noise at 8000 Hz (16000 Hz for every 5th row); text "a
  {label} number {i}".
  """
  import numpy as np  # pylint: disable=g-import-not-at-top
  import PIL.Image  # pylint: disable=g-import-not-at-top
  import soundfile as sf  # pylint: disable=g-import-not-at-top
  rng = np.random.default_rng(0)
  (root / "images").mkdir(parents=True, exist_ok=True)
  (root / "audio").mkdir(exist_ok=True)
  lines = ["image,audio,text,label"]
  for i in range(num_rows):
    label = labels[i % len(labels)]
    pixels = rng.integers(0, 256, (image_size, image_size, 3), np.uint8)
    PIL.Image.fromarray(pixels).save(root / "images" / f"{i}.png")
    rate = 16000 if i % 5 == 0 else 8000
    noise = rng.integers(-3000, 3000, rate // 10, dtype=np.int16)
    sf.write(root / "audio" / f"{i}.wav", noise, rate, subtype="PCM_16")
    lines.append(f"images/{i}.png,audio/{i}.wav,a {label} number {i},{label}")
  manifest = root / "data.csv"
  manifest.write_text("\n".join(lines) + "\n")
  return manifest


@pytest.fixture(scope="session")
def tiny_manifest(tmp_path_factory) -> pathlib.Path:
  """The tiny manifest of MANIFEST_TINY (do not modify it)."""
  return write_tiny_manifest(tmp_path_factory.mktemp("manifest"),
                             MANIFEST_TINY["num_rows"],
                             MANIFEST_TINY["labels"],
                             MANIFEST_TINY["image_size"])


@pytest.fixture(scope="session")
def prepared_manifest_dir(tmp_path_factory, tiny_manifest) -> pathlib.Path:
  """A TFDS data_dir holding the tiny manifest prepared once (images kept at
  their size, 8000 Hz, default split)."""
  from mmjax.data.builders.manifest import builder  # pylint: disable=g-import-not-at-top
  data_dir = tmp_path_factory.mktemp("tfds_manifest")
  builder.get_builder(tiny_manifest, data_dir)
  return data_dir


# The small av_digit_clips settings the tests prepare on the real data (one
# round of clips, the sync task so that both positives and negatives exist).
CLIPS_TINY = {"task": "sync", "clips_per_pair": 1}


@pytest.fixture(scope="session")
def prepared_clips_dir(tmp_path_factory, real_manual_dir) -> pathlib.Path:
  """A TFDS data_dir holding av_digit_clips at CLIPS_TINY (default split
  spec), prepared once (~25 s)."""
  from mmjax.data.builders import av_digit_clips, splits  # pylint: disable=g-import-not-at-top
  return prepared_once(
      tmp_path_factory, "tfds_clips",
      lambda data_dir: av_digit_clips.get_builder(
          real_manual_dir, data_dir, splits.SplitSpec(), **CLIPS_TINY))


# The longest test files, longest first (their summed test durations in a
# full `-n 2 --dist loadfile` run, 2026-12-06, after issue 30): pytest-xdist's
# loadfile hands files out in this order (see `pytest_configure`), so a long
# file started last would run alone at the end of the suite; longest-first
# leaves only short files for the end.
SLOW_FIRST = (
    "tests/test_configs.py",  # 163 s
    "tests/models/test_fusion_contract.py",  # 121 s
    "tests/models/test_encoder_contract.py",  # 106 s
    "tests/test_kill_resume.py",  # 90 s
    "tests/export/test_export.py",  # 72 s
    "tests/test_parallel.py",  # 70 s
    "tests/test_predict.py",  # 69 s
    "tests/evaluation/test_robustness.py",  # 66 s
    "tests/test_distributed.py",  # 64 s
    "tests/train/test_contrastive.py",  # 62 s
    "tests/test_workdir.py",  # 55 s
    "tests/train/test_corruption_training.py",  # 45 s
    "tests/test_launch.py",  # 38 s
    "tests/train/test_loop.py",  # 35 s
    "tests/test_incomplete_manifest_example.py",  # 32 s
    "tests/test_fusion_layer_example.py",  # 29 s
    "tests/analysis/test_corruptions.py",  # 27 s
    "tests/models/encoders/test_text_baselines.py",  # 26 s
    "tests/test_pp_op_example.py",  # 24 s
    "tests/models/layers/test_conv.py",  # 22 s
    "tests/models/encoders/test_encoders.py",  # 20 s
    "tests/models/test_multimodal.py",  # 20 s
    "tests/pretrained/test_clip_cli.py",  # 19 s
    "tests/test_encoder_example.py",  # 18 s
    "tests/models/fusion/test_attention_fusion.py",  # 17 s
    "tests/models/encoders/test_text.py",  # 17 s
    "tests/pretrained/test_parity.py",  # 16 s
    "tests/pretrained/test_clip_docs.py",  # 15 s
    "tests/data/builders/test_emoji.py",  # 14 s
    "tests/train/test_remote_paths.py",  # 13 s
    "tests/models/encoders/test_video.py",  # 13 s
    "tests/test_dataset_example.py",  # 13 s
    "tests/train/test_loop_failures.py",  # 13 s
    "tests/models/encoders/test_whisper.py",  # 13 s
    "tests/test_launch_config_data_errors.py",  # 12 s
    "tests/pretrained/test_init_from.py",  # 12 s
    "tests/test_docs.py",  # 11 s
    "tests/pretrained/test_clip_model.py",  # 10 s
)


def pytest_configure(config):
  # pytest-xdist (3.6 and later) reorders loadfile's files by their number of
  # tests unless told not to, which would undo SLOW_FIRST's order.
  if hasattr(config.option, "loadscopereorder"):
    config.option.loadscopereorder = False


def pytest_collection_modifyitems(config, items):
  del config
  rank = {path: i for i, path in enumerate(SLOW_FIRST)}
  def key(item):
    path = pathlib.Path(str(item.fspath)).relative_to(REPO_ROOT).as_posix()
    return rank.get(path, len(SLOW_FIRST))
  items.sort(key=key)  # stable: the order within a file is kept
