"""A run's workdir is self-contained (mmjax.workdir): the preprocessing state
fitted on its training data (the emoji tokenizer) travels with it, evaluating
it on other data never re-fits, and `--workdir` alone evaluates it, also
after it was moved."""

import json
import os
import pathlib
import shutil
import subprocess
import sys

import pytest

from configs import av_digits
from mmjax import objectives
from mmjax.data import pipeline
from mmjax.data.builders import emoji_sources
from mmjax.data.builders import registry as datasets
from mmjax.data.errors import DataError
from mmjax.train import loop
from mmjax.workdir import assets
from mmjax.workdir import configs as workdir_configs
from tests.conftest import REPO_ROOT
from tests.train.conftest import TINY_OVERRIDES


def _set(config, overrides):
  for key, value in overrides.items():
    *parents, leaf = key.split(".")
    node = config
    for p in parents:
      node = node[p]
    node[leaf] = value


def launch(*args):
  proc = subprocess.run([sys.executable, "launch.py", *args], cwd=REPO_ROOT,
                        capture_output=True, text=True, timeout=300)
  assert proc.returncode == 0, proc.stderr[-3000:]
  return proc


def latest_results(out_dir):
  return json.loads((out_dir / "results.json").read_text())


def same_figures(a, b):
  """The metrics of split results `a` and `b` are equal (the evaluation is
  deterministic: same examples, same order, same checkpoint)."""
  assert set(a) == set(b)
  for split in a:
    for metric, value in a[split].items():
      assert b[split][metric] == pytest.approx(value, abs=1e-6), (split, metric)


@pytest.fixture(scope="module")
def fewer_names_dir(tmp_path_factory, real_manual_dir):
  """The emoji folder with the names of most languages removed (every
  annotation file but those of the 10 en, fr and de locales): a dataset
  prepared from it has the same emoji, pictures and English names, and a
  tokenizer trained on fewer names."""
  root = tmp_path_factory.mktemp("emoji_fewer_names")
  for name in (emoji_sources.EMOJI_TEST, emoji_sources.FONT):
    (root / name).parent.mkdir(parents=True, exist_ok=True)
    (root / name).symlink_to(real_manual_dir / name)
  annotations = sorted(
      (real_manual_dir / emoji_sources.ANNOTATIONS).glob("*.xml"))
  kept = [p for p in annotations if p.stem.split("_")[0] in ("en", "fr", "de")]
  assert 3 <= len(kept) <= len(annotations) // 4
  (root / emoji_sources.ANNOTATIONS).mkdir()
  for p in kept:
    (root / emoji_sources.ANNOTATIONS / p.name).symlink_to(p)
  return root


def test_workdir_holds_its_tokenizer_and_records_it(tiny_emoji_run):
  config, workdir = tiny_emoji_run
  record = json.loads((workdir / "assets" / "assets.json").read_text())
  assert list(record) == ["tokenizer"]
  dataset_dir = pathlib.Path(datasets.get_builder(config.data).data_dir)
  assert record["tokenizer"]["fingerprint"] == assets.fingerprint(
      dataset_dir / "tokenizer")
  assert (workdir / "assets" / "tokenizer" / "tokenizer.json").read_bytes() == (
      dataset_dir / "tokenizer" / "tokenizer.json").read_bytes()
  metadata = json.loads(next((workdir / "checkpoints" / "4").glob(
      "_CHECKPOINT_METADATA")).read_text())
  assert metadata["custom_metadata"]["assets"] == {
      "tokenizer": record["tokenizer"]["fingerprint"]}
  # The saved config keeps the placeholder: the run is not tied to a folder.
  saved = json.loads((workdir / "config.json").read_text())
  assert "{dataset_dir}/tokenizer" in saved["pp_eval"]["text"]


