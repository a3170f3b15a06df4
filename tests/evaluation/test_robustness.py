"""launch.py --mode=robustness on a tiny model trained on the real data."""

import copy
import json
import os
import subprocess
import sys

import ml_collections
import numpy as np
import pytest

from mmjax.analysis import robustness_metrics
from mmjax.analysis.corruptions import CORRUPTIONS
from mmjax.evaluation import robustness
from mmjax.train import loop
from tests.conftest import REPO_ROOT

# One family per modality: each family's own behaviour is tested in
# tests/analysis/test_corruptions.py; here the sweep, its bookkeeping and the
# files (every family is one more compile and five evaluations).
FAMILIES = ("audio_white_noise", "image_occlusion")
# The evaluated config as a recipe trained with audio white noise (read at
# evaluation only: the tiny model trains without corruption augmentation).
TRAIN_FAMILIES = ("audio_white_noise",)


def test_modality_subsets_largest_first():
  assert robustness.modality_subsets(("image", "audio")) == [
      ("image", "audio"), ("image",), ("audio",)]


def test_selected_corruptions_default_all_of_the_models_modalities():
  assert robustness.selected_corruptions(None, ("image", "audio")) == list(
      CORRUPTIONS)
  assert robustness.selected_corruptions(None, ("image",)) == [
      n for n, c in CORRUPTIONS.items() if c.modality == "image"]
  # CORRUPTIONS' order, and a family of another modality is skipped.
  assert robustness.selected_corruptions(
      ("image_occlusion", "audio_white_noise"), ("image",)) == [
          "image_occlusion"]
  assert robustness.selected_corruptions((), ("image", "audio")) == []


def test_train_families_from_the_config():
  config = ml_collections.ConfigDict({"modalities": ("image", "audio")})
  assert robustness.train_families(config) == frozenset()  # recorded before
  config.corruption_augmentation = ml_collections.ConfigDict(
      {"probability": 0.0, "families": ("image_occlusion",)})
  # The experiment's split, whether or not this recipe trains with it.
  assert robustness.train_families(config) == {"image_occlusion"}
  config.corruption_augmentation.probability = 0.5
  assert robustness.train_families(config) == {"image_occlusion"}


@pytest.fixture(scope="module")
def trained(tmp_path_factory, prepared_data_dir):
  from configs import av_digits  # pylint: disable=g-import-not-at-top
  from tests.train.conftest import tiny_overrides  # pylint: disable=g-import-not-at-top
  config = av_digits.get_config("fusion=gated")
  overrides = {**tiny_overrides(), "data.data_dir": str(prepared_data_dir),
               # The validation split (1,000 examples) rather than the test
               # split (2,000): every analysis below evaluates it ~25 times.
               "eval_splits": ("validation",), "num_train_steps": 40,
               # Only the final evaluation and checkpoint: the analysis reads
               # those.
               "eval_every_steps": 40, "checkpoint_every_steps": 40,
               "aux_loss_weight": 1.0, "modality_dropout.audio": 0.3}
  for key, value in overrides.items():
    *parents, leaf = key.split(".")
    node = config
    for p in parents:
      node = node[p]
    node[leaf] = value
  workdir = tmp_path_factory.mktemp("gated")
  results = loop.train_and_evaluate(config, workdir)
  eval_config = copy.deepcopy(config)
  with eval_config.unlocked():
    if "corruption_augmentation" not in eval_config:
      eval_config.corruption_augmentation = ml_collections.ConfigDict()
    eval_config.corruption_augmentation.probability = 0.5
    eval_config.corruption_augmentation.families = TRAIN_FAMILIES
  out = robustness.evaluate_robustness(eval_config, workdir,
                                       corruptions=FAMILIES)
  return config, workdir, results, out


