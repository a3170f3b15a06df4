import numpy as np
import pytest

from mmjax.analysis.robustness_metrics import effective_robustness
from mmjax.analysis.robustness_metrics import missing_modality_target
from mmjax.analysis.robustness_metrics import relative_robustness
from mmjax.analysis.robustness_metrics import target_cells
from mmjax.analysis.robustness_metrics import target_summary


def _multibench_relative(curve):
  """relative_robustness_helper of MultiBench's eval_scripts/robustness.py."""
  area = 0
  for i in range(len(curve) - 1):
    area += (curve[i] + curve[i + 1]) * 0.1 / 2
  return area


def _multibench_effective(curve, reference):
  """effective_robustness_helper of MultiBench, with `reference` for LF."""
  f, lf = np.array(curve), np.array(reference)
  return np.sum(f - (lf + (f[0] - lf[0])))


def test_relative_robustness_hand_computed_values():
  assert relative_robustness([1.0] * 5) == pytest.approx(1.0)
  assert relative_robustness([1.0, 0.5]) == pytest.approx(0.75)
  # Steps of 0.5: 0.5 * ((0.9 + 0.7) / 2 + (0.7 + 0.5) / 2).
  assert relative_robustness([0.9, 0.7, 0.5]) == pytest.approx(0.7)


def test_relative_robustness_uses_level_spacing():
  # Levels map to 0, 0.25, 1: 0.25 * 0.9 + 0.75 * 0.5.
  assert relative_robustness([1.0, 0.8, 0.2], levels=[0.0, 0.1, 0.4]) == (
      pytest.approx(0.6))
  # Only relative spacing matters, and decreasing levels (SNR) work too.
  assert relative_robustness([1.0, 0.8, 0.2], levels=[3.0, 4.0, 7.0]) == (
      pytest.approx(0.6))
  assert relative_robustness([1.0, 0.8, 0.2], levels=[20.0, 10.0, 0.0]) == (
      pytest.approx(0.7))


def test_relative_robustness_matches_multibench_for_eleven_levels():
  curve = np.random.default_rng(0).uniform(0.2, 0.9, 11)
  assert relative_robustness(curve) == pytest.approx(
      _multibench_relative(curve), abs=1e-12)
  # For other lengths MultiBench keeps the step 0.1.
  curve = curve[:6]
  assert relative_robustness(curve) * 5 / 10 == pytest.approx(
      _multibench_relative(curve), abs=1e-12)


def test_effective_robustness_hand_computed_value():
  model = [0.9, 0.8, 0.6]
  reference = [0.8, 0.6, 0.3]
  # Gap (f - f0) - (r - r0) = [0, 0.1, 0.2]; trapezoid with step 0.5.
  assert effective_robustness(model, reference) == pytest.approx(0.1)
  assert effective_robustness(reference, model) == pytest.approx(-0.1)
  # Levels at 0, 0.2, 1: 0.2 * 0.05 + 0.8 * 0.15.
  assert effective_robustness(model, reference, levels=[0, 1, 5]) == (
      pytest.approx(0.13))


def test_effective_robustness_is_zero_for_reference_and_its_shifts():
  reference = [0.8, 0.7, 0.4, 0.2]
  assert effective_robustness(reference, reference) == 0.0
  shifted = np.asarray(reference) + 0.15
  assert effective_robustness(shifted, reference) == pytest.approx(0.0,
                                                                   abs=1e-12)


def test_effective_robustness_relations():
  rng = np.random.default_rng(1)
  model, reference = rng.uniform(0.1, 1.0, (2, 7))
  levels = np.sort(rng.uniform(0.0, 3.0, 7))
  assert effective_robustness(model, reference, levels) == pytest.approx(
      relative_robustness(model, levels) -
      relative_robustness(reference, levels) - (model[0] - reference[0]),
      abs=1e-12)
  gap = (model - model[0]) - (reference - reference[0])
  assert effective_robustness(model, reference) == pytest.approx(
      (_multibench_effective(model, reference) - gap[-1] / 2) / 6, abs=1e-12)


