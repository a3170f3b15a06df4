"""Argument checks shared by the image and audio corruptions."""

import jax


def check_rank(x: jax.Array, layout: str, name: str) -> None:
  """Raises ValueError naming `name` when `x`'s rank is not `layout`'s
  (e.g. "[batch, samples]": rank 2)."""
  rank = layout.count(",") + 1
  if x.ndim != rank:
    raise ValueError(f"{name} expects {layout}, got shape {tuple(x.shape)}")


def check_level(level, low: float, high: float, what: str, name: str) -> None:
  """Raises ValueError naming `name` when a Python `level` is outside
  [low, high]; a traced level is not checked (the corruptions clip it)."""
  if isinstance(level, (int, float)) and not low <= level <= high:
    raise ValueError(f"{name} expects {what} in [{low}, {high}], got {level}")
