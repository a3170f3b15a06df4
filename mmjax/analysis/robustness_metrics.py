"""MultiBench's robustness metrics (Liang et al. 2021, "MultiBench: Multiscale
Benchmarks for Multimodal Representation Learning", NeurIPS Datasets and
Benchmarks).

Both summarise an accuracy-versus-corruption curve: `accuracies[0]` is the
clean accuracy and later entries are increasingly corrupted levels. MultiBench
computes them in `eval_scripts/robustness.py` of pliang279/MultiBench:

  relative_robustness_helper: area = sum_i (a[i] + a[i+1]) * 0.1 / 2
  effective_robustness_helper: sum(f - (lf + (f[0] - lf[0])))

(lf: the late-fusion baseline's curve), and then min-max normalises either
value across the baselines it stores for the task. That normalisation needs
MultiBench's leaderboard and is not done here: these functions return the raw
values. Pure numpy, float64.

`missing_modality_target` checks issue 32's target on the same curves: with
one modality corrupted the fused model must score at least what it scores
with that modality marked missing, minus a tolerance (1 point).
"""

from typing import Dict, List, Mapping, Optional, Sequence

import numpy as np


def _curve(values: Sequence[float], name: str) -> np.ndarray:
  values = np.asarray(values, dtype=np.float64)
  if values.ndim != 1 or values.size < 2:
    raise ValueError(f"{name} must be a 1-D sequence of at least 2 levels "
                     f"(clean first), got shape {values.shape}")
  return values


def _normalised_levels(levels: Optional[Sequence[float]],
                       size: int) -> np.ndarray:
  """Positions in [0, 1]: evenly spaced, or (l - l[0]) / (l[-1] - l[0])."""
  if levels is None:
    return np.linspace(0.0, 1.0, size)
  levels = _curve(levels, "levels")
  if levels.size != size:
    raise ValueError(f"levels has {levels.size} entries but the accuracies "
                     f"have {size}")
  if not np.isfinite(levels).all():
    raise ValueError(f"levels must be finite (for an SNR sweep with a +inf "
                     f"clean level pass levels=None), got {levels}")
  steps = np.diff(levels)
  if not ((steps > 0).all() or (steps < 0).all()):
    raise ValueError(f"levels must be strictly monotone, got {levels}")
  return (levels - levels[0]) / (levels[-1] - levels[0])


def _area(curve: np.ndarray, positions: np.ndarray) -> float:
  return float(np.sum((curve[1:] + curve[:-1]) * np.diff(positions)) / 2)


def relative_robustness(accuracies: Sequence[float],
                        levels: Optional[Sequence[float]] = None) -> float:
  """Area under the accuracy-versus-corruption-level curve.

  The trapezoid rule over the levels mapped linearly onto [0, 1] (clean level
  at 0, most corrupted at 1), so a model that keeps accuracy a at every level
  scores a. With `levels=None` the levels are evenly spaced, t_i = i / (N-1).

  MultiBench's `relative_robustness_helper` (eval_scripts/robustness.py in
  pliang279/MultiBench) uses a fixed step of 0.1, i.e. assumes 11 evenly
  spaced levels 0, 0.1, ..., 1. For N = 11 and `levels=None` this function
  gives exactly its value; for other N, MultiBench's value is this one times
  (N - 1) / 10. MultiBench then min-max normalises across its stored
  baselines, which is not done here.

  Args:
    accuracies: `[N]` accuracies (or any higher-is-better score), clean first.
    levels: optional `[N]` corruption levels, strictly monotone (increasing,
      e.g. noise std, or decreasing, e.g. SNR in dB) and finite; only their
      relative spacing matters.

  Returns:
    The area, a Python float, in the units of `accuracies`.

  Raises:
    ValueError: if `accuracies` is not 1-D with at least 2 entries, or
      `levels` is not finite, strictly monotone and of the same length.
  """
  accuracies = _curve(accuracies, "accuracies")
  return _area(accuracies, _normalised_levels(levels, accuracies.size))


