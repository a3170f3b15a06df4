"""Pictures of the robustness evaluation (matplotlib, Agg backend).

Files are written through `etils.epath` (`mmjax.paths.save_figure`), so the
output folder may be remote (`gs://...`).
"""

import math
from typing import Dict, Iterable, List, Mapping, Optional

from etils import epath
import numpy as np

from mmjax import paths


def _pyplot():
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
  return plt


def corruption_curves(models: Mapping[str, Mapping[str, Dict]],
                      path: epath.PathLike,
                      flat: Optional[Mapping[str, Mapping[str, float]]] = None,
                      heldout: Iterable[str] = (),
                      colors: Optional[Mapping[str, str]] = None
                      ) -> Dict[str, List[str]]:
  """Accuracy vs corruption level: one panel per corruption, one line per model.

  Args:
    models: `{line label: {corruption name: {"levels", "unit",
      "accuracy"}}}` as in robustness.json's "corruptions", drawn as solid
      lines with markers. The clean level (first; +inf dB for SNR) is drawn
      at the left end, labelled "clean".
    path: the PNG written.
    flat: optional `{line label: {corruption name: accuracy}}` drawn as
      dashed horizontal lines over the panel's levels: e.g. the model with
      the corrupted modality marked missing, or a single-modality model of
      the other modality (which the corruption does not touch).
    heldout: corruption names marked "(held out)" in their panel's title:
      families the model never trained with.
    colors: optional `{line label: matplotlib colour}`, e.g. the same colour
      for a model and its marked-missing line.

  Returns:
    `{corruption name: [line labels drawn in its panel, in order]}`; no
    file and `{}` when no model has a curve.
  """
  flat = flat or {}
  colors = dict(colors or {})
  free = (f"C{i}" for i in range(100) if f"C{i}" not in colors.values())
  for label in (*models, *flat):
    colors.setdefault(label, next(free))
  heldout = set(heldout)
  names = list(dict.fromkeys(c for curves in models.values() for c in curves))
  if not names:
    return {}
  plt = _pyplot()
  cols = min(2, len(names))
  rows = math.ceil(len(names) / cols)
  fig, axes = plt.subplots(rows, cols, figsize=(5.5 * cols, 3.8 * rows),
                           squeeze=False)
  drawn, handles = {}, {}
  for ax, name in zip(axes.flat, names):
    drawn[name] = []
    size = None
    for model, curves in models.items():
      if name not in curves:
        continue
      c = curves[name]
      x = np.arange(len(c["levels"]))
      handles[model], = ax.plot(x, c["accuracy"], marker="o", label=model,
                                color=colors.get(model))
      drawn[name].append(model)
      if size is None:
        size = len(x)
        ax.set_xticks(x, ["clean"] + [f"{l:g}" for l in c["levels"][1:]])
        ax.set_xlabel(c["unit"])
    for label, values in flat.items():
      if name in values and size is not None:
        line, = ax.plot([0, size - 1], [values[name]] * 2, linestyle="--",
                        label=label, color=colors.get(label))
        handles.setdefault(label, line)  # a curve's handle if it has one
        drawn[name].append(label)
    ax.set_title(f"{name} (held out)" if name in heldout else name)
    ax.set_ylabel("accuracy")
    ax.grid(alpha=0.3)
  for ax in list(axes.flat)[len(names):]:
    ax.axis("off")
  # One legend for all panels, below them: per-panel legends hide the curves.
  legend_height = 0.25 * math.ceil(len(handles) / cols) + 0.2  # inches
  fig.set_figheight(fig.get_figheight() + legend_height)
  fig.legend(list(handles.values()), list(handles), loc="lower center",
             ncol=cols, fontsize="small", frameon=False)
  fig.tight_layout(rect=(0, legend_height / fig.get_figheight(), 1, 1))
  try:
    paths.save_figure(fig, path, dpi=100, bbox_inches="tight")
  finally:
    plt.close(fig)
  return drawn


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