def _unimodal_run(root, name, modality, accuracy, split="validation"):
  """A single-modality workdir as --mode=robustness leaves it: its
  robustness.json (hand-made curves of its modality's families)."""
  workdir = root / name
  (workdir / "robustness").mkdir(parents=True)
  curves = {f: {"levels": list(c.sweep_levels), "unit": c.unit,
                "modality": modality, "accuracy": list(
                    np.linspace(accuracy, 0.1, len(c.levels) + 1))}
            for f, c in CORRUPTIONS.items() if c.modality == modality}
  (workdir / "robustness" / "robustness.json").write_text(json.dumps(
      {"test_split": split, "corruptions": curves,
       "modality_subsets_accuracy": {split: {modality: accuracy}}}))
  return workdir


def test_outputs_and_consistency_with_training_results(trained):
  _, workdir, results, out = trained
  assert out == workdir / "robustness"
  report = json.loads((out / "robustness.json").read_text())
  for name in ("robustness.md", "corruptions.png",
               "intermediates_fusion.gates.png"):
    assert (out / name).is_file(), name
  subsets = report["modality_subsets_accuracy"]["validation"]
  assert set(subsets) == {"image+audio", "image", "audio"}
  # All modalities present is exactly the final evaluation of training.
  assert subsets["image+audio"] == pytest.approx(
      results["validation"]["accuracy"])
  # Each subset is evaluated through the presence masks: ignoring them would
  # give the full model's accuracy, to the last example, for every subset.
  assert subsets["image"] != subsets["image+audio"]
  assert subsets["audio"] != subsets["image+audio"]
  deltas = report["intermodal"]["leave_one_modality_out_accuracy_delta"]
  assert deltas["image"] == pytest.approx(
      subsets["image+audio"] - subsets["audio"])
  assert list(report["corruptions"]) == list(FAMILIES)
  for name, curve in report["corruptions"].items():
    assert len(curve["accuracy"]) == len(CORRUPTIONS[name].levels) + 1
    assert curve["accuracy"][0] == subsets["image+audio"]
    assert 0.0 <= curve["relative_robustness"] <= 1.0
    # The same model with the corrupted modality marked missing.
    other = "audio" if CORRUPTIONS[name].modality == "image" else "image"
    assert curve["missing_accuracy"] == subsets[other]
    assert curve["family_split"] == (
        "train" if name in TRAIN_FAMILIES else "heldout")
  target = report["missing_modality_target"]
  assert target == json.loads(json.dumps(
      robustness_metrics.missing_modality_target(report["corruptions"])))
  assert target["train"]["cells"] == 5 and target["heldout"]["cells"] == 5
  assert target["all"]["worst"]["margin"] == min(
      a - c["missing_accuracy"] for c in report["corruptions"].values()
      for a in c["accuracy"][1:])
  text = (out / "robustness.md").read_text()
  assert "## Target: corrupted >= marked missing - 1 point(s)" in text
  assert f"| audio marked missing | {subsets['image']:.4f} |" in text
  cka = report["intermodal"]["cka"]
  assert set(cka) == {"image~fused", "audio~fused", "image~audio"}
  assert all(0.0 <= v <= 1.0 + 1e-9 for v in cka.values())
  assert np.isfinite(report["intermodal"]["mutual_information_nats"]["image~audio"])


def test_severe_corruption_hurts_the_trained_model(trained):
  # After 40 steps the tiny model is far above chance (0.10) on clean data;
  # the most severe image occlusion (80 % of the pixels) must cost accuracy.
  report = json.loads((trained[3] / "robustness.json").read_text())
  occlusion = report["corruptions"]["image_occlusion"]["accuracy"]
  assert occlusion[0] > 0.3
  assert occlusion[-1] < occlusion[0] - 0.05