def effective_robustness(accuracies: Sequence[float],
                         reference_accuracies: Sequence[float],
                         levels: Optional[Sequence[float]] = None) -> float:
  """Accuracy kept under corruption beyond a reference model, clean gap removed.

  The reference curve r (MultiBench uses late fusion) is shifted by the
  difference in clean accuracy, beta = r + (f[0] - r[0]), and the gap
  g = f - beta = (f - f[0]) - (r - r[0]) is integrated like
  `relative_robustness`: the trapezoid rule over levels mapped onto [0, 1].
  So it equals relative_robustness(f) - relative_robustness(r) - (f[0] - r[0])
  for the same levels: positive when the model loses less accuracy than the
  reference, 0 for a model equal to the reference (or any vertical shift of
  it), and comparable across sweeps with different numbers of levels.

  Deviation: MultiBench's `effective_robustness_helper`
  (eval_scripts/robustness.py in pliang279/MultiBench) returns the plain sum
  sum_i g_i over the levels, which grows with the number of levels and does
  not look at level spacing. Since g_0 = 0, for evenly spaced levels
  (`levels=None`) this function returns (sum_i g_i - g_{N-1} / 2) / (N - 1).
  MultiBench also min-max normalises across its stored baselines; not done
  here.

  Args:
    accuracies: `[N]` accuracies of the model, clean first.
    reference_accuracies: `[N]` accuracies of the reference model at the same
      levels.
    levels: optional `[N]` corruption levels, as in `relative_robustness`.

  Returns:
    The effective robustness, a Python float, in the units of `accuracies`.

  Raises:
    ValueError: if a curve is not 1-D with at least 2 entries, the curves'
      lengths differ, or `levels` is not finite, strictly monotone and of the
      same length.
  """
  accuracies = _curve(accuracies, "accuracies")
  reference = _curve(reference_accuracies, "reference_accuracies")
  if reference.size != accuracies.size:
    raise ValueError(f"accuracies and reference_accuracies must have the same "
                     f"length, got {accuracies.size} and {reference.size}")
  gap = (accuracies - accuracies[0]) - (reference - reference[0])
  return _area(gap, _normalised_levels(levels, accuracies.size))


# Accuracies are ratios of counts: a margin of exactly -tolerance (e.g.
# 0.9625 - 0.9725) may come out a few ulps below it in float64.
_MARGIN_EPS = 1e-9


def target_cells(curves: Mapping[str, Mapping], **extra) -> List[Dict]:
  """The corrupted cells of a robustness.json's "corruptions", one per
  (family, corrupted level), for `missing_modality_target`.

  Args:
    curves: `{family: {"levels": [L], "accuracy": [L], "missing_accuracy":
      float, "family_split": "train" | "heldout"}}`; the first level is the
      clean one and is left out. Families without "missing_accuracy" (a
      single-modality model) give no cells; a curve without "family_split"
      (recorded before it) counts as held out.
    **extra: keys copied into every cell, e.g. `fold="george"`.

  Returns:
    `[{"family", "level", "split", "accuracy", "missing_accuracy", **extra}]`.
  """
  cells = []
  for family, curve in curves.items():
    if "missing_accuracy" not in curve:
      continue
    for level, accuracy in zip(curve["levels"][1:], curve["accuracy"][1:]):
      cells.append({"family": family, "level": level,
                    "split": curve.get("family_split", "heldout"),
                    "accuracy": float(accuracy),
                    "missing_accuracy": float(curve["missing_accuracy"]),
                    **extra})
  return cells


def target_summary(cells: Sequence[Mapping], tolerance: float = 0.01
                   ) -> Dict[str, Dict]:
  """Issue 32's target over cells: accuracy >= missing_accuracy - tolerance.

  Args:
    cells: dicts with "split" ("train" or "heldout"), "accuracy" and
      "missing_accuracy" (fractions in [0, 1]), and any other keys (family,
      level, fold), copied into the worst cell.
    tolerance: the allowed shortfall, in accuracy units (0.01 = 1 point);
      a margin of exactly -tolerance meets the target.

  Returns:
    `{"tolerance": t, "train" | "heldout" | "all": {"cells": n, "met": k,
    "fraction": k / n (None for n = 0), "worst": the cell of smallest margin
    with "margin" = accuracy - missing_accuracy added (None for n = 0)}}`.

  Raises:
    ValueError: for a negative tolerance or a split other than "train" or
      "heldout".
  """
  if tolerance < 0:
    raise ValueError(f"tolerance must be >= 0, got {tolerance}")
  groups = {"train": [], "heldout": [], "all": []}
  for cell in cells:
    if cell["split"] not in ("train", "heldout"):
      raise ValueError(f"a cell's split must be 'train' or 'heldout', got "
                       f"{cell['split']!r}")
    cell = {**cell, "margin": cell["accuracy"] - cell["missing_accuracy"]}
    groups[cell["split"]].append(cell)
    groups["all"].append(cell)
  out = {"tolerance": tolerance}
  for name, group in groups.items():
    met = sum(c["margin"] >= -tolerance - _MARGIN_EPS for c in group)
    out[name] = {"cells": len(group), "met": met,
                 "fraction": met / len(group) if group else None,
                 "worst": min(group, key=lambda c: c["margin"]) if group
                          else None}
  return out


def missing_modality_target(curves: Mapping[str, Mapping],
                            tolerance: float = 0.01) -> Dict[str, Dict]:
  """The target of issue 32 on one model's corruption curves: at every
  corrupted level of every family, fused accuracy with the modality
  corrupted >= the same model's accuracy with it marked missing, minus
  `tolerance`.

  `target_summary(target_cells(curves), tolerance)`: the fraction of
  (family, level) cells that meet it and the worst cell (family, level,
  accuracy, missing_accuracy, margin), for the train-time families, the
  held-out ones and all.
  """
  return target_summary(target_cells(curves), tolerance)
