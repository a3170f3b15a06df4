import numpy as np
import pytest

from mmjax.analysis.robustness_metrics import effective_robustness
from mmjax.analysis.robustness_metrics import relative_robustness


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