def test_launch_with_reference_and_unimodal_workdirs(trained, tmp_path):
  # launch.py --mode=robustness as a user runs it on the trained workdir
  # (config.json read back), with itself as the reference of effective
  # robustness and two single-modality runs drawn beside it.
  config, workdir, _, first_out = trained
  image = _unimodal_run(tmp_path, "image_only", "image", 0.9)
  audio = _unimodal_run(tmp_path, "audio_only", "audio", 0.8)
  proc = subprocess.run(
      [sys.executable, "launch.py", "--workdir", str(workdir),
       "--mode=robustness", "--cpu_devices=1", "--reference_workdir",
       str(workdir), "--corruptions=image_occlusion",
       f"--unimodal_workdirs={image},{audio}"],
      cwd=REPO_ROOT, env=dict(os.environ, JAX_PLATFORMS="cpu"),
      capture_output=True, text=True, timeout=600)
  assert proc.returncode == 0, proc.stderr[-3000:]
  out = workdir / "robustness-1"  # the first analysis is kept
  assert f"Results in {out / 'robustness.md'}" in proc.stdout
  report = json.loads((out / "robustness.json").read_text())
  assert list(report["corruptions"]) == ["image_occlusion"]
  curve = report["corruptions"]["image_occlusion"]
  # Corruptions are seeded per batch: the same model gives the same curve.
  first = json.loads((first_out / "robustness.json").read_text())
  assert curve["accuracy"] == first["corruptions"]["image_occlusion"]["accuracy"]
  assert curve["effective_robustness"] == pytest.approx(0.0, abs=1e-12)
  assert curve["family_split"] == (
      "train" if "image_occlusion" in robustness.train_families(config)
      else "heldout")
  unimodal = report["unimodal"]
  assert set(unimodal) == {"image only: image_only", "audio only: audio_only"}
  image_curve = json.loads((image / "robustness" / "robustness.json")
                           .read_text())["corruptions"]["image_occlusion"]
  assert unimodal["image only: image_only"]["corruptions"][
      "image_occlusion"]["accuracy"] == image_curve["accuracy"]
  assert unimodal["audio only: audio_only"]["clean_accuracy"] == 0.8
  assert (out / "corruptions.png").is_file()
  text = (out / "robustness.md").read_text()
  assert "| image only: image_only | 0.9000 | 0.7400 |" in text
  assert "| audio only: audio_only | " + " | ".join(["0.8000"] * 6) in text
  # corruptions.png's panel: the model, the reference, the image-only curve,
  # then the flat lines: marked missing and the untouched audio-only model
  # (robustness.json's keys are sorted).
  drawn = robustness.plot_curves(
      workdir.name, report, tmp_path / "corruptions.png",
      {"reference": first["corruptions"]})
  assert drawn == {"image_occlusion": [
      workdir.name, "reference", "image only: image_only",
      f"{workdir.name}, corrupted modality marked missing",
      "audio only: audio_only"]}
  # Without unimodal runs: the model, the reference and marked missing.
  drawn = robustness.plot_curves(
      workdir.name, first, tmp_path / "first.png",
      {"reference": first["corruptions"]})
  assert drawn["audio_white_noise"] == [
      workdir.name, "reference",
      f"{workdir.name}, corrupted modality marked missing"]


def test_missing_reference_is_a_clear_error(trained, tmp_path):
  config, workdir, _, _ = trained
  with pytest.raises(FileNotFoundError, match="run --mode=robustness"):
    robustness.evaluate_robustness(config, workdir, reference_workdir=str(tmp_path))


def test_unimodal_workdir_errors(trained, tmp_path):
  config, workdir, _, _ = trained
  with pytest.raises(FileNotFoundError, match="on the unimodal workdir"):
    robustness.evaluate_robustness(config, workdir,
                                   unimodal_workdirs=[str(tmp_path)])
  with pytest.raises(ValueError, match="not of a single modality"):
    robustness.evaluate_robustness(config, workdir,
                                   unimodal_workdirs=[str(workdir)])
  test_split = _unimodal_run(tmp_path, "image_only", "image", 0.9, "test")
  with pytest.raises(ValueError, match="analysed on split 'test'"):
    robustness.evaluate_robustness(config, workdir,
                                   unimodal_workdirs=[str(test_split)])


def test_unknown_corruption_lists_the_known_ones(trained):
  config, workdir, _, _ = trained
  with pytest.raises(ValueError, match="image_blur.*audio_babble_noise"):
    robustness.evaluate_robustness(config, workdir, corruptions=("image_blur",))
