"""Rows -> padded model batches: each row decoded (`decode.decode`), a bad
one recorded or raised, the good ones preprocessed by the run's eval ops and
stacked into batches of a fixed size (the last one padded by repeating its
last example, so one compiled step serves every batch)."""

import dataclasses
from typing import Any, Dict, Iterator, List, Mapping, Sequence

import jax
import ml_collections
import numpy as np

from mmjax.data.builders.manifest.table import Manifest
from mmjax.data.errors import DataError
from mmjax.predict import decode


@dataclasses.dataclass
class Batch:
  """One model batch.

  Attributes:
    rows: int [k], the 0-based manifest row of each of its first k
      examples (the rest, up to the batch size, is padding).
    inputs: `{modality: [batch, ...]}` numpy model inputs.
    present: `{modality: float32 [batch]}`, 0.0 where missing.
  """
  rows: np.ndarray
  inputs: Dict[str, Any]
  present: Dict[str, np.ndarray]


def decoded(manifest: Manifest, modalities: Sequence[str],
            features: decode.Features, data: ml_collections.ConfigDict,
            skip_bad_rows: bool, errors: Dict[int, str]
            ) -> List[tuple]:
  """`[(row index, stored example, presence)]` of the rows that decode.

  A row that does not decode is recorded in `errors` (`{row index: the
  DataError's message}`) when `skip_bad_rows`, else its DataError is
  raised (naming the line or row index, column and file).
  """
  good = []
  for i, row in enumerate(manifest.rows):
    try:
      example, present = decode.decode(manifest, row, modalities, features,
                                       data)
    except DataError as e:
      if not skip_bad_rows:
        raise
      errors[i] = str(e)
      continue
    good.append((i, example, present))
  return good


def _stack(items: Sequence[Any]) -> Any:
  return jax.tree.map(lambda *xs: np.stack(xs), *items)


def batches(good: Sequence[tuple], modalities: Sequence[str],
            features: decode.Features, pp: Mapping[str, str],
            batch_size: int) -> Iterator[Batch]:
  """`decoded`'s rows in batches of `batch_size`, preprocessed.

  Raises:
    ValueError: for a `batch_size` < 1.
  """
  if batch_size < 1:
    raise ValueError(f"the batch size must be >= 1, got {batch_size}")
  for start in range(0, len(good), batch_size):
    chunk = good[start:start + batch_size]
    rows = [i for i, _, _ in chunk]
    inputs = decode.preprocess([ex for _, ex, _ in chunk], rows, modalities,
                               features, pp)
    present = [{m: np.float32(p[m]) for m in modalities} for _, _, p in chunk]
    padding = batch_size - len(chunk)
    yield Batch(np.asarray(rows, np.int64),
                _stack(inputs + inputs[-1:] * padding),
                _stack(present + [{m: np.float32(1.0) for m in modalities}]
                       * padding))