def test_moved_workdir_evaluated_on_other_data_keeps_the_run_tokenizer(
    tiny_emoji_run, fewer_names_dir, tmp_path):
  """The run, moved to another path (the original renamed away, so nothing
  can read it), evaluated with `--workdir` alone on a dataset whose own
  tokenizer differs."""
  config, original = tiny_emoji_run
  workdir = tmp_path / "moved" / "run"
  shutil.copytree(original, workdir, symlinks=True)
  hidden = original.with_name(original.name + "_away")
  original.rename(hidden)
  try:
    proc = launch("--workdir", str(workdir), "--mode=evaluate",
                  f"--config.data.manual_dir={fewer_names_dir}",
                  f"--config.data.data_dir={tmp_path / 'tfds'}")
  finally:
    hidden.rename(original)
  assert "has its own tokenizer" in proc.stdout
  out_dir, = (workdir / "evaluations").glob("*")
  source = json.loads((out_dir / "source.json").read_text())
  assert source["manual_dir"] == str(fewer_names_dir)
  # The other dataset did fit another tokenizer, which was not used ...
  assert list(source["dataset_assets_differing_from_the_run"]) == ["tokenizer"]
  # ... so the same test emoji score exactly as in the run's own evaluation.
  same_figures(latest_results(workdir), latest_results(out_dir))

  # The token ids fed to the model are the run's, not the new dataset's.
  other = config.copy_and_resolve_references()
  _set(other, {"data.manual_dir": str(fewer_names_dir),
               "data.data_dir": str(tmp_path / "tfds")})
  run = loop.setup(other, workdir, True, objectives.resolve(other))
  run.manager.close()
  shared = loop.setup(config, workdir, True, objectives.resolve(config))
  shared.manager.close()

  def token_ids(builder, pp):
    ds, _ = pipeline.eval_batches(builder, "test", modalities=("text",),
                                  pp=pp, global_batch_size=64)
    return next(ds.as_numpy_iterator())["text"]["token_ids"]

  fed = token_ids(run.builder, run.config.pp_eval)
  assert (fed == token_ids(shared.builder, shared.config.pp_eval)).all()
  refitted = token_ids(run.builder, other.pp_eval)  # the dataset's own
  assert (fed != refitted).any()


def test_changed_asset_is_refused(tiny_emoji_run, tmp_path):
  config, workdir = tiny_emoji_run
  copy = tmp_path / "run"
  shutil.copytree(workdir, copy, symlinks=True)
  tokenizer = copy / "assets" / "tokenizer" / "tokenizer.json"
  tokenizer.write_text(tokenizer.read_text() + "\n")
  with pytest.raises(DataError, match="tokenizer differs from what run"):
    loop.setup(config, copy, True, objectives.resolve(config))


def test_av_digits_evaluates_with_only_workdir(prepared_data_dir, tmp_path):
  config = av_digits.get_config()
  _set(config, {**TINY_OVERRIDES, "data.data_dir": str(prepared_data_dir),
                "num_train_steps": 4, "eval_splits": ("validation",)})
  workdir = tmp_path / "run"
  loop.train_and_evaluate(config, workdir)
  proc = launch("--workdir", str(workdir), "--mode=evaluate",
                "--config.eval_batch_size=500")
  out_dir, = (workdir / "evaluations").iterdir()
  assert str(out_dir / "results.json") in proc.stdout
  same_figures(latest_results(workdir), latest_results(out_dir))

  # Keys that change the model or its preprocessing are refused, by name.
  changed = workdir_configs.read_config(workdir)
  _set(changed, {"model.fusion.hidden_dims": (8,),
                 "pp_eval.image": "value_range(0, 1)|resize(14, 14)"})
  with pytest.raises(ValueError, match=r"model\.fusion\.hidden_dims .*"
                     r"pp_eval\.image .*--allow_config_change"):
    workdir_configs.check_evaluation_config(changed, workdir)
  assert workdir_configs.check_evaluation_config(
      changed, workdir, allow_config_change=True)


def test_workdir_without_config_is_one_line_error(tmp_path):
  proc = subprocess.run(
      [sys.executable, "launch.py", "--workdir", str(tmp_path),
       "--mode=evaluate"], cwd=REPO_ROOT, capture_output=True, text=True,
      timeout=300)
  assert proc.returncode != 0 and "Traceback" not in proc.stderr
  assert "--config is required" in proc.stderr
  assert "holds no config.json" in proc.stderr
  assert os.listdir(tmp_path) == []
