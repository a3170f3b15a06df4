"""`mmjax.export.export.export_workdir` on tiny av_digits runs trained on
the real data: each artifact, reloaded in a fresh process without mmjax,
gives the in-process model's outputs on 16 real test examples, in batches
of 16 and of 5 (the batch is symbolic at export)."""

import json
import os
import pathlib
import subprocess
import sys

import jax
import numpy as np
import pytest

from mmjax import objectives
from mmjax.data import pipeline
from mmjax.evaluation import restore
from mmjax.export import export
from tests.export.test_model_card import mismatches

LOADER = pathlib.Path(__file__).with_name("load_artifacts.py")
TOLERANCE = 1e-5
NUM_EXAMPLES = 16


def live_outputs(config, workdir, present_audio):
  """16 test examples as the eval pipeline gives them, and the restored
  model's outputs on them, computed as `--mode=evaluate` does (eval mode,
  its own jit): `{entry point: {output: array}}`."""
  builder, state, manager, _, _ = restore.restore_for_evaluation(
      config, workdir, objectives.resolve(config))
  manager.close()
  ds, _ = pipeline.eval_batches(builder, "test", modalities=config.modalities,
                                pp=config.pp_eval,
                                global_batch_size=NUM_EXAMPLES)
  batch = next(ds.as_numpy_iterator())
  inputs = {m: batch[m] for m in config.modalities}
  present = {m: np.ones(NUM_EXAMPLES, np.float32) for m in config.modalities}
  present["audio"] = present_audio

  @jax.jit
  def run(inputs, present):
    logits, sown = state.apply_fn(state.variables(), inputs, present,
                                  train=False, mutable=["modality_logits"])
    out = {"logits": logits}
    out.update({f"aux_logits_{m}": v[0]
                for m, v in sown.get("modality_logits", {}).items()})
    return out

  named = {**inputs, **{f"present_{m}": p for m, p in present.items()}}
  return named, jax.device_get({"serving_default": run(inputs, None),
                                "with_presence": run(inputs, present)})


def reload(kind, pairs, tmp_path):
  """Runs the loader script once for `kind` over `pairs` (`{run: (export
  folder, named inputs)}`); its outputs `{run: {"entry/output": array}}`."""
  args = []
  for run, (out_dir, named) in pairs.items():
    np.savez(tmp_path / f"{run}_inputs.npz", **named)
    args += [str(out_dir), str(tmp_path / f"{run}_inputs.npz"),
             str(tmp_path / f"{run}_{kind}.npz")]
  proc = subprocess.run(
      [sys.executable, str(LOADER), kind, *args],
      cwd=tmp_path, capture_output=True, text=True, timeout=600,
      env=dict(os.environ, PYTHONPATH="", TF_CPP_MIN_LOG_LEVEL="3"))
  assert proc.returncode == 0, proc.stderr[-3000:]
  return {run: dict(np.load(tmp_path / f"{run}_{kind}.npz")) for run in pairs}


