"""Pictures of the robustness evaluation (matplotlib, Agg backend).

Files are written through `etils.epath` (`mmjax.paths.save_figure`), so the
output folder may be remote (`gs://...`).
"""

import math
from typing import Dict, Mapping

from etils import epath
import numpy as np

from mmjax import paths


def _pyplot():
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
  return plt


def corruption_curves(models: Mapping[str, Mapping[str, Dict]],
                      path: epath.PathLike) -> None:
  """Accuracy vs corruption level: one panel per corruption, one line per model.

  Args:
    models: `{model name: {corruption name: {"levels", "unit",
      "accuracy"}}}` as in robustness.json's "corruptions". The clean level
      (first; +inf dB for SNR) is drawn at the left end, labelled "clean".
    path: the PNG written.
  """
  plt = _pyplot()
  names = list(dict.fromkeys(c for curves in models.values() for c in curves))
  if not names:
    return
  cols = min(2, len(names))
  rows = math.ceil(len(names) / cols)
  fig, axes = plt.subplots(rows, cols, figsize=(5.5 * cols, 3.8 * rows),
                           squeeze=False)
  for ax, name in zip(axes.flat, names):
    for model, curves in models.items():
      if name not in curves:
        continue
      c = curves[name]
      x = np.arange(len(c["levels"]))
      ax.plot(x, c["accuracy"], marker="o", label=model)
      ax.set_xticks(x, ["clean"] + [f"{l:g}" for l in c["levels"][1:]])
      ax.set_xlabel(c["unit"])
    ax.set_title(name)
    ax.set_ylabel("accuracy")
    ax.grid(alpha=0.3)
    ax.legend(fontsize="small")
  for ax in list(axes.flat)[len(names):]:
    ax.axis("off")
  fig.tight_layout()
  try:
    paths.save_figure(fig, path, dpi=100)
  finally:
    plt.close(fig)


def intermediates_pictures(intermediates: Mapping[str, np.ndarray],
                           labels: np.ndarray, num_examples: int,
                           out_dir: epath.PathLike) -> list:
  """One picture per sown gate / weight / attention map, for a few examples.

  Embeddings (paths ending in "embedding") are skipped. Per example, an
  array `[a]` is drawn as bars, `[a, b]` as an image, and `[heads, q, k]`
  (attention weights) as the image of its mean over heads.

  Args:
    intermediates: `{path: [n, ...]}` flattened sown intermediates.
    labels: int `[n]`, shown in the titles.
    num_examples: the first examples drawn.
    out_dir: where `intermediates_<path>.png` go.

  Returns:
    The files written.
  """
  plt = _pyplot()
  out_dir = epath.Path(out_dir)
  written = []
  for path, values in intermediates.items():
    if path.endswith("embedding") or values.ndim < 2:
      continue
    count = min(num_examples, len(values))
    fig, axes = plt.subplots(1, count, figsize=(3.2 * count, 3.0), squeeze=False)
    for i, ax in enumerate(axes[0]):
      x = values[i]
      if x.ndim == 3:
        x = x.mean(axis=0)
      if x.ndim == 1:
        ax.bar(np.arange(len(x)), x)
        ax.set_xlabel("index (modality order: sorted names)")
      else:
        im = ax.imshow(x, aspect="auto", cmap="viridis")
        fig.colorbar(im, ax=ax, fraction=0.046)
      ax.set_title(f"example {i} (label {labels[i]})", fontsize="small")
    fig.suptitle(path, fontsize="small")
    fig.tight_layout()
    file = out_dir / f"intermediates_{path.replace('/', '.')}.png"
    try:
      paths.save_figure(fig, file, dpi=90)
    finally:
      plt.close(fig)
    written.append(file)
  return written
