"""Run outputs: TensorBoard events, metrics.jsonl, JSON files, confusion plots.

Only process 0 writes. Files are written atomically (temporary file, then
rename), and metrics.jsonl is only appended to, so a crashing run never
truncates or corrupts what an earlier run left in the workdir. The workdir
may be remote (`gs://...`): every file operation goes through `etils.epath`
(`mmjax.paths`), TensorBoard's through TensorFlow's own file systems.
"""

import json
from typing import Any, Mapping, Optional, Sequence

from etils import epath
import jax
import numpy as np

from mmjax import paths


def is_chief() -> bool:
  return jax.process_index() == 0


def write_json_atomic(path: epath.PathLike, obj: Any) -> None:
  """Writes `obj` as indented JSON to `path` via a temporary file + rename."""
  paths.write_atomic(path, json.dumps(obj, indent=2, sort_keys=True) + "\n")


class MetricWriter:
  """Writes scalar metrics to TensorBoard (`<workdir>/tensorboard/<split>`) and
  as one JSON object per line to `<workdir>/metrics.jsonl`
  (`{"step": int, "split": str, <metric>: float, ...}`).

  Splits used by the train loop: "train" (means over the training batches
  since the last log), "validation" (periodic evaluation), and
  "final_<split>" (the evaluation of every split at the end).
  """

  def __init__(self, workdir: epath.PathLike):
    self._enabled = is_chief()
    self._workdir = epath.Path(workdir)
    self._tb = {}

  def _tb_writer(self, split: str):
    import tensorflow as tf  # pylint: disable=g-import-not-at-top
    if split not in self._tb:
      self._tb[split] = tf.summary.create_file_writer(
          str(self._workdir / "tensorboard" / split))
    return self._tb[split]

  def write(self, step: int, split: str, scalars: Mapping[str, float]) -> None:
    if not self._enabled:
      return
    import tensorflow as tf  # pylint: disable=g-import-not-at-top
    scalars = {k: float(v) for k, v in scalars.items()}
    paths.append_text(
        self._workdir / "metrics.jsonl",
        json.dumps({"step": int(step), "split": split, **scalars}) + "\n")
    with self._tb_writer(split).as_default():
      for name, value in scalars.items():
        tf.summary.scalar(name, value, step=int(step))

  def close(self) -> None:
    for writer in self._tb.values():
      writer.flush()
      writer.close()


MAX_ANNOTATED_CLASSES = 30
MAX_FIGURE_INCHES = 18.0


def save_confusion_matrix(confusion: np.ndarray, path_stem: epath.PathLike,
                          class_names: Sequence[str],
                          title: Optional[str] = None) -> None:
  """Saves `[C, C]` counts (rows true, columns predicted) as
  `<path_stem>.json` (`{"classes": [...], "matrix": [[...]]}`) and a
  matplotlib heat map `<path_stem>.png`."""
  if not is_chief():
    return
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top

  path_stem = epath.Path(path_stem)
  counts = np.asarray(confusion).round().astype(int)
  write_json_atomic(path_stem.with_suffix(".json"),
                    {"classes": list(class_names), "matrix": counts.tolist(),
                     "rows": "true", "columns": "predicted"})
  n = len(class_names)
  # Counts written in the cells up to MAX_ANNOTATED_CLASSES; beyond, the
  # figure stops growing (a 99-class matrix at 0.55 in a cell was 55 inches
  # square, 10,000 text labels and most of a short run's evaluation time).
  side = min(0.8 + 0.55 * n, MAX_FIGURE_INCHES)
  fig, ax = plt.subplots(figsize=(side + 0.2, side))
  ax.imshow(counts, cmap="Blues")
  fontsize = 8 if n <= MAX_ANNOTATED_CLASSES else max(
      2.0, 8 * MAX_ANNOTATED_CLASSES / n)
  ax.set(xticks=range(n), yticks=range(n), xlabel="predicted", ylabel="true",
         title=title or path_stem.name)
  ax.set_xticklabels(class_names, fontsize=fontsize, rotation=90)
  ax.set_yticklabels(class_names, fontsize=fontsize)
  if n <= MAX_ANNOTATED_CLASSES:
    threshold = counts.max() / 2
    for i in range(n):
      for j in range(n):
        ax.text(j, i, counts[i, j], ha="center", va="center", fontsize=8,
                color="white" if counts[i, j] > threshold else "black")
  fig.tight_layout()
  try:
    paths.save_figure(fig, path_stem.with_suffix(".png"), dpi=100)
  finally:
    plt.close(fig)