def test_rejects_bad_inputs():
  with pytest.raises(ValueError, match="at least 2"):
    relative_robustness([0.9])
  with pytest.raises(ValueError, match="at least 2"):
    relative_robustness([[0.9, 0.8]])
  with pytest.raises(ValueError, match="same length"):
    effective_robustness([0.9, 0.8, 0.7], [0.9, 0.8])
  with pytest.raises(ValueError, match="at least 2"):
    effective_robustness([0.9], [0.9])
  with pytest.raises(ValueError, match="entries"):
    relative_robustness([0.9, 0.8, 0.7], levels=[0.0, 1.0])
  with pytest.raises(ValueError, match="monotone"):
    relative_robustness([0.9, 0.8, 0.7], levels=[0.0, 1.0, 1.0])
  with pytest.raises(ValueError, match="monotone"):
    relative_robustness([0.9, 0.8, 0.7], levels=[0.0, 2.0, 1.0])
  with pytest.raises(ValueError, match="finite"):
    relative_robustness([0.9, 0.8, 0.7], levels=[np.inf, 10.0, 0.0])


# Hand-made curves: clean level first (left out of the target).
CURVES = {
    "image_noise": {"levels": [0.0, 0.1, 0.5], "accuracy": [0.99, 0.97, 0.95],
                    "missing_accuracy": 0.96, "family_split": "train"},
    "audio_noise": {"levels": [float("inf"), 10.0, -5.0],
                    "accuracy": [0.99, 0.9625, 0.80],
                    "missing_accuracy": 0.9725, "family_split": "heldout"},
    "image_blur": {"levels": [0.0, 1.0, 2.0], "accuracy": [0.99, 0.98, 0.97],
                   "missing_accuracy": 0.90, "family_split": "heldout"},
}


def test_missing_modality_target_fractions_and_worst_cells():
  target = missing_modality_target(CURVES)
  assert target["tolerance"] == 0.01
  # train: 0.97 - 0.96 = +0.01 and 0.95 - 0.96 = -0.01 (exactly one point
  # below, which meets it; 0.95 - 0.96 is -0.01000000000000001 in floats).
  assert target["train"]["cells"] == 2 and target["train"]["met"] == 2
  assert target["train"]["fraction"] == 1.0
  assert target["train"]["worst"]["level"] == 0.5
  assert target["train"]["worst"]["margin"] == pytest.approx(-0.01)
  # held out: audio 10 dB -0.01 (met), -5 dB -0.1725 (not), blur +0.08, +0.07.
  assert target["heldout"]["cells"] == 4 and target["heldout"]["met"] == 3
  assert target["heldout"]["fraction"] == 0.75
  worst = target["heldout"]["worst"]
  assert (worst["family"], worst["level"]) == ("audio_noise", -5.0)
  assert worst["accuracy"] == 0.80 and worst["missing_accuracy"] == 0.9725
  assert worst["margin"] == pytest.approx(-0.1725)
  assert target["all"]["cells"] == 6 and target["all"]["met"] == 5
  assert target["all"]["fraction"] == pytest.approx(5 / 6)
  assert target["all"]["worst"] == worst


def test_missing_modality_target_mutation_just_below_the_tolerance():
  # The same curves with the 10 dB cell half a point lower: it fails.
  mutated = {**CURVES, "audio_noise": {**CURVES["audio_noise"],
                                        "accuracy": [0.99, 0.9575, 0.80]}}
  assert missing_modality_target(mutated)["heldout"]["met"] == 2
  # A larger tolerance lets the -5 dB cell through; zero tolerance fails the
  # two cells exactly one point below.
  assert missing_modality_target(CURVES, tolerance=0.2)["all"]["met"] == 6
  assert missing_modality_target(CURVES, tolerance=0.0)["all"]["met"] == 3


def test_target_cells_skip_the_clean_level_and_unimodal_curves():
  curves = {**CURVES, "image_only_curve": {"levels": [0.0, 0.1],
                                           "accuracy": [0.9, 0.1]}}
  cells = target_cells(curves, fold="george")
  assert len(cells) == 6
  assert all(c["fold"] == "george" for c in cells)
  assert [c["level"] for c in cells if c["family"] == "image_noise"] == [0.1, 0.5]
  assert [c["level"] for c in cells if c["family"] == "audio_noise"] == [10.0, -5.0]
  # Recorded before family_split: held out.
  old = {"f": {"levels": [0.0, 1.0], "accuracy": [0.9, 0.5],
               "missing_accuracy": 0.8}}
  assert target_cells(old)[0]["split"] == "heldout"


def test_target_summary_empty_groups_and_bad_inputs():
  target = target_summary([])
  for group in ("train", "heldout", "all"):
    assert target[group] == {"cells": 0, "met": 0, "fraction": None,
                             "worst": None}
  with pytest.raises(ValueError, match="tolerance"):
    target_summary([], tolerance=-0.01)
  with pytest.raises(ValueError, match="split"):
    target_summary([{"split": "test", "accuracy": 1.0,
                     "missing_accuracy": 1.0}])
