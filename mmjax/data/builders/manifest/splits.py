"""The train/validation/test split of a manifest's rows: its `split` column,
or a seeded split stratified by label."""

import collections
import math
from typing import List, Sequence

import numpy as np

from mmjax.data.builders.base import check_fractions
from mmjax.data.builders.manifest.table import LABEL
from mmjax.data.builders.manifest.table import Manifest
from mmjax.data.builders.manifest.table import SPLIT
from mmjax.data.builders.manifest.table import SPLITS
from mmjax.data.builders.manifest.table import lines_of
from mmjax.data.errors import DataError


def _stratified_splits(manifest: Manifest, fractions: Sequence[float],
                       seed: int) -> List[str]:
  bounds = np.cumsum(fractions)
  rng = np.random.default_rng(seed)
  by_label = collections.defaultdict(list)
  for i, row in enumerate(manifest.rows):
    by_label[row.values[LABEL]].append(i)
  splits = [""] * len(manifest.rows)
  for label in sorted(by_label):
    indices = by_label[label]
    ends = [int(math.floor(b * len(indices) + 0.5)) for b in bounds]
    if fractions[0] > 0:  # Every class keeps a training example.
      ends[0] = max(ends[0], 1)
    ends[1] = max(ends[1], ends[0])
    ends[2] = len(indices)
    for position, i in enumerate(rng.permutation(indices)):
      splits[i] = SPLITS[int(np.searchsorted(ends, position, side="right"))]
  return splits


def _check_labels_seen_in_train(manifest: Manifest,
                                splits: Sequence[str]) -> None:
  trained = {r.values[LABEL] for r, s in zip(manifest.rows, splits)
             if s == "train"}
  unseen = collections.defaultdict(list)
  for row, split in zip(manifest.rows, splits):
    if row.values[LABEL] not in trained:
      unseen[row.values[LABEL]].append(row)
  if unseen:
    label, rows = min(unseen.items())
    lines = ", ".join(f"{r.line} (row {r.number})" for r in rows[:10])
    more = f" and {len(rows) - 10} more" if len(rows) > 10 else ""
    raise DataError(
        f"{manifest.path}: label {label!r} is in no train row, only in "
        f"validation/test at line(s) {lines}{more}; a class needs training "
        f"examples. Add train rows of {label!r} or remove these rows.")


def _check_modalities_in_train(manifest: Manifest,
                               splits: Sequence[str]) -> None:
  train = [r for r, s in zip(manifest.rows, splits) if s == "train"]
  for modality in manifest.incomplete:
    if train and not any(manifest.has(r, modality) for r in train):
      raise DataError(
          f"{manifest.path}: column {modality} is empty in every train row "
          f"(line(s) {lines_of(train)}); the model cannot learn a modality "
          f"it never sees in training. Fill it in some train rows, or "
          f"remove the column.")


def assign_splits(manifest: Manifest,
                  fractions: Sequence[float] = (0.8, 0.1, 0.1),
                  seed: int = 0) -> List[str]:
  """The split of each row ("train", "validation" or "test"), in row order.

  With a `split` column, its values. Without, stratified by label: the rows
  of each label (labels in sorted order, one `np.random.default_rng(seed)`
  for all) are shuffled and the first round(f_train * n) go to train, up to
  round((f_train + f_validation) * n) to validation, the rest to test
  (rounding halves up; each
  label with f_train > 0 keeps at least one train row). Deterministic given
  (manifest, fractions, seed).

  Raises:
    ValueError: for bad fractions (see `base.check_fractions`).
    DataError: naming the manifest, the label and its rows, when a label has
      validation or test rows but no train row; naming the modality and the
      train rows, when a modality column is empty in every train row.
  """
  check_fractions(fractions)
  if SPLIT in manifest.columns:
    splits = [row.values[SPLIT] for row in manifest.rows]
  else:
    splits = _stratified_splits(manifest, fractions, seed)
  _check_labels_seen_in_train(manifest, splits)
  _check_modalities_in_train(manifest, splits)
  return splits
