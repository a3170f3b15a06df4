"""launch.py --mode=robustness on a tiny model trained on the real data."""

import json

import numpy as np
import pytest

from mmjax.analysis.corruptions import CORRUPTIONS
from mmjax.evaluation import robustness
from mmjax.train import loop


def test_modality_subsets_largest_first():
  assert robustness.modality_subsets(("image", "audio")) == [
      ("image", "audio"), ("image",), ("audio",)]


@pytest.fixture(scope="module")
def trained(tmp_path_factory, prepared_data_dir):
  from configs import av_digits  # pylint: disable=g-import-not-at-top
  from tests.train.conftest import tiny_overrides  # pylint: disable=g-import-not-at-top
  config = av_digits.get_config("fusion=gated")
  overrides = {**tiny_overrides(), "data.data_dir": str(prepared_data_dir),
               # The validation split (1,000 examples) rather than the test
               # split (2,000): every analysis below evaluates it ~25 times.
               "eval_splits": ("validation",), "num_train_steps": 40,
               "aux_loss_weight": 1.0, "modality_dropout.audio": 0.3}
  for key, value in overrides.items():
    *parents, leaf = key.split(".")
    node = config
    for p in parents:
      node = node[p]
    node[leaf] = value
  workdir = tmp_path_factory.mktemp("gated")
  results = loop.train_and_evaluate(config, workdir)
  out = robustness.evaluate_robustness(config, workdir)
  return config, workdir, results, out


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
  assert set(report["corruptions"]) == set(CORRUPTIONS)
  for name, curve in report["corruptions"].items():
    assert len(curve["accuracy"]) == len(CORRUPTIONS[name].levels) + 1
    assert curve["accuracy"][0] == subsets["image+audio"]
    assert 0.0 <= curve["relative_robustness"] <= 1.0
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


def test_reference_equal_to_the_model_has_zero_effective_robustness(trained):
  config, workdir, _, first_out = trained
  out = robustness.evaluate_robustness(config, workdir,
                                       reference_workdir=str(workdir),
                                       corruptions=("image_occlusion",))
  assert out.name == "robustness-1"  # the first analysis is kept
  report = json.loads((out / "robustness.json").read_text())
  assert list(report["corruptions"]) == ["image_occlusion"]
  curve = report["corruptions"]["image_occlusion"]
  # Corruptions are seeded per batch: the same model gives the same curve.
  first = json.loads((first_out / "robustness.json").read_text())
  assert curve["accuracy"] == first["corruptions"]["image_occlusion"]["accuracy"]
  assert curve["effective_robustness"] == pytest.approx(0.0, abs=1e-12)


def test_missing_reference_is_a_clear_error(trained, tmp_path):
  config, workdir, _, _ = trained
  with pytest.raises(FileNotFoundError, match="run --mode=robustness"):
    robustness.evaluate_robustness(config, workdir, reference_workdir=str(tmp_path))


def test_unknown_corruption_lists_the_known_ones(trained):
  config, workdir, _, _ = trained
  with pytest.raises(ValueError, match="image_blur.*audio_babble_noise"):
    robustness.evaluate_robustness(config, workdir, corruptions=("image_blur",))