RUN_NAMES = ("default", "cross_attention")
# Audio missing for every other example through the presence input.
PRESENT_AUDIO = np.tile(np.float32([1, 0]), NUM_EXAMPLES // 2)


@pytest.fixture(scope="module")
def round_trip(trained_runs, tmp_path_factory):
  """Per run: its export folder, the live outputs and each artifact's
  outputs reloaded in a fresh process (one per artifact kind)."""
  tmp_path = tmp_path_factory.mktemp("export_round_trip")
  exported, live = {}, {}
  for run in RUN_NAMES:
    config, workdir = trained_runs(run)
    out_dir = export.export_workdir(config, workdir)
    named, live[run] = live_outputs(config, workdir, PRESENT_AUDIO)
    exported[run] = (out_dir, named)
  reloaded = {kind: reload(kind, exported, tmp_path)
              for kind in ("jax_export", "saved_model")}
  return {run: (exported[run][0], live[run],
                {kind: reloaded[kind][run] for kind in reloaded})
          for run in RUN_NAMES}


@pytest.mark.parametrize("run", RUN_NAMES)
def test_artifacts_reloaded_without_mmjax_match_the_live_model(
    run, round_trip, trained_runs):
  out_dir, live, reloaded = round_trip[run]
  assert out_dir == trained_runs(run)[1] / "export"
  # Both configs keep the default's auxiliary heads (aux_loss_weight 1).
  outputs = {"logits", "aux_logits_image", "aux_logits_audio"}
  assert set(live["serving_default"]) == outputs
  differences = {}
  for kind, got in reloaded.items():
    assert set(got) == {f"{e}/{o}" for e in live for o in outputs}, kind
    for key, value in got.items():
      entry, output = key.split("/")
      want = live[entry][output]
      assert value.shape == want.shape and value.dtype == np.float32, key
      differences[f"{kind}:{key}"] = float(np.abs(value - want).max())
  print(f"{run}: max |exported - live|: {differences}")
  assert max(differences.values()) <= TOLERANCE, differences


def test_presence_input_masks_the_missing_audio(round_trip):
  """The live reference honours `present` (so the comparison above checks
  that the exported `with_presence` does): examples without audio change,
  the others do not."""
  _, live, _ = round_trip["default"]
  default, masked = (live[e]["logits"] for e in ("serving_default",
                                                 "with_presence"))
  assert np.abs(default - masked)[PRESENT_AUDIO == 0].max() > 1e-3
  np.testing.assert_array_equal(default[PRESENT_AUDIO == 1],
                                masked[PRESENT_AUDIO == 1])


def test_signature_describes_the_artifacts(trained_runs, round_trip):
  config, workdir = trained_runs("default")
  out_dir = round_trip["default"][0]
  signature = json.loads((out_dir / "signature.json").read_text())
  assert signature["checkpoint_step"] == config.num_train_steps
  assert signature["class_names"] == [str(d) for d in range(10)]
  assert signature["preprocessing"]["pp_eval"] == config.pp_eval.to_dict()
  inputs = signature["entry_points"]["serving_default"]["inputs"]
  assert [(i["name"], i["shape"], i["dtype"]) for i in inputs] == [
      ("image", ["batch", 28, 28, 1], "float32"),
      ("audio", ["batch", 8000], "float32")]
  presence = signature["entry_points"]["with_presence"]["inputs"][2:]
  assert [(i["name"], i["shape"]) for i in presence] == [
      ("present_image", ["batch"]), ("present_audio", ["batch"])]
  assert [o["name"] for o in signature["outputs"]] == [
      "logits", "aux_logits_image", "aux_logits_audio"]
  assert sorted(p.name for p in out_dir.iterdir()) == [
      "saved_model", "serving_default.jax_export", "signature.json",
      "with_presence.jax_export"]
  card = (workdir / "model_card.md").read_text()
  results = json.loads((workdir / "results.json").read_text())
  assert not mismatches(card, results)
  assert "`export/` (checkpoint step 4)" in card
  assert not list(workdir.glob("export.tmp-*"))


def test_contrastive_run_is_refused_before_anything_is_written(
    trained_runs, tmp_path):
  config, _ = trained_runs("default")
  config = config.copy_and_resolve_references()
  config.objective = "contrastive"
  with pytest.raises(ValueError, match="config.objective 'classification'"):
    export.export_workdir(config, tmp_path)
  assert not list(tmp_path.iterdir())


def test_workdir_without_checkpoint_is_a_clear_error(trained_runs, tmp_path):
  config, _ = trained_runs("default")
  with pytest.raises(FileNotFoundError, match="no checkpoints in"):
    export.export_workdir(config, tmp_path)
  assert not (tmp_path / "export").exists()


def test_docs_snippet_loads_the_export_without_mmjax(round_trip, tmp_path):
  """docs/running_experiments.md "Export for serving": its Python block,
  run as a user would (outside the repository, mmjax not importable) on
  the default run's export."""
  from tests import user_copy  # pylint: disable=g-import-not-at-top
  page = user_copy.REPO_ROOT / "docs" / "running_experiments.md"
  (code,) = [b for b in user_copy.page_blocks(page, "python")
             if "jax.export.deserialize" in b]
  out_dir = round_trip["default"][0]
  assert code.count('"runs/av_digits/export"') == 1
  (tmp_path / "load.py").write_text(
      code.replace('"runs/av_digits/export"', repr(str(out_dir))))
  proc = subprocess.run(
      [sys.executable, "load.py"], cwd=tmp_path, capture_output=True,
      text=True, timeout=600,
      env=dict(os.environ, PYTHONPATH="", TF_CPP_MIN_LOG_LEVEL="3"))
  assert proc.returncode == 0, proc.stderr[-3000:]
  predicted, difference = proc.stdout.strip().splitlines()[-2:]
  names = json.loads((out_dir / "signature.json").read_text())["class_names"]
  assert all(n in names for n in eval(predicted)), predicted  # pylint: disable=eval-used
  assert float(difference) <= TOLERANCE
