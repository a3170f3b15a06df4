"""A workdir that is not a local path: every file operation on a run's
outputs goes through `etils.epath` (or TensorFlow's file systems).

The remote file system is TensorFlow's in-memory one, `ram://`, made an
`epath` scheme below (its backend `tf.io.gfile`, as for `gs://`): nothing
of it exists on the local disk, and a `pathlib.Path("ram://runs/x")` is the
local relative path `ram:/runs/x`, so a file operation that bypassed epath
either fails or leaves a `ram:` folder in the current directory (which the
tests check is empty).

Orbax's array data go through TensorStore, which writes local folders and
`gs://` only (not `ram://`): the checkpoint manager is handed the `ram://`
folder unchanged (checked), creates it there, and keeps the steps in a
local folder standing in for the bucket.
"""

import json
import os
import sys
import uuid

from etils import epath
from etils.epath import backend as epath_backend
from etils.epath import gpath
import jax
import numpy as np
import pytest
import tensorflow as tf

from mmjax import checkpoint, paths
from mmjax.analysis import plots
from mmjax.pretrained import load as pretrained_load
from mmjax.evaluation import restore, robustness
from mmjax.train import loop, writers

RAM = "ram://"


def _internal(parts):
  """`ram://a/b` -> `/ram/a/b`, the form epath keeps `gs://a/b` in."""
  full = "/".join(os.fspath(p) for p in parts)
  return ("/ram/" + full[len(RAM):],) if full.startswith(RAM) else parts


@epath.register_path_cls(RAM)
class RamPath(gpath.PosixGPath):
  """`epath.Path("ram://...")`: TensorFlow's in-memory file system through
  epath's `tf.io.gfile` backend (the backend of `gs://` paths)."""

  if sys.version_info < (3, 12):
    def __new__(cls, *parts):
      return super().__new__(cls, *_internal(parts))
  else:
    def __init__(self, *parts):
      super().__init__(*_internal(parts))

  @property
  def _uri_scheme(self):
    return "ram" if self.parts[:2] == ("/", "ram") else None

  @property
  def _backend(self):
    return epath_backend.tf_backend


def gfile_text(path: str) -> str:
  with tf.io.gfile.GFile(path) as f:
    return f.read()


def remove_ram_tree(root: str) -> None:
  """Deletes `root` from the RAM file system, deepest folders first (its
  listing of a folder `x` also shows `-1` for a sibling folder `x-1`, on
  which one `rmtree(root)` fails)."""
  for folder in sorted((d for d, _, _ in tf.io.gfile.walk(root)), key=len,
                       reverse=True):
    tf.io.gfile.rmtree(folder)
  assert not tf.io.gfile.exists(root)


@pytest.fixture
def ram_workdir(tmp_path, monkeypatch):
  """A fresh `ram://` workdir, run from an empty current directory (checked
  empty afterwards), with Orbax's step folders stored under
  `tmp_path/orbax/<the ram:// path>`."""
  workdir = f"{RAM}runs/{uuid.uuid4().hex}"
  cwd = tmp_path / "cwd"
  cwd.mkdir()
  monkeypatch.chdir(cwd)
  bucket = tmp_path / "orbax"
  requested = []
  real_make_manager = checkpoint.make_manager

  def make_manager(directory, **kwargs):
    requested.append(directory)
    assert isinstance(directory, epath.Path) and str(directory).startswith(RAM), (
        f"the checkpoint folder lost its scheme: {directory!r}")
    if not kwargs.get("read_only"):
      directory.mkdir(parents=True, exist_ok=True)  # what Orbax's create=True does
    return real_make_manager(bucket / str(directory)[len(RAM):], **kwargs)

  monkeypatch.setattr(checkpoint, "make_manager", make_manager)
  yield workdir, bucket, requested
  assert not os.listdir(cwd), f"written locally, not through epath: {os.listdir(cwd)}"
  remove_ram_tree(workdir)


def test_ram_path_is_not_local(tmp_path, monkeypatch):
  monkeypatch.chdir(tmp_path)
  path = epath.Path(f"{RAM}bucket/x") / "y.json"
  assert isinstance(path, RamPath) and str(path) == f"{RAM}bucket/x/y.json"
  assert paths.is_remote(path) and not paths.is_remote(tmp_path)
  assert str(paths.absolute(path)) == f"{RAM}bucket/x/y.json"
  assert paths.absolute("rel") == epath.Path(tmp_path / "rel")
  assert str(paths.absolute("gs://bucket/run")) == "gs://bucket/run"
  writers.write_json_atomic(path, {"a": 1})
  paths.append_text(path.parent / "log.jsonl", "1\n")
  paths.append_text(path.parent / "log.jsonl", "2\n")
  assert json.loads(gfile_text(f"{RAM}bucket/x/y.json")) == {"a": 1}
  assert gfile_text(f"{RAM}bucket/x/log.jsonl") == "1\n2\n"
  assert sorted(tf.io.gfile.listdir(f"{RAM}bucket/x")) == ["log.jsonl", "y.json"]
  assert not os.listdir(tmp_path)
  remove_ram_tree(f"{RAM}bucket")


