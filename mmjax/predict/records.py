"""The records prediction returns: top-k labels, rows in order (errors
included), and rows given as dicts or a manifest."""

from typing import Any, Dict, List, Optional, Sequence

from etils import epath
import numpy as np

from mmjax.data.builders.manifest.table import Manifest
from mmjax.predict import rows as rows_lib


def top(probabilities: np.ndarray, names: Sequence[str], k: int,
        similarities: Optional[np.ndarray] = None) -> List[Dict[str, Any]]:
  """The k most probable classes, most probable first (ties: the lower
  index): `[{"label", "probability"[, "similarity"]}]`."""
  order = np.argsort(-probabilities, kind="stable")[:k]
  found = [{"label": names[c], "probability": float(probabilities[c])}
           for c in order]
  if similarities is not None:
    for entry, c in zip(found, order):
      entry["similarity"] = float(similarities[c])
  return found


def as_manifest(rows, base_dir: Optional[epath.PathLike]) -> Manifest:
  """`rows` itself when a `Manifest`, else its dicts (`rows_lib.from_dicts`)."""
  return rows if isinstance(rows, Manifest) else rows_lib.from_dicts(
      rows, base_dir)


def in_order(manifest: Manifest, records: Dict[int, Dict],
             errors: Dict[int, str]) -> List[Dict[str, Any]]:
  """`records` (`{row: record}`) and `errors` (`{row: message}`, as
  `{"row", "input", "error"}`) in row order."""
  for i, message in errors.items():
    records[i] = {"row": i, "input": dict(manifest.rows[i].values),
                  "error": message}
  return [records[i] for i in sorted(records)]