def test_train_evaluate_and_init_from_on_a_remote_workdir(tiny_config, ram_workdir):
  workdir, bucket, requested = ram_workdir
  # 12 steps, checkpoints every 4, keeps 2; no final evaluation of train.
  config = tiny_config(eval_splits=("validation", "test"))
  results = loop.train_and_evaluate(config, workdir)

  assert str(requested[0]) == f"{workdir}/checkpoints"
  names = {f.rstrip("/") for f in tf.io.gfile.listdir(workdir)}
  assert names >= {
      "config.json", "launches.jsonl", "metrics.jsonl", "results.json",
      "run_info.json", "checkpoints", "tensorboard", "confusion_test.json",
      "confusion_test.png"}
  assert not [f for f in names if f.startswith(".")]  # no temporary file left
  assert json.loads(gfile_text(f"{workdir}/config.json"))["num_train_steps"] == 12
  assert json.loads(gfile_text(f"{workdir}/results.json")) == results
  assert json.loads(gfile_text(f"{workdir}/run_info.json"))["steps"] == 12
  rows = [json.loads(l) for l in gfile_text(f"{workdir}/metrics.jsonl").splitlines()]
  assert [r["step"] for r in rows if r["split"] == "train"] == [3, 6, 9, 12]
  assert [r["step"] for r in rows if r["split"] == "final_test"] == [12]
  launches = gfile_text(f"{workdir}/launches.jsonl").splitlines()
  assert [json.loads(l)["start_step"] for l in launches] == [0]
  for split in ("validation", "test"):
    png = f"{workdir}/confusion_{split}.png"
    assert tf.io.gfile.stat(png).length > 1000
    assert gfile_text(png.replace(".png", ".json"))  # written beside it
    with tf.io.gfile.GFile(png, "rb") as f:
      assert f.read(8) == b"\x89PNG\r\n\x1a\n"
  assert tf.io.gfile.glob(f"{workdir}/tensorboard/train/events.out.tfevents.*")
  assert sorted(int(p.name) for p in (bucket / workdir[len(RAM):] / "checkpoints")
                .iterdir() if p.name.isdigit()) == [8, 12]
  # A resume reads config.json back from there: it refuses another seed.
  changed = tiny_config(eval_splits=("validation", "test"), seed=config.seed + 1)
  with pytest.raises(ValueError, match="seed"):
    loop._check_resume(changed, epath.Path(workdir), False)  # pylint: disable=protected-access

  # --mode=evaluate: the checkpoint's scores, in a new folder of the workdir
  # (of config.eval_splits: the test split, the one compared).
  config.eval_splits = ("test",)
  out_dir = restore.evaluate_checkpoint(config, workdir)
  assert str(out_dir).startswith(f"{workdir}/evaluations/")
  again = json.loads(gfile_text(f"{out_dir}/results.json"))
  assert again["test"]["accuracy"] == results["test"]["accuracy"]
  assert json.loads(gfile_text(f"{out_dir}/source.json"))["checkpoint_step"] == 12
  assert tf.io.gfile.exists(f"{out_dir}/confusion_test.png")

  # init_from=<the remote workdir>: an encoder of its latest checkpoint.
  assert pretrained_load.is_mmjax_workdir(workdir)
  step, tree = checkpoint.restore_latest_tree(f"{workdir}/checkpoints")
  assert step == 12
  params, _ = pretrained_load.load_workdir_encoder(
      workdir, "audio", tree["params"]["audio_encoder"], "config.model.encoders.audio")
  jax.tree.map(np.testing.assert_array_equal, params,
               tree["params"]["audio_encoder"])


def test_robustness_outputs_on_a_remote_workdir(tmp_path, monkeypatch):
  """The robustness folder's files (without training: the evaluation's
  accuracies are those of the train loop's evaluator, tested elsewhere)."""
  monkeypatch.chdir(tmp_path)
  workdir = epath.Path(f"{RAM}runs/{uuid.uuid4().hex}")
  out_dir = restore.new_output_dir(workdir / "robustness")
  assert restore.new_output_dir(workdir / "robustness") == workdir / "robustness-1"
  curves = {"gaussian_noise": {"levels": [0.0, 0.5], "unit": "sigma",
                               "accuracy": [0.9, 0.5]}}
  plots.corruption_curves({"run": curves}, out_dir / "corruptions.png")
  written = plots.intermediates_pictures(
      {"fusion/gate": np.random.default_rng(0).random((4, 2, 3))},
      np.arange(4), 2, out_dir)
  assert [str(p) for p in written] == [f"{out_dir}/intermediates_fusion.gate.png"]
  writers.write_json_atomic(out_dir / "robustness.json", {"corruptions": curves})
  for name in ("corruptions.png", "intermediates_fusion.gate.png"):
    assert tf.io.gfile.stat(f"{out_dir}/{name}").length > 1000
  assert robustness._load_reference(str(workdir)) == {"corruptions": curves}  # pylint: disable=protected-access
  assert not os.listdir(tmp_path)
  remove_ram_tree(str(workdir))
